"""A real checkpoint (the bundled agent) and settings small enough for a run in seconds."""

import shutil

import pytest

from understanding_rl_vision.demo import bundled_agent_path

SMALL_SETTINGS = dict(
    num_envs=2,
    num_steps=12,
    obs_num_envs=2,
    num_obs=6,
    obs_every=2,
    layers=("2b", "3c"),
    nmf_features=3,
    num_bookmarks=2,
)
"""2 trajectories x 12 frames, 12 observations, two layers, value attribution."""


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A copy of the bundled agent's checkpoint (tests may damage their own copies)."""
    path = tmp_path_factory.mktemp("ckpt") / "agent.safetensors"
    shutil.copyfile(bundled_agent_path(), path)
    return path


@pytest.fixture(scope="session")
def small():
    """Settings of a run that takes seconds (a fresh dict per session)."""
    return dict(SMALL_SETTINGS)
