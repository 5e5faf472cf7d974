"""Deletion and insertion curves (Petsiuk et al. 2018; Samek et al. 2017's pixel flipping), batched.

A faithful map names the pixels the output depends on: removing them first (deletion) should move the
output fastest, and restoring them first onto a baseline (insertion) should bring it back fastest.
:func:`perturbation_curves` evaluates every point of every frame's curve as one stream of perturbed
images through ``forward``, in chunks of rows (frame x step), never one frame at a time.

* The unit is a pixel (all its channels move together) or, with ``patch > 1``, a square region of
  ``patch x patch`` pixels ranked by the sum of the map over it: Quantus' ``RegionPerturbation``
  (Samek et al. 2017), whose grid it reproduces, including the centred padding when the frame is
  not a multiple of the patch.
* Units are ranked by the map, descending; ties keep index order (row-major), so the curve does
  not depend on a sort's whims.
* Point ``s = 0 .. steps`` has the first ``round(s * U / steps)`` units (``U`` of them; halves round
  up) taken from the baseline (deletion), or from the frame onto the baseline (insertion). With
  ``steps = U`` each point moves one unit: Quantus' ``PixelFlipping`` with ``features_in_step = C``
  (``softmax=False``, maps without ties) is the deletion curve without its point 0; it asserts that
  ``features_in_step`` divides H x W, so it cannot move whole RGB pixels of a 64 x 64 frame at all.

The baseline is the caller's: :func:`gaussian_blur` gives the usual one (a blurred frame keeps its
colours and layout, so the perturbed images stay nearer the frames the agent saw than a black one).
:func:`random_maps` and :func:`centre_maps` are the reference maps a report compares a method with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

BLUR_SIGMA = 5.0
"""The blur of the baseline, in pixels at 64x64 (CoinRun's frames): wider than the game's sprites
(the agent, coins and enemies are 5 to 10 pixels across), so a blurred sprite is gone, while the
level's colours and layout survive. Scale it with the frame for other sizes."""
BLUR_TRUNCATE = 4.0
"""The kernel reaches ``round(BLUR_TRUNCATE * sigma)`` pixels, as scipy's ``gaussian_filter`` (at most the
frame less one, which reflect padding needs)."""

Mode = Literal["deletion", "insertion"]


def gaussian_blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W): a separable Gaussian blur with reflect padding (the edge pixel
    is the mirror, as torch's ``"reflect"`` and scipy's ``"mirror"``), so edges keep their colours."""
    if sigma <= 0:
        return images.clone()
    n, c, h, w = images.shape
    x = images.reshape(n * c, 1, h, w)
    for axis, size in ((2, h), (3, w)):
        radius = min(int(BLUR_TRUNCATE * sigma + 0.5), size - 1)
        if radius == 0:
            continue
        taps = torch.arange(-radius, radius + 1, dtype=torch.float64, device=images.device)
        kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
        kernel = (kernel / kernel.sum()).to(x.dtype)
        if axis == 2:
            x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
        else:
            x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return x.reshape(n, c, h, w)


def _padding(size: int, patch: int) -> int:
    """Rows (columns) before the first whole patch: Quantus' ``get_padding_size`` puts the floor of
    half the missing pixels before the frame."""
    return (-size % patch) // 2


def unit_ranks(maps: torch.Tensor, patch: int = 1) -> tuple[torch.Tensor, int]:
    """(N, H, W) -> ((N, H, W) each pixel's unit's rank, 0 = most important; the number of units).

    A unit is a pixel, or the ``patch x patch`` region holding it (ranked by the map's sum over it).
    """
    n, h, w = maps.shape
    if patch == 1:
        scores = maps.reshape(n, h * w)
        units, unit_of = h * w, None
    else:
        top, left = _padding(h, patch), _padding(w, patch)
        rows = (torch.arange(h, device=maps.device) + top) // patch
        cols = (torch.arange(w, device=maps.device) + left) // patch
        across = math.ceil((w + left) / patch)
        units = math.ceil((h + top) / patch) * across
        unit_of = (rows.unsqueeze(1) * across + cols).reshape(-1)  # (H * W,) row-major over the patch grid
        scores = torch.zeros(n, units, dtype=maps.dtype, device=maps.device)
        scores.index_add_(1, unit_of, maps.reshape(n, h * w))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(units, device=maps.device).expand(n, units))
    if unit_of is not None:
        rank = rank[:, unit_of]
    return rank.reshape(n, h, w), units


def _layout(inputs: torch.Tensor) -> torch.memory_format:
    """The inputs' memory layout, which the perturbed images keep: a rollout's frames are channels-last
    (their observations are (H, W, C)), and on the CPU the IMPALA network runs twice as fast on them."""
    if not inputs.is_contiguous() and inputs.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def perturbation_curves(
    forward: Callable[..., torch.Tensor],
    inputs: torch.Tensor,
    maps: torch.Tensor,
    baseline: torch.Tensor,
    steps: int,
    mode: Mode,
    chunk: int = 256,
    patch: int = 1,
    targets: torch.Tensor | None = None,
    by_frame: bool = False,
) -> torch.Tensor:
    """(N, steps + 1): ``forward`` on each frame as its most important units are deleted or inserted.

    ``inputs`` and ``baseline`` are (N, C, H, W), ``maps`` (N, H, W); ``forward`` maps (B, C, H, W)
    to (B,). Point ``s`` has the first ``round(s * U / steps)`` units of the map's ranking replaced by
    the baseline (deletion; point 0 is the frame) or taken from the frame onto the baseline
    (insertion; point 0 is the baseline). All ``N * (steps + 1)`` images go through ``forward`` in
    chunks of ``chunk`` rows under ``torch.no_grad``; see the module docstring.

    ``targets`` (N,) ints, for an output that differs by frame (the action taken): ``forward`` then
    returns (B, K) and each row keeps its frame's entry (a chunk mixes frames, so ``forward`` cannot).
    With ``by_frame``, ``forward(images, frames)`` is also told the frame of each row (B,), so a
    recurrent model reads each frame's own state.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode is 'deletion' or 'insertion', got {mode!r}")
    n, _, h, w = inputs.shape
    if maps.shape != (n, h, w) or baseline.shape != inputs.shape:
        raise ValueError(
            f"maps (N, H, W) and baseline (N, C, H, W) must fit inputs {tuple(inputs.shape)}, "
            f"got {tuple(maps.shape)} and {tuple(baseline.shape)}"
        )
    if targets is not None and targets.shape != (n,):
        raise ValueError(f"targets are one entry per frame, (N,) = ({n},), got {tuple(targets.shape)}")
    if steps < 1 or chunk < 1 or patch < 1:
        raise ValueError(f"steps, chunk and patch must be positive, got {steps}, {chunk}, {patch}")
    rank, units = unit_ranks(maps.detach(), patch)
    points = torch.arange(steps + 1, device=inputs.device)
    moved = (2 * points * units + steps) // (2 * steps)  # round(s * U / steps), halves up, in integers
    first, second = (baseline, inputs) if mode == "deletion" else (inputs, baseline)  # taken where moved
    rows = n * (steps + 1)
    out = torch.empty(rows, dtype=torch.float32, device=inputs.device)
    layout = _layout(inputs)
    with torch.no_grad():
        for start in range(0, rows, chunk):
            row = torch.arange(start, min(start + chunk, rows), device=inputs.device)
            frame, point = row // (steps + 1), row % (steps + 1)
            taken = (rank[frame] < moved[point].view(-1, 1, 1)).unsqueeze(1)  # (B, 1, H, W)
            images = torch.where(taken, first[frame], second[frame]).contiguous(memory_format=layout)
            values = forward(images, frame) if by_frame else forward(images)
            if targets is not None:
                values = values[
                    torch.arange(len(row), device=values.device), targets.to(values.device)[frame.to(values.device)]
                ]
            out[start : start + len(row)] = values.reshape(len(row)).float()
    return out.view(n, steps + 1)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """(N, S + 1) -> (N,): the trapezoid area with the curve's points spread over [0, 1], so an AUC is
    in the output's units (the mean output along the curve)."""
    return torch.trapezoid(curves.float(), dx=1.0 / (curves.shape[1] - 1), dim=1)


def random_maps(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(n, H, W) uniform draws on [0, 1) from ``generator`` (on its device): the chance reference."""
    return torch.rand((n, height, width), generator=generator, device=generator.device)


def centre_maps(n: int, height: int, width: int, sigma_fraction: float = 0.25) -> torch.Tensor:
    """(n, H, W): a Gaussian centred on the frame, sigma ``sigma_fraction`` of each side, peak 1.

    The centre-bias reference: in many games the action happens near the middle of the frame, so a
    method should beat this map before its localisation means anything.
    """
    rows = (torch.arange(height, dtype=torch.float32) - (height - 1) / 2) / (sigma_fraction * height)
    cols = (torch.arange(width, dtype=torch.float32) - (width - 1) / 2) / (sigma_fraction * width)
    picture = torch.exp(-0.5 * (rows.view(-1, 1) ** 2 + cols.view(1, -1) ** 2))
    return picture.expand(n, height, width).clone()
