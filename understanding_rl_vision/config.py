"""Typed, frozen configuration for each pipeline stage.

Defaults follow the original implementation; every field is documented where it is declared,
and the CLI exposes each one under the same name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class TrajectoryConfig:
    """The trajectories shown in the interface."""

    num_envs: int = 8
    """Parallel environments; each gives one trajectory."""
    num_steps: int = 512
    """Frames per trajectory."""

    def __post_init__(self) -> None:
        _positive(self, "num_envs", "num_steps")


@dataclass(frozen=True)
class ObservationSetConfig:
    """The separate set of observations that NMF and feature visualisation are fitted on."""

    num_envs: int = 32
    """Parallel environments to draw observations from."""
    num_obs: int = 128
    """Observations kept per environment."""
    obs_every: int = 128
    """Steps between two kept observations, so the set is not dominated by similar frames."""

    def __post_init__(self) -> None:
        _positive(self, "num_envs", "num_obs", "obs_every")


@dataclass(frozen=True)
class AdvantageConfig:
    """Generalised advantage estimation and the bookmarks drawn from it."""

    gamma: float | None = None
    """Discount; None takes the checkpoint's value (0.999 if it has none)."""
    lam: float | None = None
    """GAE lambda; None takes the checkpoint's value (0.95 if it has none)."""
    num_bookmarks: int = 16
    """Bookmarks of each kind: highest and lowest advantage, at most one per episode."""

    def __post_init__(self) -> None:
        for name in ("gamma", "lam"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value}")
        if self.num_bookmarks < 0:
            raise ConfigError(f"num_bookmarks must be >= 0, got {self.num_bookmarks}")


def _positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")
