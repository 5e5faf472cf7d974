"""Dataset examples: show what a feature responds to by the observations that excite it most.

A feature direction is only a vector in channel space; people recognise it from pictures. As in
the original interface, each feature gets a legend thumbnail (its strongest examples, cropped
where they fire) and, per zoom level and density, a spatially-aware popup showing, at each place
in the frame, the observation that excites the feature most *there*.

Geometry, for observations of H x W pixels and a layer of h x w positions (s = H / h px each):

* layer position (i, j) is centred on pixel ((i + 0.5) s, (j + 0.5) s);
* a thumbnail patch is ``THUMBNAIL_CELLS`` positions wide (4 s px), at least 8 px and at most
  the observation, centred on the example's strongest position;
* a popup for (expand e, subdiv d) has G = max(1, round(h d / e)) cells per axis (halves round
  up). Cell a is centred on pixel (a + 0.5) H / G, where the feature's activation is interpolated
  bilinearly from the layer. Its patch is P = round(e s) px (at least 1, at most the observation),
  so the canvas is G P ~ H d px: d sets the popup's size, a larger e shows fewer, bigger patches.
  At d = 1 the patches tile the frame exactly.

Patches reaching past the frame are padded with a grey checkerboard, never black, which would
look like game content.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from ..common.images import viewable
from ..config import FeatureVisConfig
from ..errors import UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

THUMBNAIL_CELLS = 4
"""Thumbnail patch side, in layer positions."""
MIN_THUMBNAIL_PX = 8
CHECKER_SQUARE = 4
"""Side in pixels of the padding's squares, aligned to the observation's pixel grid."""
CHECKER_GREYS = (96, 160)
BATCH = 512
"""Observations projected at a time by :func:`direction_scores`."""


def _freeze(result: DataclassInstance) -> None:
    for f in fields(result):
        if isinstance(value := getattr(result, f.name), np.ndarray):
            value.setflags(write=False)


@dataclass(frozen=True, eq=False)
class Thumbnail:
    """Legend mosaic of a feature's strongest examples, best first in row-major tile order (ties,
    such as all-zero activations, in observation order). Arrays are read-only."""

    image: np.ndarray
    """(grid p, grid p, 3) uint8; tiles beyond the number of observations are checkerboard."""
    indices: np.ndarray
    """(grid * grid,) int32 observation in each tile, -1 for an empty tile."""
    positions: np.ndarray
    """(grid * grid, 2) int32 layer (row, col) of each example's maximum, -1 for an empty tile."""

    def __post_init__(self) -> None:
        _freeze(self)


@dataclass(frozen=True, eq=False)
class Popup:
    """Spatially-aware dataset examples at one zoom level and density. Arrays are read-only."""

    expand_mult: int
    subdiv_mult: float
    image: np.ndarray
    """(G P, G P, 4) uint8 RGBA; alpha is the cell's activation over the popup's largest one, and
    empty cells are transparent black."""
    index_grid: np.ndarray
    """(G, G) int32 observation shown in each cell, -1 where no observation activates it (> 0)."""
    activations: np.ndarray
    """(G, G) float32 activation of the shown observation at the cell centre, 0 where empty."""
    tops: np.ndarray
    """(G,) int32 observation row of each mosaic row's patch top (may be negative: padded)."""
    lefts: np.ndarray
    """(G,) int32 observation column of each mosaic column's patch left edge."""

    def __post_init__(self) -> None:
        _freeze(self)

    @property
    def cell_size(self) -> tuple[int, int]:
        """Pixel size (P_y, P_x) of one cell."""
        (gy, gx), (height, width) = self.index_grid.shape, self.image.shape[:2]
        return height // gy, width // gx


@dataclass(frozen=True, eq=False)
class FeatureImages:
    """Everything the interface shows for one feature."""

    thumbnail: Thumbnail
    popups: tuple[Popup, ...]
    """One per (expand_mult, subdiv_mult), expand-major, in the config's order."""

    def popup(self, expand_mult: int, subdiv_mult: float) -> Popup:
        for found in self.popups:
            if (found.expand_mult, found.subdiv_mult) == (expand_mult, subdiv_mult):
                return found
        raise UserError(f"no popup for expand_mult={expand_mult}, subdiv_mult={subdiv_mult}")


