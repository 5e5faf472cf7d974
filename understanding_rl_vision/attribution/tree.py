"""Seed 002's attention tree (Nikulin et al. 2019): which cells feed the attention's strongest peaks.

The roots are the strongest *peaks* of the attention map (the sum of its K masks). Each node's
children are the strongest peaks of its *contribution map* one layer below: activation x gradient of
the node's value (its layer's channel sum at its cell), summed over channels.

Three parts, each usable alone:

* :func:`~.peaks.find_peaks` (:mod:`.peaks`): batched 2-D peak detection with a minimum distance and
  a minimum topographic prominence.
* :func:`~.receptive_fields.receptive_fields` (:mod:`.receptive_fields`): where each cell of a layer
  looks in the input, from the geometry of the model's ``torch.fx`` graph.
* :func:`attention_tree` (here): one forward pass, then per level a few backward passes, each serving
  every frame.

Levels below the attention in a convolutional trunk depend on the level above only through a small
window, so parents whose windows cannot overlap share one backward pass (the row colouring of sparse
Jacobians): the bottom level of a Nature trunk needs 4 passes for any number of parents, not 27.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .hooks import capture, find_modules, forward_hooks, frozen_parameters
from .peaks import check_peak_settings, find_peaks
from .receptive_fields import Field, ReceptiveField, TreeGeometry, tree_geometry

CANCELLATION = 256
"""A contribution no larger than this many units of rounding (machine epsilon) of the sum of its
channels' magnitudes is taken as zero: it is what cancellation leaves of an exact zero."""
DEFAULT_CHUNK = 64
"""Frames per forward pass in :func:`attention_tree`; the backward passes hold a few gradients of the
lower layers per frame, so memory grows with this."""


@dataclass(frozen=True)
class Trees:
    """One attention tree per frame, as rectangular arrays (CPU tensors).

    Each frame has T = count + count^2 + ... + count^(depth + 1) node slots in breadth-first order:
    the ``count`` roots, then the children of root 0, of root 1, ..., then their children in the same
    order. Node ``i``'s children are slots ``first + (i - previous_first) * count + k``, so the shape
    of the tree is fixed and only ``valid`` says which slots hold a node.
    """

    layers: tuple[str, ...]
    """The layers, top (the attention) to bottom; ``level`` indexes them."""
    parent: torch.Tensor
    """(N, T) int64: the slot of each node's parent, -1 for roots."""
    level: torch.Tensor
    """(N, T) int64: the node's depth, 0 for roots: its layer is ``layers[level]``."""
    y: torch.Tensor
    """(N, T) int64: the node's row in its layer's map (0 in padding slots)."""
    x: torch.Tensor
    """(N, T) int64: the node's column in its layer's map (0 in padding slots)."""
    contribution: torch.Tensor
    """(N, T) float32: for a root, the attention there (summed over the masks); for a child, its
    contribution to its parent's value, activation x gradient summed over channels (0 in padding)."""
    valid: torch.Tensor
    """(N, T) bool: whether the slot holds a node; False for padding (a map with fewer peaks than
    ``count``) and for every descendant of an invalid slot."""
    boxes: torch.Tensor
    """(N, T, 4) float32: the node's receptive field (top, left, bottom, right) as fractions of the
    input's height and width, in [0, 1] (0 in padding); see :class:`ReceptiveField`. Below the root,
    a child's box lies inside its parent's wherever the layer above depends on it only through
    convolutions and pools; not where something mixes locations (the attention's softmax)."""


