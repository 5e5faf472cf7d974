"""The one vectorised environment interface every family implements.

Semantics follow gym3/Procgen ("same-step autoreset"): after ``step``, an environment whose
episode just ended has already been reset, so ``obs[i]`` is the first observation of the next
episode and ``first[i]`` is True. This keeps rollouts free of special cases: every stored
observation is one the agent actually acted on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .actions import action_groups
from .spec import EnvSpec


@dataclass(frozen=True)
class Episode:
    """Summary of an episode that ended during the last ``step``."""

    env_index: int
    total_reward: float
    length: int
    level_complete: bool | None  # Procgen reports whether the level was won; others None


@dataclass(frozen=True)
class EnvStep:
    """What all environments report after ``reset`` or ``step``.

    Shapes use N = num_envs. ``obs`` is what the agent sees; ``frame`` is what a person would
    see (for Atari the 210x160 colour screen, not the 84x84 grey stack).
    """

    obs: np.ndarray  # (N, H, W, C) uint8
    frame: np.ndarray  # (N, h, w, 3) uint8
    reward: np.ndarray  # (N,) float32: reward for the action just taken; 0 after reset
    first: np.ndarray  # (N,) bool: obs starts an episode (the previous action ended one)
    episodes: tuple[Episode, ...] = ()  # episodes that ended with the action just taken


class EpisodeTracker:
    """Running return and length of each copy's episode, turned into :class:`Episode` records."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def reset(self) -> None:
        self.returns[:] = 0
        self.lengths[:] = 0

    def add(self, reward: np.ndarray) -> None:
        """Count one step of every copy (call before ending episodes, so the last reward counts)."""
        self.returns += reward
        self.lengths += 1

    def end(self, index: int, level_complete: bool | None = None) -> Episode:
        episode = Episode(index, float(self.returns[index]), int(self.lengths[index]), level_complete)
        self.returns[index] = 0
        self.lengths[index] = 0
        return episode


class VecEnv(ABC):
    """``num_envs`` copies of one environment, stepped together."""

    spec: EnvSpec
    num_envs: int
    observation_shape: tuple[int, int, int]  # (H, W, C), uint8
    frame_shape: tuple[int, int, int]  # (h, w, 3), uint8
    action_names: tuple[str, ...]

    @abstractmethod
    def reset(self) -> EnvStep:
        """Start fresh episodes in every copy; ``first`` is all True."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> EnvStep:
        """Apply one integer action per copy, shape (N,)."""

    @abstractmethod
    def close(self) -> None:
        """Release native resources."""

    def ram(self) -> np.ndarray | None:
        """(N, R) uint8: each copy's console RAM now, for games whose objects can be read from it
        (Atari, through OCAtari); None for the others."""
        return None

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    @property
    def action_groups(self) -> dict[str, tuple[int, ...]]:
        """Action indices grouped by arrow direction (RIGHT, LEFT, UP, DOWN, no-arrow)."""
        return action_groups(self.action_names)

    def __enter__(self) -> VecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