def direction_scores(activations, components, batch_size: int = BATCH) -> np.ndarray:
    """Activation maps (N, K, h, w) float32 of the unit-norm ``components`` (K, C) on a layer's
    ``activations`` (N, C, h, w), a numpy array or a torch tensor (projected on its device)."""
    comps = np.asarray(components, dtype=np.float64)
    if comps.ndim != 2 or len(comps) == 0 or not np.isfinite(comps).all():
        raise UserError(f"components must be a finite (K, C) array, K >= 1, got {comps.shape}")
    norms = np.linalg.norm(comps, axis=1, keepdims=True)
    if (norms == 0).any():
        raise UserError(f"components {np.flatnonzero(norms == 0).tolist()} are all zero")
    directions = (comps / norms).astype(np.float32)
    shape = tuple(activations.shape)
    if len(shape) != 4 or shape[1] != directions.shape[1]:
        raise UserError(
            f"activations must be (N, C, h, w) with the components' C = "
            f"{directions.shape[1]} channels, got shape {shape}"
        )
    n, channels, h, w = shape
    out = np.empty((n, len(directions), h, w), np.float32)
    if hasattr(activations, "detach"):  # a torch tensor
        import torch

        d = torch.as_tensor(directions, device=activations.device)
        for start in range(0, n, batch_size):
            chunk = activations[start : start + batch_size].detach().float()
            out[start : start + batch_size] = torch.einsum("nchw,kc->nkhw", chunk, d).cpu().numpy()
        return out
    acts = np.asarray(activations)
    if not np.issubdtype(acts.dtype, np.number):
        raise UserError(f"activations must be numeric, got dtype {acts.dtype}")
    for start in range(0, n, batch_size):
        chunk = acts[start : start + batch_size].astype(np.float32, copy=False)
        projected = directions @ chunk.reshape(len(chunk), channels, h * w)
        out[start : start + batch_size] = projected.reshape(len(chunk), -1, h, w)
    return out


def checkerboard(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Padding greys (..., len(rows), len(cols)) uint8 at observation pixel coordinates."""
    parity = (rows[..., :, None] // CHECKER_SQUARE + cols[..., None, :] // CHECKER_SQUARE) % 2
    return np.asarray(CHECKER_GREYS, np.uint8)[parity]


def crop_padded(observations: np.ndarray, indices, tops, lefts, height: int, width: int):
    """Crops (M, height, width, 3) of ``observations[indices]`` whose top-left pixels are (tops,
    lefts); whatever lies outside the observation is the grey checkerboard."""
    indices, tops, lefts = (np.asarray(a, np.int64).reshape(-1) for a in (indices, tops, lefts))
    big_h, big_w = observations.shape[1:3]
    rows, cols = tops[:, None] + np.arange(height), lefts[:, None] + np.arange(width)
    out = observations[
        indices[:, None, None], np.clip(rows, 0, big_h - 1)[:, :, None], np.clip(cols, 0, big_w - 1)[:, None, :]
    ]
    outside = ((rows < 0) | (rows >= big_h))[:, :, None] | ((cols < 0) | (cols >= big_w))[:, None]
    if outside.any():
        out[outside] = checkerboard(rows, cols)[outside][:, None]
    return out


def _round(x) -> np.ndarray:
    """Round halves up (numpy and Python round them to even)."""
    return np.floor(np.asarray(x) + 0.5).astype(np.int64)


def _tops(centres: np.ndarray, size: int) -> np.ndarray:
    """First pixel of patches of ``size`` px centred on ``centres``."""
    return _round(centres - size / 2)


def _mosaic(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Tiles (rows cols, p_y, p_x, D) in row-major order as one (rows p_y, cols p_x, D) image."""
    _, py, px, depth = tiles.shape
    grid = tiles.reshape(rows, cols, py, px, depth).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid.reshape(rows * py, cols * px, depth))


