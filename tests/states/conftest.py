"""Shared tiny fixtures of the states-of-interest tests (made by :mod:`tiny_states`)."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_states import dotgrid_frames, tiny_agent, tiny_vae

from understanding_rl_vision.agents.base import Agent
from understanding_rl_vision.states import StateVAE


@pytest.fixture
def agent() -> Agent:
    return tiny_agent()


@pytest.fixture
def q_agent() -> Agent:
    return tiny_agent(q_values=True)


@pytest.fixture
def vae() -> StateVAE:
    return tiny_vae()


@pytest.fixture(scope="session")
def frames() -> np.ndarray:
    """32 real DotGrid frames, shared by every test (which must not change them)."""
    return dotgrid_frames(32)
