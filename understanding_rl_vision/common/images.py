"""Observations as pictures a person can look at."""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def viewable(observations: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 observations as (N, H, W, 3) RGB: colour as it is, grey repeated, and a
    stack of frames (Atari's 4 grey frames, or k RGB frames) shown as its newest frame."""
    obs = np.asarray(observations)
    if obs.ndim != 4 or len(obs) == 0 or obs.dtype != np.uint8 or obs.shape[-1] < 1:
        raise UserError(f"observations must be a non-empty uint8 array (N, H, W, C), got {obs.dtype} {obs.shape}")
    channels = obs.shape[-1]
    if channels == 3:
        return obs
    if channels % 3 == 0:
        return np.ascontiguousarray(obs[..., -3:])
    return np.repeat(obs[..., -1:], 3, axis=-1)
