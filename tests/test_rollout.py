"""Rollouts on real environments with random-init agents."""

import numpy as np
import pytest
import torch

from understanding_rl_vision.config import ObservationSetConfig, TrajectoryConfig
from understanding_rl_vision.errors import ConfigError, ObservationShapeError
from understanding_rl_vision.rollout import collect_observation_set, collect_trajectories

SMALL = TrajectoryConfig(num_envs=3, num_steps=40)


@pytest.fixture(scope="module")
def coinrun_trajectories(coinrun_agent):
    return collect_trajectories(coinrun_agent, SMALL, seed=7, progress=False)


def test_coinrun_trajectory_shapes_and_dtypes(coinrun_trajectories, coinrun_agent):
    t = coinrun_trajectories
    assert t.observations.shape == (3, 40, 64, 64, 3) and t.observations.dtype == np.uint8
    assert t.frames.shape == (3, 40, 64, 64, 3) and t.frames.dtype == np.uint8
    assert t.actions.shape == (3, 40) and t.actions.dtype == np.int64
    assert t.logits.shape == (3, 40, 15) and t.logits.dtype == np.float32
    assert t.values.shape == t.rewards.shape == t.firsts.shape == t.dones.shape == (3, 40)
    assert t.last_values.shape == (3,)
    assert t.firsts[:, 0].all()  # every trajectory starts at a reset
    np.testing.assert_array_equal(t.dones[:, :-1], t.firsts[:, 1:])
    assert ((t.actions >= 0) & (t.actions < 15)).all()
    assert t.observations.std() > 10  # real game pixels, not a blank screen


def test_recorded_outputs_are_the_agents_outputs(coinrun_trajectories, coinrun_agent):
    t = coinrun_trajectories
    with torch.no_grad():
        out = coinrun_agent(t.observations[1])
    np.testing.assert_allclose(out.logits.numpy(), t.logits[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.value.numpy(), t.values[1], rtol=1e-5, atol=1e-5)


def test_same_seed_identical_arrays_different_seed_differs(coinrun_agent, coinrun_trajectories):
    again = collect_trajectories(coinrun_agent, SMALL, seed=7, progress=False)
    for name in ("observations", "frames", "actions", "rewards", "firsts", "logits", "values"):
        np.testing.assert_array_equal(getattr(again, name), getattr(coinrun_trajectories, name))
    other = collect_trajectories(coinrun_agent, SMALL, seed=8, progress=False)
    assert not np.array_equal(other.observations, coinrun_trajectories.observations)


def test_breakout_rollout_with_display_frames(breakout_agent):
    t = collect_trajectories(breakout_agent, TrajectoryConfig(num_envs=2, num_steps=12), seed=0, progress=False)
    assert t.observations.shape == (2, 12, 84, 84, 4)
    assert t.frames.shape == (2, 12, 210, 160, 3)
    assert t.logits.shape == (2, 12, 4)
    assert t.frames.dtype == np.uint8 and t.frames.max() > 0


def test_observation_set_size_and_reproducibility(coinrun_agent):
    config = ObservationSetConfig(obs_num_envs=4, num_obs=3, obs_every=5)
    obs = collect_observation_set(coinrun_agent, config, seed=1, progress=False).observations
    assert obs.shape == (12, 64, 64, 3) and obs.dtype == np.uint8
    np.testing.assert_array_equal(
        obs, collect_observation_set(coinrun_agent, config, seed=1, progress=False).observations
    )
    # The observation set is a separate stream from the trajectories of the same seed.
    traj = collect_trajectories(coinrun_agent, TrajectoryConfig(num_envs=4, num_steps=6), seed=1, progress=False)
    assert not np.array_equal(obs[0], traj.observations[0, 5])


def test_agent_env_shape_mismatch_names_both_shapes(make_random_agent):
    clear_on_breakout = make_random_agent("coinrun", "clear")
    from understanding_rl_vision.envs import parse_env_id

    with pytest.raises(ObservationShapeError) as info:
        collect_trajectories(clear_on_breakout, SMALL, env_spec=parse_env_id("ALE/Breakout-v5"), progress=False)
    message = str(info.value)
    assert "(84, 84, 4)" in message and "(64, 64, 3)" in message
    assert "\n" not in message


def test_invalid_config_is_one_line_error():
    with pytest.raises(ConfigError, match="num_steps must be a positive integer"):
        TrajectoryConfig(num_steps=0)
