"""Public API: ``run()`` builds an interface for a checkpoint, ``train()`` trains an agent.

Both land with their own issues; until then they say so instead of pretending.
"""

from __future__ import annotations

from typing import Any

from .errors import NotImplementedYet


def run(checkpoint: str, **kwargs: Any) -> None:
    """Build the interactive interface for ``checkpoint`` (not implemented yet)."""
    raise NotImplementedYet("rl_clarity.run: not implemented yet: see README")


def train(env_name: str, **kwargs: Any) -> None:
    """Train a PPO agent on ``env_name`` (not implemented yet)."""
    raise NotImplementedYet("rl_clarity.train: not implemented yet: see README")
