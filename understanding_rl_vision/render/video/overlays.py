"""Maps drawn over frames, a batch of frames at a time: (N, h, w) maps onto (N, H, W, 3) frames.

Each function is one look (:data:`~understanding_rl_vision.attribution.methods.base.Look`), or the
page's drawing of NMF features. Maps are upsampled bilinearly in one batched call; nothing loops
over frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .colors import DIVERGING, JET, SEQUENTIAL, TABLE_SIZE

ALPHA_JET = 0.5
"""Seed 000 blends its jet heat map over the frame half and half."""
ACTOR_CHANNEL, CRITIC_CHANNEL = 2, 0
"""Seed 001 adds the actor's saliency to the blue channel and the critic's to the red."""
MIX_POWER = 2
"""Where features overlap each weighs in by its intensity squared, as on the page (draw.js)."""


def upsample(maps: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """(N, [K,] h, w) -> (N, [K,] H, W) for ``size`` (H, W), bilinear, float32."""
    tensor = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    flat = tensor.reshape(-1, 1, *tensor.shape[-2:])
    if tuple(flat.shape[-2:]) == size:
        return flat.reshape(*tensor.shape[:-2], *size).numpy()
    big = F.interpolate(flat, size=(size[0], size[1]), mode="bilinear", align_corners=False)
    return big.reshape(*tensor.shape[:-2], *size).numpy()


def _to_bytes(image: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(image + 0.5), 0, 255).astype(np.uint8)


def jet_blend(frames: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Seed 000's look: each frame's map min-max normalised, coloured by jet, blended at 0.5."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = (maps - low).max(axis=(1, 2), keepdims=True)
    unit = upsample((maps - low) / (span + 1e-8), frames.shape[1:3])
    heat = JET[np.clip(np.floor(unit * (TABLE_SIZE - 1) + 0.5), 0, TABLE_SIZE - 1).astype(np.intp)]
    return _to_bytes(ALPHA_JET * frames + (1 - ALPHA_JET) * heat.astype(np.float32))


def add_channels(frames: np.ndarray, layers: list[tuple[np.ndarray, float, int]]) -> np.ndarray:
    """Seed 001's look: each (maps, full-scale value, channel) adds up to 255 to that channel."""
    out = frames.astype(np.float32)
    for maps, scale, channel in layers:
        strength = np.clip(np.abs(maps) / scale, 0, 1) if scale > 0 else np.zeros_like(maps)
        out[..., channel] += 255 * upsample(strength, frames.shape[1:3])
    return _to_bytes(out)


def grey_under(frames: np.ndarray, opacity: float) -> np.ndarray:
    """The page's observation under maps: grey, half contrast, 1.5x brightness (its CSS filter
    ``grayscale(1) contrast(0.5) brightness(1.5)``) at ``opacity`` over white, as float 0..255."""
    luma = frames.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32) / 255
    grey = np.clip(((luma - 0.5) * 0.5 + 0.5) * 1.5, 0, 1) * 255
    return np.repeat((opacity * grey + (1 - opacity) * 255)[..., None], 3, axis=-1)


def _over(under: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return _to_bytes(under * (1 - alpha[..., None]) + rgb * alpha[..., None])


def table_overlay(frames: np.ndarray, maps: np.ndarray, scale: float, signed: bool, opacity: float) -> np.ndarray:
    """The page's heat map (heatmap.js): its colour table, opacity sqrt(|value| / scale), over the
    grey observation. Signed maps use the diverging table, zero in its middle; others the
    sequential one, negatives drawn as zero."""
    table = DIVERGING if signed else SEQUENTIAL
    t = maps / scale if scale > 0 else np.zeros_like(maps)
    t = np.clip(t, -1, 1) if signed else np.clip(t, 0, 1)
    index = np.floor(((t + 1) / 2 if signed else t) * (TABLE_SIZE - 1) + 0.5).astype(np.intp)
    size = frames.shape[1:3]
    # Colour at layer resolution, then upsample colour and opacity, as the page's canvas does.
    rgb = upsample(np.moveaxis(table[index].astype(np.float32), -1, 1), size)
    alpha = upsample(np.sqrt(np.abs(t)), size)
    return _over(grey_under(frames, opacity), np.moveaxis(rgb, 1, -1), np.clip(alpha, 0, 1))


def _bleed(maps: np.ndarray) -> np.ndarray:
    """The page's 3x3 blur at layer resolution, weights exp(-distance), renormalised at edges."""
    taps = np.exp(-np.hypot(*np.meshgrid([-1, 0, 1], [-1, 0, 1])))
    kernel = torch.from_numpy(taps.astype(np.float32))[None, None]
    tensor = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    flat = tensor.reshape(-1, 1, *tensor.shape[-2:])
    total = F.conv2d(flat, kernel, padding=1)
    weight = F.conv2d(torch.ones_like(flat[:1]), kernel, padding=1)
    return (total / weight).reshape(tensor.shape).numpy()


def features_overlay(
    frames: np.ndarray, strength: np.ndarray, colors: np.ndarray, scale: float, opacity: float
) -> np.ndarray:
    """NMF features as the page draws them (draw.js ``attributionImage``): feature k of
    ``strength`` (N, K, h, w), blurred, in ``colors[k]`` at intensity value / scale up to 1;
    overlapping features mix by intensity squared, and opacity is that of stacking them."""
    v = np.clip(_bleed(strength) / scale, 0, 1) if scale > 0 else np.zeros_like(strength)
    weight = v**MIX_POWER  # (N, K, h, w)
    total = weight.sum(axis=1)
    rgb = np.einsum("nkhw,kc->nchw", weight, colors.astype(np.float32)) / np.maximum(total, 1e-12)[:, None]
    alpha = 1 - np.prod(1 - v, axis=1)
    alpha[total <= 0] = 0
    size = frames.shape[1:3]
    big_rgb = np.moveaxis(upsample(rgb, size), 1, -1)
    return _over(grey_under(frames, opacity), big_rgb, np.clip(upsample(alpha, size), 0, 1))


def robust_scale(*arrays: np.ndarray, gain: float = 1.0, percentile: float = 99.0) -> float:
    """The value drawn at full colour: the page's rule (levels.js), the 99th percentile of the
    nonzero magnitudes over the whole trajectory, divided by the gain. 0 if all are zero."""
    values = np.concatenate([np.abs(a).ravel() for a in arrays])
    values = values[values > 0]
    if values.size == 0:
        return 0.0
    return float(np.percentile(values, percentile, method="inverted_cdf")) / gain
