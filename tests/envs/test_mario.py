"""Super Mario Bros through gym-super-mario-bros and nes-py: the real emulator, no mocks.

The emulator is deterministic, so the step counts below are exact. Measured with nes-py 8.2.1 and
gym-super-mario-bros 7.4.0 in world 1-1: holding RIGHT walks into the first Goomba and dies on
step 40 (return 231); RIGHT+JUMP+RUN dies on step 30 (return 250); in the whole game
(SuperMarioBros-v0) holding RIGHT dies at steps 40, 80 and 120 and the game is over at step 121.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pfrl_nets import save_ppo

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_agent, read_checkpoint_metadata
from understanding_rl_vision.envs import MarioSpec, make_vec_env, parse_env_id, spec_from_dict, spec_to_dict
from understanding_rl_vision.envs.mario import _import_game, _make_game
from understanding_rl_vision.errors import ConfigError, UnknownEnvError, UserError
from understanding_rl_vision.training import PPOConfig

LEVEL = "SuperMarioBros-1-1-v0"
RIGHT_ONLY = ("NOOP", "RIGHT", "RIGHT+JUMP", "RIGHT+RUN", "RIGHT+JUMP+RUN")
SIMPLE = (*RIGHT_ONLY, "JUMP", "LEFT")
COMPLEX = (*SIMPLE, "LEFT+JUMP", "LEFT+RUN", "LEFT+JUMP+RUN", "DOWN", "UP")
NAMES = {"right_only": RIGHT_ONLY, "simple": SIMPLE, "complex": COMPLEX}
GROUPS = {
    "right_only": {"RIGHT": (1, 2, 3, 4), "no-arrow": (0,)},
    "simple": {"RIGHT": (1, 2, 3, 4), "LEFT": (6,), "no-arrow": (0, 5)},
    "complex": {"RIGHT": (1, 2, 3, 4), "LEFT": (6, 7, 8, 9), "UP": (11,), "DOWN": (10,), "no-arrow": (0, 5)},
}


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        (LEVEL, MarioSpec(world=1, stage=1, version=0)),
        ("SuperMarioBros-v0", MarioSpec(world=0, stage=0)),
        ("SuperMarioBros-8-4-v3", MarioSpec(world=8, stage=4, version=3)),
        ("SuperMarioBros2-2-3-v1", MarioSpec(world=2, stage=3, version=1, lost_levels=True)),
    ],
)
def test_parse_env_id_and_round_trips(name, spec):
    assert parse_env_id(name) == spec
    assert spec.id == name and parse_env_id(spec.id) == spec
    complex_spec = parse_env_id(name, action_set="complex", frame_stack=2)
    assert (complex_spec.action_set, complex_spec.frame_stack) == ("complex", 2)
    assert spec_from_dict(json.loads(json.dumps(spec_to_dict(complex_spec)))) == complex_spec
    assert spec_to_dict(complex_spec)["family"] == "mario"


@pytest.mark.parametrize(
    ("name", "close"), [("SuperMarioBros-9-1-v0", "SuperMarioBros-8-1-v0"), ("SuperMarioBros-1-1-v7", LEVEL)]
)
def test_unknown_mario_ids_suggest_real_ones(name, close):
    with pytest.raises(UnknownEnvError, match=f"unknown environment '{name}'; did you mean .*{close}") as caught:
        parse_env_id(name)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("action_set", ["right_only", "simple", "complex"])
def test_action_sets_send_gym_super_mario_bros_buttons(action_set):
    """Our button bytes are the ones the package's own JoypadSpace sends for the same set."""
    from gym_super_mario_bros.actions import COMPLEX_MOVEMENT, RIGHT_ONLY, SIMPLE_MOVEMENT
    from nes_py.wrappers import JoypadSpace

    buttons = {"right_only": RIGHT_ONLY, "simple": SIMPLE_MOVEMENT, "complex": COMPLEX_MOVEMENT}[action_set]
    raw = _import_game()()
    game = _make_game(MarioSpec(action_set=action_set))
    try:
        joypad = JoypadSpace(raw, buttons)
        assert game.bytes == [joypad._action_map[i] for i in range(len(buttons))]
        assert game.action_space.n == joypad.action_space.n == len(NAMES[action_set])
    finally:
        raw.close()
        game.close()
    with make_vec_env(LEVEL, action_set=action_set) as env:
        assert env.action_names == NAMES[action_set] and env.num_actions == len(NAMES[action_set])
        assert env.action_groups == GROUPS[action_set]


