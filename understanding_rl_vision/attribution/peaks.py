"""Batched 2-D peak detection, for the attention tree (seed 002) and anything else that wants peaks.

The tree's roots are the strongest *peaks* of the attention map, and each node's children the
strongest peaks of its contribution map one layer below. Peaks, not the largest cells, because
neighbouring cells of a convolutional map share most of their inputs: the largest cells of a map are
usually one bump counted several times.

:func:`find_peaks` finds them for every map of a batch at once, with a minimum distance and a minimum
*topographic prominence* (how far a peak must descend before it can climb to higher ground).
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
from torch.nn import functional as F

from ..errors import UserError


def find_peaks(
    maps: torch.Tensor, count: int, min_distance: int = 1, prominence: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` highest peaks of each map of ``maps`` (B, h, w).

    A cell is a peak when all of these hold:

    * its value is positive (only positive peaks count);
    * it is the largest cell of its (2 * min_distance + 1)^2 window; among equal cells the first in
      raster order wins, and of an 8-connected flat top of equal cells only its first cell can be a
      peak, so a plateau gives one peak, not many;
    * its *prominence* is at least ``prominence`` times the map's largest absolute value. Prominence
      is topographic prominence on the 8-connected grid: the peak's height minus the highest level
      down to which one must descend on the way to any strictly higher cell (the key col). The map's
      highest cell has no higher ground; its prominence is its height above the map's lowest cell. A
      shoulder on the flank of a bump therefore has almost none, and a cell next to a higher cell has
      none; so with any positive ``prominence`` two peaks are never adjacent. Summits of exactly equal
      height are each measured against strictly higher ground. Computed exactly, for
      every map at once, by one grey-scale reconstruction by dilation of ``map - threshold`` under the
      map: a peak has the prominence asked for exactly when the reconstruction does not lift it.

    Returns ``(scores, ys, xs, valid)``, each (B, count), best first (ties: first in raster order):
    the peaks' values, rows and columns, and whether the slot holds a peak. Slots beyond the peaks a
    map has are padding: valid False, score 0, row and column 0.
    """
    check_peak_settings(count, min_distance, prominence)
    if maps.dim() != 3:
        raise UserError(f"find_peaks needs maps of shape (B, h, w), got {tuple(maps.shape)}")
    values = maps.detach()
    if not values.is_floating_point():
        values = values.float()
    batch, height, width = values.shape
    if batch == 0 or height == 0 or width == 0:
        empty = torch.zeros(batch, count, dtype=torch.int64, device=values.device)
        return values.new_zeros(batch, count), empty, empty.clone(), empty.bool()
    is_max, tied = _window_maxima(values, min_distance)
    peaks = (values > 0) & is_max
    flat = (peaks & tied).flatten(1).any(1)  # maps where a candidate may sit on a flat top
    if bool(flat.any()):
        rows = flat.nonzero()[:, 0]
        peaks[rows] &= _first_of_flat_tops(values[rows])
    if prominence > 0:
        peaks = _prominent(values, peaks, prominence)
    ranked = torch.where(peaks, values, torch.tensor(-math.inf, dtype=values.dtype, device=values.device))
    order = torch.sort(ranked.flatten(1), dim=1, descending=True, stable=True).indices[:, :count]
    scores = ranked.flatten(1).gather(1, order)
    valid = torch.isfinite(scores)
    scores = torch.where(valid, scores, torch.zeros_like(scores))
    cells = torch.where(valid, order, torch.zeros_like(order))
    if order.shape[1] < count:  # fewer cells than peaks asked for
        pad = count - order.shape[1]
        scores, cells, valid = F.pad(scores, (0, pad)), F.pad(cells, (0, pad)), F.pad(valid, (0, pad))
    return scores, cells // width, cells % width, valid


def check_peak_settings(count: int, min_distance: int, prominence: float) -> None:
    """Raise a :class:`UserError` unless ``count`` (>= 1), ``min_distance`` (>= 0) and ``prominence``
    (finite, >= 0) are settings :func:`find_peaks` accepts; for callers that check before working."""
    if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 1:
        raise UserError(f"count must be an integer >= 1, got {count!r}")
    if not isinstance(min_distance, numbers.Integral) or isinstance(min_distance, bool) or min_distance < 0:
        raise UserError(f"min_distance must be an integer >= 0, got {min_distance!r}")
    if not (isinstance(prominence, numbers.Real) and math.isfinite(prominence) and prominence >= 0):
        raise UserError(f"prominence must be a finite number >= 0, got {prominence!r}")


