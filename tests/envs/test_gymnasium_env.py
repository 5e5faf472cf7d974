"""Generic Gymnasium image envs: the bundled DotGrid, ALE's RGB env, and rejections."""

from __future__ import annotations

import numpy as np
import pytest

from understanding_rl_vision.envs import GymnasiumSpec, make_vec_env
from understanding_rl_vision.envs.testing import DOTGRID_ID
from understanding_rl_vision.errors import UnknownEnvError, UserError


def test_dotgrid_rgb_numbered_actions_and_episodes():
    with make_vec_env(DOTGRID_ID, num_envs=3, seed=0, make_kwargs={"max_steps": 5}) as env:
        assert env.observation_shape == (24, 24, 3) and env.frame_shape == (24, 24, 3)
        assert env.action_names == ("0", "1", "2", "3", "4")
        start = env.reset()
        assert start.obs.shape == (3, 24, 24, 3) and start.obs.dtype == np.uint8
        np.testing.assert_array_equal(start.frame, start.obs)
        assert start.first.all()
        for t in range(5):  # standing still never reaches the target: truncation at step 5
            step = env.step([0, 0, 0])
            assert step.first.all() == (t == 4)
        assert [(e.env_index, e.length, e.total_reward, e.level_complete) for e in step.episodes] == [
            (i, 5, 0.0, None) for i in range(3)
        ]


def test_dotgrid_reward_and_termination_are_reported_on_the_ending_step():
    with make_vec_env(DOTGRID_ID, num_envs=4, seed=1) as env:
        env.reset()
        rng = np.random.default_rng(0)
        for _ in range(300):
            step = env.step(rng.integers(0, env.num_actions, size=4))
            won = [e for e in step.episodes if e.total_reward == 1.0]
            if won:
                assert all(step.reward[e.env_index] == 1.0 and step.first[e.env_index] for e in won)
                return
    pytest.fail("random play never reached the target")


def test_grey_observations_get_a_channel_and_rgb_frames():
    with make_vec_env(DOTGRID_ID, num_envs=2, make_kwargs={"grey": True}) as env:
        assert env.observation_shape == (24, 24, 1) and env.frame_shape == (24, 24, 3)
        step = env.reset()
        assert step.obs.shape == (2, 24, 24, 1) and step.frame.shape == (2, 24, 24, 3)
        np.testing.assert_array_equal(step.frame[..., 0], step.obs[..., 0])
        np.testing.assert_array_equal(step.frame[..., 2], step.obs[..., 0])


def test_seeding_is_per_env_and_reproducible():
    def starts(seed: int) -> np.ndarray:
        with make_vec_env(DOTGRID_ID, num_envs=3, seed=seed) as env:
            return env.reset().obs

    a = starts(0)
    np.testing.assert_array_equal(a, starts(0))
    np.testing.assert_array_equal(a[1], starts(1)[0])  # env i is seeded with seed + i


def test_registered_ale_rgb_env_as_plain_gymnasium():
    # ALE's v5 ids are ordinary Gymnasium image envs (210x160 RGB) when not preprocessed.
    with make_vec_env(GymnasiumSpec(env_id="ALE/Pong-v5"), num_envs=1, seed=0) as env:
        assert env.observation_shape == (210, 160, 3)
        assert env.action_names[:2] == ("NOOP", "FIRE")
        step = env.reset()
        np.testing.assert_array_equal(step.frame, step.obs)
        assert env.step([1]).obs.shape == (1, 210, 160, 3)


def test_non_image_env_is_rejected_with_one_line():
    with pytest.raises(UserError) as info:
        make_vec_env("CartPole-v1")
    message = str(info.value)
    assert message == "CartPole-v1 has observations of shape (4,) float32, not images (H, W, C) uint8"


def test_other_rejections_are_user_errors():
    with pytest.raises(UserError, match="only Discrete action spaces"):
        make_vec_env(DOTGRID_ID, make_kwargs={"continuous": True})
    with pytest.raises(UserError, match="Tuple observations"):
        make_vec_env("Blackjack-v1")
    with pytest.raises(UserError, match="could not create.*unexpected keyword"):
        make_vec_env(DOTGRID_ID, make_kwargs={"colour": "blue"})
    with pytest.raises(UnknownEnvError):
        make_vec_env(GymnasiumSpec(env_id="NoSuchEnv-v0"))
