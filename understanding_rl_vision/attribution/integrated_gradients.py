"""Integrated gradients from a zero baseline to a layer's activation, batched over frames and steps.

For a layer activation ``a`` and an explained scalar ``f`` (a function of ``a`` through the part
of the network above the layer):

    IG(a) = a * integral_0^1 grad f(alpha a) d alpha  ~=  a * sum_s w_s grad f(alpha_s a)

What makes this cheap:

* The layers below are evaluated once per frame, not once per step: a forward hook swaps the
  layer's output for the stacked scaled copies ``alpha_s a``, so only the network above the layer
  sees the (steps x frames) batch. This is exact only at a *bottleneck*, a layer no skip
  connection crosses; :mod:`.layers` finds those, and the batch size is checked on the way out.
* All K outputs share that one forward pass; only the backward pass is per output (see
  :mod:`.outputs` for how outputs are weight rows over the output vector).
* The sum over steps is one matrix-vector product per output, ``w @ grads.view(steps, -1)``,
  taken as soon as that output's gradient exists, so memory holds K x frames results, never
  K x steps x frames.

How the K backward passes run is ``batching``. ``"sequential"`` (the default) walks the retained
graph once per output. ``"vmap"`` hands autograd all K rows at once (``is_grads_batched``); on
torch 2.13 CPU that is 2x slower for the IMPALA CNN, because ``convolution_backward`` and
``max_pool2d_with_indices_backward`` have no batching rule, so vmap loops over K itself and then
copies the pieces together (``docs/benchmarks.md``). Folding K into the batch instead makes the
forward pass K times larger and measured 4.9x slower. Both compute the same sums, but on other
kernel schedules: equal to the bit on one thread here, up to ~1e-6 of the largest value apart on
more (torch does not promise equal rounding across schedules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import torch

from ..errors import UserError
from .hooks import forward_hooks, frozen_parameters
from .outputs import ExplainedModel, Output, output_rows

Rule = Literal["riemann", "gauss-legendre"]
Batching = Literal["sequential", "vmap"]
DEFAULT_STEPS = 10
INPUT_CHUNK = 256
"""Frames per backward pass of input gradients (integrated gradients size their own chunks)."""
DEFAULT_MEMORY_BUDGET = 128 << 20  # bytes of working memory per chunk (measured fastest of 32 MiB to 512 MiB)


def quadrature(steps: int, rule: Rule = "riemann") -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alpha`` in (0, 1] and weights for integrating over [0, 1].

    ``riemann`` is the original's right Riemann sum (alpha = 1/n, ..., 1; weights 1/n), with the
    nodes of Captum's ``riemann_right`` to the bit (a float32 ``linspace``, up to 1 ulp off s/n).
    The bits matter: a max-pool whose window holds equal values (flat background) routes the
    gradient by float rounding, so a 1-ulp change of alpha moved 0.05% of a trained CoinRun
    agent's layer-1a attributions by up to 2e-3 of the maximum (``docs/benchmarks.md``).
    ``gauss-legendre`` reaches the same accuracy with fewer steps.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"integration steps must be a positive integer, got {steps!r}")
    if rule == "riemann":
        nodes = torch.linspace(1 / steps, 1, steps, dtype=torch.float32).double().numpy()
        return nodes, np.full(steps, 1.0 / steps)
    if rule == "gauss-legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    raise UserError(f"unknown integration rule {rule!r}; choose riemann or gauss-legendre")


@dataclass(frozen=True)
class LayerAttribution:
    """Attribution of each output to each position of one layer."""

    layer: str
    outputs: tuple[str, ...]
    values: torch.Tensor  # (K outputs, N frames, *layer shape), float32 on the CPU
    memory: torch.Tensor | None = None
    """(K, N) for a recurrent model: the attribution to the incoming state, summed over its entries
    (the "memory" entry; with it, completeness covers frame and memory together)."""

    def for_output(self, name: str) -> torch.Tensor:
        return self.values[self.outputs.index(name)]


def integrated_gradients(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    layer: str,
    outputs: Sequence[Output],
    *,
    steps: int = DEFAULT_STEPS,
    rule: Rule = "riemann",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    batching: Batching = "sequential",
    actions: torch.Tensor | None = None,
    memory: bool = True,
) -> LayerAttribution:
    """IG of each output to ``layer`` for a batch of (preprocessed) model inputs.

    Returns (K, N, *layer shape). Frames are processed in chunks sized by ``memory_budget``.
    ``actions`` (N,) are the actions taken, for the ``action`` output. For a recurrent model (with
    ``memory``) the incoming state is scaled along the same path, from zero to the bound state,
    and its attribution summed over its entries is returned as ``memory`` (K, N).
    """
    alphas, weights = quadrature(steps, rule)
    _check_batching(batching)
    device = inputs.device
    alpha = torch.tensor(alphas, dtype=torch.float32, device=device)
    weight = torch.tensor(weights, dtype=torch.float32, device=device)
    combine = output_rows(outputs, len(inputs), actions, device)  # (K, N, M)
    chunk_size = _chunk_size(explained, inputs, layer, len(outputs), steps, memory_budget, batching)
    through = explained.memory if memory and explained.recurrent else None
    chunks = [
        _attribute_chunk(
            explained.on(slice(start, start + chunk_size)),
            inputs[start : start + chunk_size],
            layer,
            alpha,
            weight,
            combine[:, start : start + chunk_size],
            batching,
            through,
        )
        for start in range(0, len(inputs), chunk_size)
    ]
    values = torch.cat([values for values, _ in chunks], dim=1)
    totals = None if through is None else torch.cat([totals for _, totals in chunks if totals is not None], dim=1)
    return LayerAttribution(layer, tuple(o.name for o in outputs), values, totals)


def _attribute_chunk(
    explained: ExplainedModel,
    x: torch.Tensor,
    layer: str,
    alpha: torch.Tensor,
    weight: torch.Tensor,
    combine: torch.Tensor,
    batching: Batching,
    memory: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(K, n, *layer shape) for one chunk of n frames: one forward pass, K backward passes.
    ``combine`` (K, n, M) weighs each frame's output vector. With ``memory`` (the module a recurrent
    model's incoming state passes through) the state is scaled too, and its attribution summed
    over the state's entries comes second, (K, n)."""
    captured: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {layer: [], **({memory: []} if memory else {})}

    def substitute(name: str):
        def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            activation = output.detach()
            scaled = (alpha.view(-1, *([1] * activation.dim())) * activation.unsqueeze(0)).flatten(0, 1)
            scaled.requires_grad_()  # (steps * n, ...), step-major: the points where f is differentiated
            captured[name].append((activation, scaled))
            return scaled.view_as(scaled)  # not the leaf itself: module backward hooks refuse leaves

        return hook

    model = explained.model
    hooks = {name: substitute(name) for name in captured}
    with frozen_parameters(model), forward_hooks(model, hooks), torch.enable_grad():
        out = explained.forward(x)
    steps, n = len(alpha), len(x)
    for name, seen in captured.items():
        if len(seen) != 1:
            raise UserError(f"layer {name!r} runs {len(seen)} times per forward pass; choose one that runs once")
    if out.shape[0] != steps * n:
        raise UserError(f"layer {layer!r} is crossed by a skip connection; choose a bottleneck layer")
    rows = combine.repeat(1, steps, 1)  # (K, steps * n, M), step-major like the batch

    def integrate(activation: torch.Tensor):
        def finish(grads: torch.Tensor, into: torch.Tensor) -> None:
            """into = a * sum_s w_s grad f(alpha_s a), from the (steps * n, ...) gradients of one output."""
            total = (weight @ grads.reshape(steps, -1)).view_as(activation)
            torch.mul(total, activation, out=into)

        return finish

    ((activation, scaled),) = captured[layer]
    if memory is None:
        shape = (n, *activation.shape[1:])
        return _output_gradients(out, scaled, rows, batching, integrate(activation), shape, linear=True), None
    ((state, scaled_state),) = captured[memory]
    values, per_entry = _output_gradients(
        out,
        (scaled, scaled_state),
        rows,
        batching,
        (integrate(activation), integrate(state)),
        ((n, *activation.shape[1:]), tuple(state.shape)),
        linear=True,
    )
    return values, per_entry.flatten(2).sum(-1)


