"""Tiny real training runs shared by the training tests (a few hundred steps each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from understanding_rl_vision.training import PPOConfig, train


def tiny_config(**overrides) -> PPOConfig:
    """4 envs x 32 steps, one epoch of 2 minibatches: one update is 128 steps."""
    options = {"num_envs": 4, "num_steps": 32, "num_minibatches": 2, "update_epochs": 1, "total_steps": 128}
    return PPOConfig(**{**options, **overrides})


@pytest.fixture(scope="session")
def tiny():
    return tiny_config


@pytest.fixture(scope="session")
def leaper_run(tmp_path_factory) -> Path:
    """A one-update leaper run: short episodes that random play sometimes completes."""
    save_dir = tmp_path_factory.mktemp("leaper")
    train(tiny_config(env="leaper"), save_dir, progress=False)
    return save_dir