@contextmanager
def _explaining(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters inside the block; every module's mode restored after."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with frozen_parameters(model):
            yield
    finally:
        for module, training in modes:
            module.training = training


def attention_tree(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Sequence[str],
    count: int = 3,
    min_distance: int = 1,
    prominence: float = 0.05,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> Trees:
    """Seed 002's attention tree for each frame of ``inputs`` (N, C, H, W), the model's input.

    ``layers[0]`` is the root level, usually the model's ``attention_layer`` (N, K, h, w): its map is
    the sum over the K masks, and the roots are its ``count`` strongest peaks. ``layers[1:]`` are
    layers below it, top to bottom (each must feed the one before it), e.g. ``relu3, relu2, relu1``
    for the FLS agent, ``normalize, relu2, relu1`` for the attention agent: its relu3 reaches the
    mask only through a per-location L2 normalisation, so the mask is blind to relu3's scale and
    activation x gradient there is zero (relu3 would get no children).
    A node's value is its layer's channel sum at its cell; its children are the ``count`` strongest
    peaks of its contribution map one layer down (activation x gradient of the value, summed over
    channels; only positive contributions make peaks). Peaks are :func:`find_peaks`' with
    ``min_distance`` and ``prominence``. The model runs in eval mode without touching parameters'
    gradients; its modes and ``requires_grad`` flags are restored. Frames are independent: a batch
    gives what each frame gives alone. See :class:`Trees` for the result.
    """
    layers = tuple(layers)
    check_peak_settings(count, min_distance, prominence)
    if not layers:
        raise UserError("an attention tree needs at least its root layer")
    if len(set(layers)) != len(layers):
        raise UserError(f"layers repeat: {', '.join(layers)}")
    if chunk_size < 1:
        raise UserError(f"chunk_size must be >= 1, got {chunk_size}")
    find_modules(model, layers)
    inputs = torch.as_tensor(inputs)
    if inputs.dim() != 4:
        raise UserError(f"inputs must be (N, C, H, W), got shape {tuple(inputs.shape)}")
    geometry = tree_geometry(model, layers)
    height, width = inputs.shape[2:]
    if len(inputs):
        settings = (count, min_distance, prominence)
        parts = [_grow(model, chunk, layers, geometry, settings) for chunk in inputs.split(chunk_size)]
        parent, level, ys, xs, contribution, valid = (torch.cat(column) for column in zip(*parts))
    else:
        slots = sum(count ** (depth + 1) for depth in range(len(layers)))
        parent, level, ys, xs = (torch.zeros(0, slots, dtype=torch.int64) for _ in range(4))
        contribution, valid = torch.zeros(0, slots), torch.zeros(0, slots, dtype=torch.bool)
    boxes = torch.zeros(*ys.shape, 4)
    scale = torch.tensor([height, width, height, width], dtype=torch.float32)
    for depth, field in enumerate(geometry.inputs):
        at = (level == depth) & valid
        window = ReceptiveField(layers[depth], (height, width), field.jump, field.size, field.start)
        boxes[at] = window.boxes(ys[at], xs[at]).float() / scale
    return Trees(layers, parent, level, ys, xs, contribution, valid, boxes)


class _Truncated(Exception):
    """Internal: ends a forward pass once the tree's root layer has been captured."""


def _truncate(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
    raise _Truncated


def _grow(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: tuple[str, ...],
    geometry: TreeGeometry,
    settings: tuple[int, int, float],
) -> tuple[torch.Tensor, ...]:
    """The trees of one chunk of frames: (parent, level, y, x, contribution, valid), each (N, T)."""
    count, min_distance, prominence = settings
    device = next((p.device for p in model.parameters()), inputs.device)
    with _explaining(model), torch.enable_grad():
        # parameters are frozen, so the input carries the graph; a copy, in case the model writes to it
        frames = inputs.detach().to(device).requires_grad_(True).clone()
        # the root layer is the last one the tree reads, so the forward pass stops there (no head)
        with capture(model, layers) as captured, forward_hooks(model, {layers[0]: _truncate}), suppress(_Truncated):
            model(frames)
        activations: list[torch.Tensor] = []
        for name in layers:
            activation = captured.get(name)
            if not isinstance(activation, torch.Tensor) or activation.dim() != 4 or len(activation) != len(frames):
                shape = tuple(activation.shape) if isinstance(activation, torch.Tensor) else type(activation).__name__
                raise UserError(f"layer {name!r} gives {shape}, not a (N, C, h, w) map per frame")
            activations.append(activation)
        scores, ys, xs, valid = find_peaks(activations[0].detach().sum(1), count, min_distance, prominence)
        levels = [(torch.full_like(ys, -1), ys, xs, scores, valid)]
        first = 0  # slot of the level above's first node
        for depth, segment in enumerate(geometry.segments):
            _, above_y, above_x, _, above_valid = levels[-1]
            parents = above_y.shape[1]
            maps = _contribution_maps(
                activations[depth], activations[depth + 1], above_y, above_x, above_valid, segment
            )
            scores, ys, xs, valid = find_peaks(maps.flatten(0, 1).clamp_min(0), count, min_distance, prominence)
            frames_n = len(frames)
            scores, ys, xs, valid = (t.reshape(frames_n, parents * count) for t in (scores, ys, xs, valid))
            valid = valid & above_valid.repeat_interleave(count, dim=1)
            parent = (first + torch.arange(parents, device=ys.device)).repeat_interleave(count).expand_as(ys)
            levels.append((parent, ys, xs, scores, valid))
            first += parents
    parent, ys, xs, scores, valid = (torch.cat(column, dim=1).cpu() for column in zip(*levels))
    level = torch.cat([torch.full_like(lv[1], depth) for depth, lv in enumerate(levels)], dim=1).cpu()
    contribution = torch.where(valid, scores, torch.zeros_like(scores)).float()
    zero = torch.zeros_like(ys)
    return parent, level, torch.where(valid, ys, zero), torch.where(valid, xs, zero), contribution, valid


def _contribution_maps(
    upper: torch.Tensor,
    lower: torch.Tensor,
    ys: torch.Tensor,
    xs: torch.Tensor,
    valid: torch.Tensor,
    segment: Field,
) -> torch.Tensor:
    """(N, P, h, w): for each of the P parents (cells ys, xs of ``upper``) of each frame, the
    activation x gradient of its channel sum at ``lower``, summed over channels (0 if invalid).

    Frames are independent, so one backward pass serves a parent of every frame. When ``segment``
    is local, parents whose windows in ``lower`` cannot overlap (cells congruent modulo the window's
    span in cells: one *colour*) also share one, and each parent's map is cut out of the shared one
    by its window. Otherwise one pass per parent slot. Passes with no valid parent are skipped.
    """
    frames, parents = ys.shape
    height, width = upper.shape[2:]
    rows = torch.arange(height, device=ys.device)
    cols = torch.arange(width, device=ys.device)
    cells = (ys[..., None, None] == rows.view(-1, 1)) & (xs[..., None, None] == cols.view(1, -1))
    cells &= valid[..., None, None]  # (N, P, h, w)
    # cells at least ceil(size / jump) apart along an axis have disjoint windows
    span_rows = min(-(-segment.size[0] // segment.jump[0]), height)
    span_cols = min(-(-segment.size[1] // segment.jump[1]), width)
    if segment.local and span_rows * span_cols < parents:
        passes = span_rows * span_cols
        group = ((ys % span_rows) * span_cols + xs % span_cols) * valid  # (N, P): each parent's colour
    else:
        passes = parents
        group = torch.arange(parents, device=ys.device).expand(frames, -1)
    membership = group[..., None] == torch.arange(passes, device=ys.device)  # (N, P, passes)
    seeds = torch.einsum("npg,nphw->gnhw", membership.float(), cells.float()) > 0
    shared = _weighted_gradients(upper, lower, seeds)  # (passes, N, h', w')
    maps = shared.permute(1, 0, 2, 3)[torch.arange(frames, device=ys.device)[:, None], group]
    if segment.local:  # cut each parent's window out of its pass (else exact zeros, or rounding noise)
        return maps * _window_masks(ys, xs, valid, segment, lower.shape[2:])
    return maps * valid[..., None, None]


def _weighted_gradients(upper: torch.Tensor, lower: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """For each row of ``seeds`` (R, N, h, w) (cells of ``upper``): activation x gradient at
    ``lower`` of ``upper``'s channel sum over those cells, summed over channels: (R, N, h', w').
    Rows without seeds are zero, without a backward pass.

    A sum within rounding of zero, next to the size of its terms, is zero: what is left is noise,
    and its peaks would be noise too. The attention agent's L2 normalisation after relu3 is the case
    in point: the mask does not change when relu3 is scaled, so activation x gradient there is zero
    in exact arithmetic (Euler's theorem), about 1e-9 of its terms in floating point.
    """
    # one pass per row: vmapped passes (is_grads_batched) are no faster for a frame and up to 2.5x
    # slower for many (the attention's 512-channel 1x1 convolutions), and some ops lack batching rules
    sums = lower.new_zeros(len(seeds), lower.shape[0], *lower.shape[2:])
    expand = (-1, upper.shape[1], -1, -1)
    for row in seeds.flatten(1).any(1).nonzero()[:, 0].tolist():
        grad_output = seeds[row, :, None].to(upper.dtype).expand(*expand)
        (gradient,) = torch.autograd.grad(upper, lower, grad_output, retain_graph=True, allow_unused=True)
        if gradient is None:
            raise UserError("a lower layer of the tree does not reach the layer above it through gradients")
        terms = gradient * lower.detach()
        total = terms.sum(1)
        noise = CANCELLATION * torch.finfo(total.dtype).eps * terms.abs().sum(1)
        sums[row] = torch.where(total.abs() > noise, total, torch.zeros_like(total))
    return sums


def _window_masks(
    ys: torch.Tensor, xs: torch.Tensor, valid: torch.Tensor, segment: Field, shape: Sequence[int]
) -> torch.Tensor:
    """(N, P, h, w) float: 1 inside each parent's window in the lower map, 0 elsewhere or if invalid."""
    window = segment.window(ys, xs)  # (N, P, 4)
    rows = torch.arange(shape[0], device=ys.device)
    cols = torch.arange(shape[1], device=ys.device)
    inside_rows = (rows >= window[..., 0, None]) & (rows < window[..., 2, None])
    inside_cols = (cols >= window[..., 1, None]) & (cols < window[..., 3, None])
    inside = inside_rows[..., :, None] & inside_cols[..., None, :] & valid[..., None, None]
    return inside.float()