Finish = Callable[[torch.Tensor, torch.Tensor], object]


@overload
def _output_gradients(
    out: torch.Tensor,
    leaf: torch.Tensor,
    rows: torch.Tensor,
    batching: Batching,
    finish: Finish | None = None,
    shape: tuple[int, ...] | None = None,
    *,
    linear: bool = False,
) -> torch.Tensor: ...


@overload
def _output_gradients(
    out: torch.Tensor,
    leaf: tuple[torch.Tensor, ...],
    rows: torch.Tensor,
    batching: Batching,
    finish: tuple[Finish, ...],
    shape: tuple[tuple[int, ...], ...],
    *,
    linear: bool = False,
) -> tuple[torch.Tensor, ...]: ...


def _output_gradients(out, leaf, rows, batching, finish=None, shape=None, *, linear=False):
    """(K, *shape) float32 CPU: the gradient of ``out`` weighted by each ``rows[k]``, reduced by
    ``finish(grads, into)`` (default: copied as is) as soon as it exists. Given a tuple of leaves
    (with a tuple of finishes and shapes), one such result per leaf from the same backward passes.

    With ``linear`` (every finish is linear in the gradients, as integrated gradients' weighted sum
    is), K outputs that combine fewer than K entries of the output vector cost one backward pass per
    entry, not per output: the value, every logit, the action taken and the action groups are 16
    passes for CoinRun's 15 actions, not 22 (:func:`_entry_basis`)."""
    if rows.shape[-1] != out.shape[-1]:
        raise UserError(f"the model gives {out.shape[-1]} outputs per frame; the chosen outputs weigh {rows.shape[-1]}")
    single = isinstance(leaf, torch.Tensor)
    leaves = (leaf,) if single else tuple(leaf)
    shapes = [tuple(v.shape) for v in leaves] if shape is None else ([shape] if single else list(shape))
    basis = _entry_basis(rows, shapes[0][0]) if linear else None
    if basis is not None:
        entries, frame_weights = basis
        per_entry = _output_gradients(out, leaf, entries, batching, finish, shape)
        combined = [_combine(frame_weights, part) for part in ((per_entry,) if single else per_entry)]
        return combined[0] if single else tuple(combined)
    finishes = [finish or (lambda grads, into: into.copy_(grads))] if single else list(finish)
    results = [torch.empty((len(rows), *s), dtype=torch.float32, device=leaves[0].device) for s in shapes]
    if batching == "vmap":
        grads = torch.autograd.grad(out, leaves, rows, is_grads_batched=True)
        for k in range(len(rows)):
            for done, g, result in zip(finishes, grads, results):
                done(g[k], result[k])
    else:
        for k, row in enumerate(rows):
            grads = torch.autograd.grad(out, leaves, row, retain_graph=k < len(rows) - 1)
            for done, g, result in zip(finishes, grads, results):
                done(g, result[k])
    return results[0].cpu() if single else tuple(result.cpu() for result in results)


