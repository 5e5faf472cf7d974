"""Shared fixtures: small real agents for real environments."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from understanding_rl_vision.agents import make_agent
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.envs import make_vec_env


def random_agent(env_name: str, architecture: str, seed: int = 0, **env_options):
    """A freshly initialised agent whose shapes come from the real environment."""
    with make_vec_env(env_name, num_envs=1, seed=0, **env_options) as env:
        return make_agent(architecture, env.spec, env.observation_shape, env.action_names, seed=seed)


@pytest.fixture(scope="session")
def make_random_agent():
    return random_agent


@pytest.fixture(scope="session")
def coinrun_agent():
    return random_agent("coinrun", "impala", distribution_mode="easy")


@pytest.fixture(scope="session")
def breakout_agent():
    return random_agent("ALE/Breakout-v5", "nature")


@pytest.fixture(scope="session")
def sb3_zips(tmp_path_factory) -> Path:
    """PPO, A2C and DQN zips that real Stable-Baselines3 trained briefly on ALE Breakout, an MlpPolicy
    zip, and SB3's own outputs on 16 observations (reference.npz); made in a subprocess so that
    the tests' process never imports SB3."""
    out = tmp_path_factory.mktemp("sb3")
    script = Path(__file__).parent / "agents" / "sb3_reference.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True, timeout=600)
    return out


GREYDANUS_BREAKOUT = {"observation": "greydanus", "frame_stack": 1, "screen_size": 80}
"""Seed 001's Atari observations: one 80x80 grey crop per step."""


@pytest.fixture(scope="session")
def lstm_agent():
    """Seed 001's A3C LSTM network, freshly initialised, on ALE Breakout with its preprocessing."""
    return random_agent("ALE/Breakout-v5", "lstm", **GREYDANUS_BREAKOUT)


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
