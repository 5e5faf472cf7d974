"""A tiny image environment for tests and smoke runs, registered with Gymnasium.

Gymnasium ships no image environment that works without extra dependencies (CarRacing needs
Box2D), and Atari is slow to learn anything on. ``DotGrid`` is a few microseconds a step, so
tests of rollouts, training and attribution can use real environment code end to end.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvCreator

DOTGRID_ID = "understanding_rl_vision/DotGrid-v0"

# Action index -> (row, col) move; index 0 stays put.
_MOVES = np.array([(0, 0), (0, 1), (0, -1), (-1, 0), (1, 0)])


class DotGridEnv(gymnasium.Env):
    """Move a red dot onto a green target on a ``cells`` x ``cells`` grid.

    Reward 1 and termination on reaching the target; truncation after ``max_steps``. Each cell
    is ``cell_px`` pixels, so observations are (cells*cell_px, cells*cell_px, 3) uint8, or
    (H, W) uint8 when ``grey``. It has no ``get_action_meanings`` on purpose, so callers see the
    numbered-action path; ``continuous=True`` gives a Box action space to exercise rejection.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012  # gymnasium declares it so

    def __init__(
        self,
        cells: int = 6,
        cell_px: int = 4,
        max_steps: int = 30,
        grey: bool = False,
        continuous: bool = False,
    ):
        self.cells, self.cell_px, self.max_steps, self.grey = cells, cell_px, max_steps, grey
        size = cells * cell_px
        shape = (size, size) if grey else (size, size, 3)
        self.observation_space = spaces.Box(0, 255, shape, dtype=np.uint8)
        self.action_space = (
            spaces.Box(-1.0, 1.0, (2,), dtype=np.float32) if continuous else spaces.Discrete(len(_MOVES))
        )
        self._agent = np.zeros(2, dtype=np.int64)
        self._target = np.zeros(2, dtype=np.int64)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._agent = self.np_random.integers(0, self.cells, size=2)
        self._target = self._agent
        while np.array_equal(self._target, self._agent):
            self._target = self.np_random.integers(0, self.cells, size=2)
        self._steps = 0
        return self._render_obs(), {}

    def step(self, action: Any):
        # Continuous actions (only there to be rejected) move by the sign of (row, col).
        move = _MOVES[int(action)] if np.ndim(action) == 0 else np.sign(action).astype(np.int64)
        self._agent = np.clip(self._agent + move, 0, self.cells - 1)
        self._steps += 1
        terminated = bool(np.array_equal(self._agent, self._target))
        truncated = not terminated and self._steps >= self.max_steps
        return self._render_obs(), float(terminated), terminated, truncated, {}

    def _render_obs(self) -> np.ndarray:
        image = np.zeros((self.cells, self.cells, 3), dtype=np.uint8)
        image[tuple(self._target)] = (0, 200, 0)
        image[tuple(self._agent)] = (220, 30, 30)
        image = image.repeat(self.cell_px, axis=0).repeat(self.cell_px, axis=1)
        if self.grey:
            return (image.astype(np.uint16).sum(axis=-1) // 3).astype(np.uint8)
        return image


def register() -> None:
    """Register ``DotGrid`` with Gymnasium; safe to call any number of times."""
    if DOTGRID_ID not in gymnasium.registry:
        # an Env class is an entry point; gymnasium's EnvCreator protocol wants any **kwargs
        gymnasium.register(id=DOTGRID_ID, entry_point=cast(EnvCreator, DotGridEnv))
