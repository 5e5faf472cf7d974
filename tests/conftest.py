"""Shared fixtures: small real agents for real environments."""

from __future__ import annotations

import pytest

from understanding_rl_vision.agents import make_agent
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
