"""Public API: ``run()`` builds an interface for a checkpoint, ``train()`` trains an agent.

``run`` lands with its own issue; until then it says so instead of pretending.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, NotImplementedYet


def run(checkpoint: str, **kwargs: Any) -> None:
    """Build the interactive interface for ``checkpoint`` (not implemented yet)."""
    raise NotImplementedYet("rl_clarity.run: not implemented yet: see README")


def train(
    env_name: str = "coinrun",
    *,
    save_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: bool = True,
    **config: Any,
) -> Path:
    """Train a PPO agent on ``env_name``; returns the path of the checkpoint in ``save_dir``.

    ``config`` takes any :class:`~understanding_rl_vision.training.PPOConfig` field (for
    example ``total_steps=5_000_000, bf16=True``); unknown names fail listing the valid ones.
    """
    from .training import make_config
    from .training import train as train_ppo

    if "env" in config:
        raise ConfigError("name the environment with env_name, not env")
    return train_ppo(
        make_config(env=env_name, **config), save_dir, resume=resume, progress=progress
    )