def thumbnail(observations: np.ndarray, scores: np.ndarray, grid: int = 4) -> Thumbnail:
    """Legend mosaic for one feature's activation maps ``scores`` (N, h, w)."""
    n, h, w = scores.shape
    big_h, big_w = observations.shape[1:3]
    ph, pw = (
        max(MIN_THUMBNAIL_PX, min(int(_round(THUMBNAIL_CELLS * big / small)), big))
        for big, small in ((big_h, h), (big_w, w))
    )
    flat = scores.reshape(n, h * w)
    peak_at = flat.argmax(axis=1)
    best = np.argsort(-flat[np.arange(n), peak_at], kind="stable")[: grid * grid]
    rows, cols = np.divmod(peak_at[best], w)
    tiles = np.empty((grid * grid, ph, pw, 3), np.uint8)
    tiles[: len(best)] = crop_padded(
        observations, best, _tops((rows + 0.5) * big_h / h, ph), _tops((cols + 0.5) * big_w / w, pw), ph, pw
    )
    tiles[len(best) :] = checkerboard(np.arange(ph), np.arange(pw))[..., None]
    indices, positions = np.full(grid * grid, -1, np.int32), np.full((grid * grid, 2), -1, np.int32)
    indices[: len(best)], positions[: len(best)] = best, np.stack([rows, cols], axis=1)
    return Thumbnail(_mosaic(tiles, grid, grid), indices, positions)


def popup_cells(layer_size: int, expand_mult: int, subdiv_mult: float) -> int:
    """Popup cells G along an axis of ``layer_size`` positions (see the module docstring)."""
    return max(1, int(_round(layer_size * subdiv_mult / expand_mult)))


def _interpolation(layer_size: int, cells: int) -> np.ndarray:
    """(cells, layer_size) bilinear weights that sample the layer at the cells' centres."""
    u = np.clip((np.arange(cells) + 0.5) * layer_size / cells - 0.5, 0, layer_size - 1)
    lo = np.floor(u).astype(np.int64)
    weights = np.zeros((cells, layer_size), np.float32)
    np.add.at(weights, (np.arange(cells), lo), 1 - (u - lo))
    np.add.at(weights, (np.arange(cells), np.minimum(lo + 1, layer_size - 1)), u - lo)
    return weights