def _running_max(values: torch.Tensor, dim: int, starts: range, length: int) -> torch.Tensor:
    """Max of the slices ``[start, start + length)`` of ``values`` along ``dim``, over ``starts``.
    Shifted slices, not ``max_pool2d``, whose CPU kernel is slow on many small maps."""
    return functools.reduce(torch.maximum, (values.narrow(dim, start, length) for start in starts))


def _window_maxima(values: torch.Tensor, distance: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells that are the largest of their (2d+1)^2 window, ties going to the first in raster order
    (everything before a cell in its window must be smaller, everything after no larger); and the
    cells that might share a flat top with a later cell (with d = 0, every cell: no window shows it)."""
    if distance == 0:
        every = torch.ones_like(values, dtype=torch.bool)
        return every, every
    d, (height, width) = distance, values.shape[1:]
    padded = F.pad(values, (d, d, d, d), value=-math.inf)
    wide = _running_max(padded, 2, range(2 * d + 1), width)  # each padded row's max over columns x-d..x+d
    above = _running_max(wide, 1, range(d), height)
    below = _running_max(wide, 1, range(d + 1, 2 * d + 1), height)
    row = padded.narrow(1, d, height)
    left = _running_max(row, 2, range(d), width)
    right = _running_max(row, 2, range(d + 1, 2 * d + 1), width)
    after = torch.maximum(below, right)
    return (torch.maximum(above, left) < values) & (after <= values), after == values


_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def _neighbours(values: torch.Tensor, fill: float) -> torch.Tensor:
    """The 8 neighbours of every cell of (B, h, w): (B, 8, h, w), ``fill`` beyond the border."""
    height, width = values.shape[1:]
    padded = F.pad(values[:, None], (1, 1, 1, 1), value=fill)[:, 0]
    return torch.stack([padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in _NEIGHBOURS], 1)


def _first_of_flat_tops(values: torch.Tensor) -> torch.Tensor:
    """False for positive cells with an equal 8-connected path to an earlier cell (raster order), so
    each flat top keeps one cell. Labels spread through equal neighbours until they settle; maps
    without ties (nearly all) settle at once."""
    equal = (_neighbours(values, math.nan) == values[:, None]) & (values > 0)[:, None]
    if not bool(equal.any()):
        return torch.ones_like(values, dtype=torch.bool)
    height, width = values.shape[1:]
    first = torch.arange(height * width, device=values.device).view(1, height, width)
    labels, beyond = first.expand_as(values), height * width  # beyond: later than every cell
    for _ in range(height * width):
        reached = torch.where(equal, _neighbours(labels, beyond), beyond).amin(1)
        spread = torch.minimum(labels, reached)
        if torch.equal(spread, labels):
            break
        labels = spread
    return labels == first


def _prominent(values: torch.Tensor, candidates: torch.Tensor, prominence: float) -> torch.Tensor:
    """The ``candidates`` whose topographic prominence is >= ``prominence`` x the map's largest |value|.

    No peak rises higher above its key col than above the map's lowest cell (for the highest cell,
    that height is its prominence), so that bound filters first. Then ``reconstruct(map - t, map)``
    raises each cell to the highest ``min(start - t, path minimum)`` over paths from any start: a
    candidate stays at ``map - t`` exactly when no strictly higher cell is reachable without descending
    below ``map - t``, i.e. its prominence is at least ``t``. Paths through cells no higher than every
    candidate's ``map - t`` cannot lift any, so the flood is kept off them (it would otherwise spread
    over the zeros of a sparse map, one cell per step). A map with one candidate left needs no flood:
    it is the map's highest cell.
    """
    flat = values.flatten(1)
    threshold = (prominence * flat.abs().amax(1)).view(-1, 1, 1)
    kept = candidates & (values - flat.amin(1).view(-1, 1, 1) >= threshold)
    several = kept.flatten(1).sum(1) >= 2
    if bool(several.any()):
        rows = several.nonzero()[:, 0]
        heights, marker = values[rows], values[rows] - threshold[rows]
        floor = torch.where(kept[rows], marker, math.inf).flatten(1).amin(1).view(-1, 1, 1)
        above = heights > floor
        lifted = _reconstruct(torch.where(above, marker, -math.inf), torch.where(above, heights, -math.inf)) > marker
        kept[rows] &= ~lifted
    return kept


def _reconstruct(marker: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grey-scale reconstruction by dilation of ``marker`` under ``mask`` (8-connected), (B, h, w)."""
    current, (height, width) = marker, marker.shape[1:]
    for _ in range(height * width):
        padded = F.pad(current, (1, 1, 1, 1), value=-math.inf)
        wide = _running_max(padded, 2, range(3), width)
        grown = torch.minimum(_running_max(wide, 1, range(3), height), mask)
        if torch.equal(grown, current):
            break
        current = grown
    return current