def _entry_basis(rows: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One-hot rows (E, R, M) for the E output entries that ``rows`` (K, R, M) use, and each output's
    per-frame weight on them (K, frames, E); None when E >= K or when the R batch rows are not
    ``frames`` frames repeated (integrated gradients' batch is step-major copies of the frames)."""
    count, batch, width = rows.shape
    if batch % max(frames, 1) or frames == 0:
        return None
    used = torch.nonzero(rows.abs().sum(dim=(0, 1)) > 0).flatten()
    if len(used) >= count:
        return None
    first = rows[:, :frames]
    if not bool((rows.view(count, batch // frames, frames, width) == first.unsqueeze(1)).all()):
        return None
    entries = torch.zeros((len(used), batch, width), dtype=rows.dtype, device=rows.device)
    entries[torch.arange(len(used)), :, used] = 1.0
    return entries, first[:, :, used].cpu()


def _combine(frame_weights: torch.Tensor, per_entry: torch.Tensor) -> torch.Tensor:
    """(K, N, *D): each output's per-frame weighted sum of the E entries' results (E, N, *D)."""
    flat = per_entry.flatten(2).transpose(0, 1)  # (N, E, D)
    combined = torch.bmm(frame_weights.transpose(0, 1).to(flat.dtype), flat)  # (N, K, D)
    return combined.transpose(0, 1).reshape(len(frame_weights), *per_entry.shape[1:]).contiguous()


def _check_batching(batching: str) -> None:
    if batching not in ("sequential", "vmap"):
        raise UserError(f"unknown batching {batching!r}; choose sequential or vmap")


def input_gradients(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    outputs: Sequence[Output],
    *,
    batching: Batching = "sequential",
    actions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Plain gradients of each output with respect to the model input: (K, N, C, H, W).

    The original shows these for the input layer, where integrated gradients would mostly
    reproduce the image.
    """
    _check_batching(batching)
    rows = output_rows(outputs, len(inputs), actions, inputs.device)
    x = inputs.detach().requires_grad_()
    with frozen_parameters(explained.model), torch.enable_grad():
        out = explained.forward(x)
    return _output_gradients(out, x, rows, batching, linear=True)


def output_at(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    layer: str,
    scale: float,
    outputs: Sequence[Output],
    actions: torch.Tensor | None = None,
) -> torch.Tensor:
    """(K, N) outputs with ``layer``'s activation (and a recurrent model's incoming state) multiplied
    by ``scale`` (0 gives the baseline)."""

    def rescale(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output * scale

    scaled = {layer: rescale, **({explained.memory: rescale} if explained.recurrent and explained.memory else {})}
    with torch.no_grad(), forward_hooks(explained.model, scaled):
        out = explained.forward(inputs)
    return (output_rows(outputs, len(inputs), actions, inputs.device) * out.float()).sum(dim=-1)


def completeness_error(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    attribution: LayerAttribution,
    outputs: Sequence[Output],
) -> torch.Tensor:
    """(K, N) relative completeness error |sum attr - (f(a) - f(0))| / |f(a) - f(0)|.

    Integrated gradients sum to the output difference exactly in the limit of infinitely many
    steps, so this measures the integration error of the chosen rule and step count. For a
    recurrent model the sum includes the memory entry, and the baseline zeroes the state too.
    """
    difference = (
        output_at(explained, inputs, attribution.layer, 1.0, outputs)
        - output_at(explained, inputs, attribution.layer, 0.0, outputs)
    ).cpu()
    total = attribution.values.flatten(2).sum(-1)
    if attribution.memory is not None:
        total = total + attribution.memory
    return (total - difference).abs() / difference.abs().clamp_min(1e-12)


def _chunk_size(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    layer: str,
    num_outputs: int,
    steps: int,
    budget: int,
    batching: Batching = "sequential",
) -> int:
    """Frames per chunk so one chunk's working memory stays near ``budget`` bytes.

    Probes one frame to measure the output of every module that runs after ``layer``: per frame
    and step, autograd keeps about one such tensor per module, the backward pass holds about three
    of the largest at once (K times over with vmap), and the result holds K copies of the layer.
    """
    if len(inputs) == 0:
        raise UserError("no frames to attribute")
    sizes: list[tuple[str, int]] = []  # (module name, elements per frame) in execution order

    def measure(name: str):
        def hook(module: torch.nn.Module, args: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                sizes.append((name, output[0].numel()))

        return hook

    leaves = [name for name, module in explained.model.named_modules() if name and not list(module.children())]
    with torch.no_grad(), forward_hooks(explained.model, {name: measure(name) for name in {*leaves, layer}}):
        explained.on(slice(0, 1)).forward(inputs[:1])
    names = [name for name, _ in sizes]
    position = len(names) - 1 - names[::-1].index(layer) if layer in names else -1
    layer_size = sizes[position][1] if position >= 0 else 0
    above = [size for _, size in sizes[position + 1 :]] or [layer_size]
    live_gradients = 3 * max(above) * (num_outputs if batching == "vmap" else 1)
    per_frame = 4 * (steps * (sum(above) + live_gradients + layer_size) + 2 * num_outputs * layer_size)
    return max(1, min(len(inputs), budget // max(per_frame, 1)))
