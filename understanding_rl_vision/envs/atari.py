"""Atari games through Gymnasium's ALE v5 envs with DeepMind-style preprocessing.

The agent sees 84x84 grey frames, max-pooled over skipped frames and stacked; a person is shown
the 210x160 colour screen instead, because the preprocessed stack is hard to read. With
``observation="greydanus"`` the agent sees seed 001's 80x80 crop instead (:func:`greydanus_frame`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import UserError
from .gymnasium_env import _ListVecEnv, make_gymnasium_env, quiet_ale
from .spec import ATARI_OBSERVATIONS, AtariSpec

GREYDANUS_ROWS = (35, 195)
"""The rows of the 210-row screen Greydanus et al. keep (the playing field, without the score)."""

if TYPE_CHECKING:
    import gymnasium
    from ale_py.env import AtariEnv


def _check_spec(spec: AtariSpec) -> None:
    """Gymnasium checks these with bare asserts; say what is wrong instead."""
    problems = [
        f"{name} must be >= {low}, got {value}"
        for name, value, low in (
            ("frame_skip", spec.frame_skip, 1),
            ("frame_stack", spec.frame_stack, 1),
            ("screen_size", spec.screen_size, 1),
            ("noop_max", spec.noop_max, 0),
        )
        if value < low
    ]
    if spec.observation not in ATARI_OBSERVATIONS:
        problems.append(f"observation must be one of {', '.join(ATARI_OBSERVATIONS)}, got {spec.observation!r}")
    if not 0.0 <= spec.sticky_action_prob <= 1.0:
        problems.append(f"sticky_action_prob must be in [0, 1], got {spec.sticky_action_prob}")
    if problems:
        raise UserError(f"invalid Atari options for {spec.game}: {'; '.join(problems)}")


def _make_atari(spec: AtariSpec) -> gymnasium.Env:
    import ale_py
    import gymnasium
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformObservation

    gymnasium.register_envs(ale_py)
    quiet_ale()
    if spec.observation == "greydanus":
        screen = make_gymnasium_env(
            spec.id,
            frameskip=spec.frame_skip,  # ALE repeats the action; the last screen is kept, as in seed 001
            repeat_action_probability=spec.sticky_action_prob,
            full_action_space=spec.full_action_space,
        )
        size = spec.screen_size
        frames = TransformObservation(
            screen, lambda rgb: greydanus_frame(rgb, size), gymnasium.spaces.Box(0, 255, (size, size), np.uint8)
        )
        return FrameStackObservation(frames, stack_size=spec.frame_stack)
    env = make_gymnasium_env(
        spec.id,
        frameskip=1,  # AtariPreprocessing does the skipping (and max-pooling) itself
        repeat_action_probability=spec.sticky_action_prob,
        full_action_space=spec.full_action_space,
    )
    env = AtariPreprocessing(
        env,
        frame_skip=spec.frame_skip,
        screen_size=spec.screen_size,
        grayscale_obs=True,
        noop_max=spec.noop_max,
    )
    return FrameStackObservation(env, stack_size=spec.frame_stack)


def greydanus_frame(screen: np.ndarray, size: int = 80) -> np.ndarray:
    """Greydanus et al.'s preprocessing of an RGB screen, ``cv2.resize(screen[35:195].mean(2), (80, 80))``,
    rounded to uint8 (within 0.5 / 255 of their float frame after their ``/ 255``)."""
    import cv2

    grey = screen[GREYDANUS_ROWS[0] : GREYDANUS_ROWS[1]].mean(axis=2, dtype=np.float32)
    return np.rint(cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)).astype(np.uint8)


class AtariVecEnv(_ListVecEnv):
    """``num_envs`` Atari games; observations (84, 84, frame_stack) uint8, newest frame last."""

    def __init__(self, spec: AtariSpec, num_envs: int = 1, seed: int = 0):
        _check_spec(spec)
        self.cropped = spec.observation == "greydanus"  # a person sees the rows the agent sees
        super().__init__(spec, lambda: _make_atari(spec), num_envs, seed)

    def _shapes(self, env: gymnasium.Env) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        stack, height, width = cast("tuple[int, int, int]", env.observation_space.shape)  # stacked Box
        screen_height, screen_width = cast("AtariEnv", env.unwrapped).ale.getScreenDims()  # 210x160 for most games
        if self.cropped:  # a person sees the part the agent sees, so maps line up
            screen_height = GREYDANUS_ROWS[1] - GREYDANUS_ROWS[0]
        return (height, width, stack), (int(screen_height), int(screen_width), 3)

    def _observation(self, obs: Any) -> np.ndarray:
        # FrameStackObservation stacks on the first axis; our convention is channels last.
        return np.ascontiguousarray(np.moveaxis(np.asarray(obs), 0, -1))

    def ram(self) -> np.ndarray:
        return np.stack([cast("AtariEnv", env.unwrapped).ale.getRAM() for env in self._envs])

    def _frame(self, env: gymnasium.Env, obs: np.ndarray) -> np.ndarray:
        screen = cast("AtariEnv", env.unwrapped).ale.getScreenRGB()
        if self.cropped:
            return screen[GREYDANUS_ROWS[0] : GREYDANUS_ROWS[1]]
        return screen
