"""Does a map point at the game's objects? Masks from object boxes and two localisation scores.

The boxes are OCAtari's (Delfosse et al. 2023): ``(x, y, w, h)`` with ``x`` the column and ``y`` the
row of the top-left pixel, in screen pixels (Atari's 210 x 160). :func:`boxes_to_masks` draws them at
the map's resolution; the observation may keep only some screen rows (Greydanus et al. 2018 keep rows
35 to 195) and may be resized, so a map pixel belongs to a box when its centre, carried back to the
screen, lies inside the box.

The scores, batched over frames, as Quantus computes them where it can be checked:

* :func:`mass_share`: the share of the map's positive mass inside the mask (Kohlbrenner et al.
  2020's relevance mass accuracy; Quantus' ``AttributionLocalisation`` with ``positive_attributions
  =True, abs=False, normalise=False, weighted=False``, which adds 1e-9 to the total);
* :func:`pointing_hits`: whether the map's maximum falls in the mask (Zhang et al. 2018's pointing
  game; Quantus' ``PointingGame``, ``weighted=False``): with ties, a hit when any maximal pixel is in;
* :func:`area_share`: the mask's share of the frame, what a uniform map scores on either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _screen_positions(count: int, start: float, stop: float, device: torch.device) -> torch.Tensor:
    """(count,) screen coordinates of the centres of ``count`` map pixels spread over [start, stop)."""
    step = (stop - start) / count
    return start + (torch.arange(count, device=device, dtype=torch.float64) + 0.5) * step


def boxes_to_masks(
    boxes: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    screen: tuple[int, int],
    shape: tuple[int, int],
    crop_rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(N, H, W) bool: map pixels inside any valid box of their frame.

    ``boxes`` (N, B, 4) are ``(x, y, w, h)`` in screen pixels, ``valid`` (N, B) says which are real
    (OCAtari pads with empty slots). ``screen`` is (rows, columns) of the screen, ``shape`` the map's
    (H, W), ``crop_rows`` the (top, bottom) screen rows the observation keeps (None: all). A box
    covers columns ``x <= c < x + w`` and rows ``y <= r < y + h``.
    """
    box = torch.as_tensor(np.asarray(boxes) if not isinstance(boxes, torch.Tensor) else boxes)
    keep = torch.as_tensor(np.asarray(valid) if not isinstance(valid, torch.Tensor) else valid, device=box.device)
    if box.dim() != 3 or box.shape[-1] != 4 or keep.shape != box.shape[:2]:
        raise ValueError(f"boxes are (N, B, 4) and valid (N, B), got {tuple(box.shape)} and {tuple(keep.shape)}")
    box = box.to(torch.float64)
    top, bottom = crop_rows if crop_rows is not None else (0, screen[0])
    rows = _screen_positions(shape[0], top, bottom, box.device)  # (H,)
    cols = _screen_positions(shape[1], 0, screen[1], box.device)  # (W,)
    x, y, w, h = box.unbind(-1)  # (N, B)
    in_rows = (rows >= y.unsqueeze(-1)) & (rows < (y + h).unsqueeze(-1)) & keep.bool().unsqueeze(-1)  # (N, B, H)
    in_cols = (cols >= x.unsqueeze(-1)) & (cols < (x + w).unsqueeze(-1))  # (N, B, W)
    # a pixel is in a box when it is in the box's rows and columns: count the boxes with one product
    return torch.bmm(in_rows.transpose(1, 2).float(), in_cols.float()) > 0


def category_masks(
    boxes: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    categories: Sequence[Sequence[str]] | np.ndarray,
    screen: tuple[int, int],
    shape: tuple[int, int],
    crop_rows: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """One (N, H, W) mask per object category (OCAtari's ``category``: ``"Player"``, ``"Ball"``...),
    sorted by name; a frame without that category has an empty mask there.

    ``categories`` gives each box's category: an (N, B) array of str, or per frame a sequence of at
    most B names (the first boxes; the rest count as invalid). Only valid boxes name categories.
    """
    keep = np.asarray(valid.cpu() if isinstance(valid, torch.Tensor) else valid, dtype=bool)
    names = np.full(keep.shape, "", dtype=object)
    for frame, labels in enumerate(categories):
        labels = list(labels)
        if len(labels) > keep.shape[1]:
            raise ValueError(f"frame {frame} names {len(labels)} categories for {keep.shape[1]} boxes")
        names[frame, : len(labels)] = labels
    keep &= names != ""
    found = sorted({str(name) for name in names[keep]})
    return {name: boxes_to_masks(boxes, keep & (names == name), screen, shape, crop_rows) for name in found}


def mass_share(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) x (N, H, W) -> (N,): the share of each map's positive mass inside its mask.

    Negative values count as zero (evidence against the output is not "looking at" a place). NaN
    where the map has no positive mass (no share to take) or the mask is empty (the object is absent:
    a score there would only measure absence; Quantus gives NaN too).
    """
    positive = maps.detach().float().clamp(min=0).flatten(1)
    inside = masks.flatten(1).bool()
    total = positive.sum(dim=1)
    share = (positive * inside).sum(dim=1) / total
    undefined = (total <= 0) | ~inside.any(dim=1)
    return torch.where(undefined, torch.full_like(share, float("nan")), share)


def pointing_hits(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) x (N, H, W) -> (N,) bool: whether the map's maximum lies in the mask.

    With ties at the maximum, a hit when any maximal pixel is inside, as Quantus' ``PointingGame``. An
    empty mask is a miss (Quantus means NaN there, but assigns it into a bool array, where NaN reads as
    a hit); select frames with :func:`area_share` > 0 before averaging.
    """
    values = maps.detach().flatten(1)
    peak = values == values.amax(dim=1, keepdim=True)
    return (peak & masks.flatten(1).bool()).any(dim=1)


def area_share(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N,): the mask's share of the frame: the expected mass share of a uniform map and
    the hit rate of a maximum placed uniformly at random (the chance level of both scores)."""
    return masks.flatten(1).float().mean(dim=1)