def test_observations_frames_and_frame_skip_match_the_raw_emulator():
    """One of our steps is four emulator frames with the button held: rewards summed, the last two
    screens max-pooled, grey, 84x84 (INTER_AREA); the stack rolls with the newest frame last."""

    def grey(screen: np.ndarray) -> np.ndarray:
        return cv2.resize(cv2.cvtColor(screen, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA)

    actions = [1, 1, 3, 3, 4, 4, 4, 2, 0, 5, 6, 6, 1, 3, 4, 4, 2, 2, 1, 0]
    raw = _import_game()(rom_mode="vanilla", lost_levels=False, target=(1, 1))
    env = make_vec_env(LEVEL, num_envs=2, seed=0)
    try:
        assert (env.observation_shape, env.frame_shape) == ((84, 84, 4), (240, 256, 3))
        step, screen = env.reset(), raw.reset().copy()
        assert step.obs.shape == (2, 84, 84, 4) and step.obs.dtype == np.uint8
        assert step.frame.shape == (2, 240, 256, 3) and step.frame.dtype == np.uint8
        for k in range(4):  # the stack starts as four copies of the first screen
            np.testing.assert_array_equal(step.obs[0, ..., k], grey(screen))
        np.testing.assert_array_equal(step.frame[0], screen)
        assert len(np.unique(step.frame[0].reshape(-1, 3), axis=0)) > 4  # colour, not grey
        total = 0.0
        for action in actions:
            before = step.obs
            screens, reward = [], 0.0
            for _ in range(4):
                screen, r, done, _info = raw.step(env._envs[0].unwrapped.bytes[action])
                screens.append(screen.copy())
                reward += r
                assert not done
            step = env.step([action, 0])
            assert step.reward[0] == reward and not step.first.any()
            np.testing.assert_array_equal(step.obs[0, ..., -1], grey(np.maximum(screens[-2], screens[-1])))
            np.testing.assert_array_equal(step.obs[:, ..., :3], before[:, ..., 1:])
            np.testing.assert_array_equal(step.frame[0], screens[-1])
            total += reward
        assert total > 50  # Mario ran right
        assert not np.array_equal(step.obs[0], step.obs[1])  # the copies are separate games
    finally:
        raw.close()
        env.close()


def test_episodes_end_at_a_death_with_same_step_autoreset():
    walk, run = SIMPLE.index("RIGHT"), SIMPLE.index("RIGHT+JUMP+RUN")
    episodes = []
    with make_vec_env(LEVEL, num_envs=2, seed=0) as env:
        start = env.reset()
        lengths, returns = np.zeros(2, dtype=int), np.zeros(2)
        for _ in range(45):
            step = env.step([walk, run])
            lengths += 1
            returns += step.reward
            assert {e.env_index for e in step.episodes} == set(np.flatnonzero(step.first))
            for e in step.episodes:  # the records add up the steps and rewards since the last end
                assert (e.length, e.total_reward) == (lengths[e.env_index], returns[e.env_index])
                assert step.reward[e.env_index] < 0  # the death penalty
                # The same step's observation is the next episode's first: the level's start again.
                np.testing.assert_array_equal(step.obs[e.env_index], start.obs[e.env_index])
                np.testing.assert_array_equal(step.frame[e.env_index], start.frame[e.env_index])
                lengths[e.env_index], returns[e.env_index] = 0, 0.0
            episodes.extend(step.episodes)
    assert [(e.env_index, e.length, e.total_reward) for e in episodes] == [(1, 30, 250.0), (0, 40, 231.0)]
    assert all(e.level_complete is False for e in episodes)
    assert (lengths.tolist(), returns.min() > 0) == ([5, 15], True)  # the next episodes are under way


def test_the_whole_game_ends_at_game_over_not_at_a_death():
    with make_vec_env("SuperMarioBros-v0", action_set="right_only") as env:
        env.reset()
        rewards, firsts = [], []
        for _ in range(121):
            step = env.step([RIGHT_ONLY.index("RIGHT")])
            rewards.append(float(step.reward[0]))
            firsts.append(bool(step.first[0]))
    deaths = [i + 1 for i, r in enumerate(rewards) if r < 0]
    assert deaths[:3] == [40, 80, 120] and firsts.index(True) == 120 and sum(firsts) == 1
    assert step.episodes[0].length == 121 and step.episodes[0].total_reward == sum(rewards)
    assert step.episodes[0].level_complete is False


@pytest.mark.parametrize(
    ("env_id", "options", "error", "message"),
    [
        (LEVEL, {"action_set": "fast"}, UserError, "action_set must be one of right_only, simple, complex, got 'fast'"),
        (LEVEL, {"frame_stack": 0}, UserError, "frame_stack must be >= 1, got 0"),
        (LEVEL, {"sticky_action_prob": 0.0}, UnknownEnvError, "do not apply to mario environments"),
        ("SuperMarioBros2-1-1-v2", {}, UserError, "The Lost Levels has versions v0-v1, got v2"),
        ("SuperMarioBros2-5-1-v0", {}, UserError, "The Lost Levels has worlds 1-4"),
    ],
)
def test_bad_options_are_one_line_errors(env_id, options, error, message):
    with pytest.raises(error, match=message) as caught:
        make_vec_env(env_id, **options)
    assert "\n" not in str(caught.value)


def test_a_spec_from_a_checkpoint_is_checked_too():
    for spec, message in [(MarioSpec(version=7), "versions v0-v3, got v7"), (MarioSpec(world=1, stage=5), "stage")]:
        with pytest.raises(UserError, match=message):
            make_vec_env(spec_from_dict(spec_to_dict(spec)))


def test_training_config_action_set():
    assert PPOConfig(env=LEVEL, action_set="right_only").env_spec() == MarioSpec(action_set="right_only")
    with pytest.raises(ConfigError, match="action_set: Mario options, but procgen:coinrun is not Super Mario Bros"):
        PPOConfig(env="coinrun", action_set="complex").env_spec()
    with pytest.raises(ConfigError, match=f"num_levels: Procgen options, but {LEVEL} is not a Procgen game"):
        PPOConfig(env=LEVEL, num_levels=200).env_spec()


def test_a_tiny_training_run_saves_the_mario_spec(tmp_path):
    path = rl_clarity.train(
        LEVEL,
        save_dir=tmp_path,
        architecture="nature",
        num_envs=2,
        num_steps=16,
        num_minibatches=2,
        update_epochs=1,
        total_steps=32,
        progress=False,
    )
    metadata = read_checkpoint_metadata(path)
    assert metadata["env_spec"] == spec_to_dict(MarioSpec(world=1, stage=1, action_set="simple"))
    assert metadata["extra"]["steps_trained"] == 32
    agent = load_agent(path)
    assert agent.env_spec == MarioSpec(action_set="simple") and agent.action_names == SIMPLE
    assert agent.observation_shape == (84, 84, 4) and agent.num_actions == 7
    with make_vec_env(agent.env_spec, num_envs=2, seed=1) as env:
        actions, _, values, _ = agent.act(env.reset().obs)
    assert set(actions.tolist()) <= set(range(7)) and np.isfinite(values).all()


def test_a_foreign_networks_action_count_picks_the_action_set(tmp_path):
    save_ppo(tmp_path / "five", 5)
    agent = load_agent(tmp_path / "five", env=LEVEL)
    assert agent.env_spec == MarioSpec(action_set="right_only") and agent.action_names == RIGHT_ONLY
    with make_vec_env(agent.env_spec, num_envs=1) as env:
        out = agent(env.reset().obs)
    assert out.logits.shape == (1, 5)
    save_ppo(tmp_path / "six", 6)
    with pytest.raises(UserError, match="the network has 6 actions; .* right_only 5, simple 7, complex 12") as caught:
        load_agent(tmp_path / "six", env=LEVEL)
    assert "\n" not in str(caught.value)
