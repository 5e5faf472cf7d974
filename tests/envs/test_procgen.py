"""Procgen through the real ``procgen-mirror`` library (no mocks)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from understanding_rl_vision.envs import PROCGEN_GAMES, Episode, ProcgenSpec, make_vec_env
from understanding_rl_vision.errors import UnknownEnvError, UserError


def rollout(num_steps: int, num_envs: int = 2, seed: int = 0, action_seed: int = 0, **options) -> np.ndarray:
    """Observations of a seeded random-action rollout, shape (T+1, N, 64, 64, 3)."""
    rng = np.random.default_rng(action_seed)
    with make_vec_env("coinrun", num_envs=num_envs, seed=seed, **options) as env:
        obs = [env.reset().obs]
        for _ in range(num_steps):
            obs.append(env.step(rng.integers(0, env.num_actions, size=num_envs)).obs)
    return np.stack(obs)


def test_coinrun_shapes_dtypes_and_action_names():
    with make_vec_env("coinrun", num_envs=3, seed=0, distribution_mode="easy") as env:
        assert env.observation_shape == (64, 64, 3)
        assert env.frame_shape == (64, 64, 3)
        assert len(env.action_names) == 15
        assert {"LEFT+UP", "NOOP", "RIGHT", "D"} <= set(env.action_names)
        assert env.action_names[:3] == ("LEFT+DOWN", "LEFT", "LEFT+UP")
        start = env.reset()
        assert start.obs.shape == (3, 64, 64, 3) and start.obs.dtype == np.uint8
        assert start.frame.shape == (3, 64, 64, 3) and start.frame.dtype == np.uint8
        assert start.first.dtype == bool and start.first.all()
        assert start.reward.dtype == np.float32 and not start.reward.any()
        step = env.step(np.zeros(3, dtype=np.int64))
        assert step.obs.shape == (3, 64, 64, 3) and step.obs.dtype == np.uint8
        assert step.reward.shape == (3,) and step.first.shape == (3,)
        assert not step.first.any() and step.episodes == ()


def test_step_before_reset_and_wrong_action_count_are_errors():
    with make_vec_env("coinrun", num_envs=2) as env:
        with pytest.raises(RuntimeError, match="reset"):
            env.step([0, 0])
        env.reset()
        with pytest.raises(ValueError, match="2 actions"):
            env.step([0, 0, 0])


def test_full_res_frames_are_512():
    with make_vec_env("coinrun", num_envs=2, full_res_frames=True) as env:
        assert env.frame_shape == (512, 512, 3)
        assert env.observation_shape == (64, 64, 3)
        for step in (env.reset(), env.step([4, 7])):
            assert step.frame.shape == (2, 512, 512, 3) and step.frame.dtype == np.uint8
            assert step.obs.shape == (2, 64, 64, 3)


def test_same_seed_same_observations_different_seed_different():
    first = rollout(60, seed=3)
    np.testing.assert_array_equal(first, rollout(60, seed=3))
    assert not np.array_equal(first[0], rollout(0, seed=4)[0])


def test_level_options_are_passed():
    # One level: every copy, whatever the seed, starts on the same level.
    one_a = rollout(0, seed=1, num_levels=1, start_level=5)[0]
    one_b = rollout(0, seed=2, num_levels=1, start_level=5)[0]
    np.testing.assert_array_equal(one_a, one_b)
    np.testing.assert_array_equal(one_a[0], one_a[1])
    other_level = rollout(0, seed=1, num_levels=1, start_level=6)[0]
    assert not np.array_equal(one_a[0], other_level[0])
    # Same seed and levels, different distribution mode: different levels are generated.
    easy = rollout(0, seed=1, distribution_mode="easy")[0]
    hard = rollout(0, seed=1, distribution_mode="hard")[0]
    assert not np.array_equal(easy, hard)


def test_episodes_are_recorded_with_level_complete():
    # Random play in easy Jumper both wins and dies within a few hundred steps.
    num_envs, rng = 8, np.random.default_rng(0)
    episodes: list[Episode] = []
    with make_vec_env("jumper", num_envs=num_envs, seed=0, distribution_mode="easy") as env:
        env.reset()
        lengths = np.zeros(num_envs, dtype=int)
        for _ in range(400):
            step = env.step(rng.integers(0, env.num_actions, size=num_envs))
            lengths += 1
            assert {e.env_index for e in step.episodes} == set(np.flatnonzero(step.first))
            for episode in step.episodes:
                assert episode.length == lengths[episode.env_index]
                lengths[episode.env_index] = 0
            episodes.extend(step.episodes)
    assert len(episodes) >= 4
    assert all(isinstance(e.level_complete, bool) for e in episodes)
    assert {e.level_complete for e in episodes} == {True, False}
    for episode in episodes:  # Jumper pays 10 for reaching the carrot, nothing otherwise
        assert episode.total_reward == (10.0 if episode.level_complete else 0.0)


def test_reset_after_stepping_starts_new_reproducible_levels():
    def reset_twice(seed: int) -> tuple[np.ndarray, np.ndarray]:
        with make_vec_env("coinrun", num_envs=2, seed=seed) as env:
            before = env.reset().obs
            env.step([7, 7])
            return before, env.reset().obs

    before, after = reset_twice(0)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, reset_twice(0)[1])


@pytest.mark.parametrize("game", PROCGEN_GAMES)
def test_every_game_constructs_and_steps(game):
    with make_vec_env(game, num_envs=2, seed=0) as env:
        assert env.reset().obs.shape == (2, 64, 64, 3)
        step = env.step([4, 4])
        assert step.obs.shape == (2, 64, 64, 3) and step.reward.shape == (2,)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ProcgenSpec(game="coinrun", distribution_mode="memory"), "coinrun has no 'memory' mode"),
        (ProcgenSpec(distribution_mode="weird"), "unknown Procgen distribution_mode"),
        (ProcgenSpec(game="coinrun", distribution_mode="exploration", num_levels=5), "exploration"),
    ],
)
def test_bad_options_are_user_errors_not_crashes(spec, message):
    # 'memory' on coinrun would abort the interpreter inside Procgen's C++.
    with pytest.raises(UserError, match=message):
        make_vec_env(spec)


def test_unknown_game_and_bad_counts():
    with pytest.raises(UnknownEnvError, match="nope"):
        make_vec_env(ProcgenSpec(game="nope"))
    with pytest.raises(UserError, match="num_envs"):
        make_vec_env("coinrun", num_envs=0)
    with pytest.raises(UserError, match="seed"):
        make_vec_env("coinrun", seed=-1)


def test_exploration_mode_runs():
    with make_vec_env("maze", distribution_mode="exploration") as env:
        assert env.reset().obs.shape == (1, 64, 64, 3)


def test_importing_and_stepping_prints_nothing():
    code = (
        "from understanding_rl_vision.envs import make_vec_env\n"
        "for name in ('coinrun', 'ALE/Breakout-v5'):\n"
        "    with make_vec_env(name) as env:\n"
        "        env.reset(); env.step([0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""