def _ranked(row: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """The k observations with the largest ``row`` (N,) values, largest first, and the values."""
    top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
    top = top[np.argsort(-row[top], kind="stable")]
    return top.tolist(), row[top].tolist()


def assign(values: np.ndarray, max_uses: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy choice of an observation per cell from ``values`` (cells, N): (cell, observation)
    pairs are taken in decreasing value, skipping filled cells and observations already used
    ``max_uses`` times. Returns (cells,) int32 observations and float32 values; a cell whose best
    remaining value is <= 0 stays empty (-1, 0)."""
    num_cells, n = values.shape
    # At most (cells - 1) // max_uses observations are used up before the last cell is filled, so
    # a cell needs no more candidates than that plus one. Most need only their best: the rest are
    # ranked when a cell's best is used up (then it restarts, as ties may come out reordered).
    depth = min(n, (num_cells - 1) // max_uses + 1)
    best = values.argmax(axis=1)
    cand = [[obs] for obs in best.tolist()]
    cand_values = [[v] for v in values[np.arange(num_cells), best].tolist()]
    heap = [(-cand_values[cell][0], cell, 0) for cell in range(num_cells)]
    heapq.heapify(heap)
    uses = [0] * n
    chosen, chosen_values = np.full(num_cells, -1, np.int32), np.zeros(num_cells, np.float32)
    while heap:
        negative, cell, rank = heapq.heappop(heap)
        if negative >= 0:
            break
        obs = cand[cell][rank]
        if uses[obs] < max_uses:
            uses[obs] += 1
            chosen[cell], chosen_values[cell] = obs, -negative
            continue
        if rank + 1 == len(cand[cell]):
            if rank + 1 == depth:  # every observation is used up: only when max_uses n < cells
                continue
            cand[cell], cand_values[cell] = _ranked(values[cell], depth)
            rank = -1
        heapq.heappush(heap, (-cand_values[cell][rank + 1], cell, rank + 1))
    return chosen, chosen_values


def popup(
    observations: np.ndarray, scores: np.ndarray, expand_mult: int, subdiv_mult: float, max_reuse_fraction: float = 0.1
) -> Popup:
    """Spatially-aware popup for one feature's activation maps ``scores`` (N, h, w)."""
    by_position = np.ascontiguousarray(scores.transpose(1, 2, 0))
    return _popup(observations, by_position, expand_mult, subdiv_mult, max_reuse_fraction)


def _popup(observations, by_position, expand_mult, subdiv_mult, max_reuse_fraction) -> Popup:
    """:func:`popup` from maps laid out (h, w, N), so each position's values are contiguous."""
    h, w, n = by_position.shape
    big_h, big_w = observations.shape[1:3]
    gy, gx = popup_cells(h, expand_mult, subdiv_mult), popup_cells(w, expand_mult, subdiv_mult)
    if (gy, gx) != (h, w):
        by_position = _interpolation(h, gy) @ by_position.reshape(h, w * n)
        by_position = _interpolation(w, gx) @ by_position.reshape(gy, w, n)
    max_uses = math.ceil(gy * gx / (max_reuse_fraction * n))
    chosen, values = assign(by_position.reshape(gy * gx, n), max_uses)
    ph, pw = (min(big, max(1, int(_round(expand_mult * big / small)))) for big, small in ((big_h, h), (big_w, w)))
    row_tops = _tops((np.arange(gy) + 0.5) * big_h / gy, ph).astype(np.int32)
    col_lefts = _tops((np.arange(gx) + 0.5) * big_w / gx, pw).astype(np.int32)
    tops, lefts = np.repeat(row_tops, gx), np.tile(col_lefts, gy)
    cells = np.zeros((gy * gx, ph, pw, 4), np.uint8)
    if (filled := chosen >= 0).any():
        cells[filled, ..., :3] = crop_padded(observations, chosen[filled], tops[filled], lefts[filled], ph, pw)
        alpha = _round(255 * values[filled] / values[filled].max())
        cells[filled, ..., 3] = np.clip(alpha, 0, 255)[:, None, None]
    return Popup(
        expand_mult,
        subdiv_mult,
        _mosaic(cells, gy, gx),
        chosen.reshape(gy, gx),
        values.reshape(gy, gx),
        row_tops,
        col_lefts,
    )


def feature_images(
    observations, activations, components, config: FeatureVisConfig = FeatureVisConfig()
) -> list[FeatureImages]:
    """Thumbnail and every configured popup of each feature, in ``components``' order.

    ``observations`` (N, H, W, C) uint8 (shown as :func:`~..common.images.viewable` makes them);
    ``activations`` (N, C, h, w) of one layer on them (numpy
    or torch); ``components`` (K, C) feature directions in channel space (normalised here).
    """
    obs = viewable(observations)
    if not hasattr(activations, "shape"):
        activations = np.asarray(activations)
    if len(activations.shape) != 4 or activations.shape[0] != len(obs):
        raise UserError(
            f"activations must be (N, C, h, w) for the N = {len(obs)} observations, "
            f"got shape {tuple(activations.shape)}"
        )
    scores = direction_scores(activations, components)
    if not np.isfinite(scores).all():
        raise UserError("activations contain NaN or infinity")
    results = []
    for k in range(scores.shape[1]):
        by_position = np.ascontiguousarray(scores[:, k].transpose(1, 2, 0))
        popups = tuple(
            _popup(obs, by_position, e, d, config.max_reuse_fraction)
            for e in config.expand_mults
            for d in config.subdiv_mults
        )
        results.append(FeatureImages(thumbnail(obs, scores[:, k], config.thumbnail_grid), popups))
    return results
