"""Receptive-field geometry: where each cell of a layer looks in the input.

Computed from the geometry of the convolutions and pools on the model's ``torch.fx`` graph.
:func:`receptive_fields` gives a layer's field in input pixels; :func:`tree_geometry` gives what the
attention tree (:mod:`.tree`) needs of a chain of layers: each layer's field in input pixels (its
nodes' boxes) and the field of the layer above measured in the cells of the layer below (the windows
that let parents share backward passes).
"""

from __future__ import annotations

import functools
import operator
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

from ..errors import UserError
from .hooks import find_modules


@dataclass(frozen=True)
class Field:
    """Along each axis (rows, columns), cell ``i`` of a map sees ``[start + i * jump, start + i * jump
    + size)`` of the map it is measured against. ``local`` says whether that window is the whole of
    the dependency (only convolutions, pools and location-wise operations on the way) or a drawing
    convention (something on the way mixes locations, such as a softmax over them)."""

    jump: tuple[int, int] = (1, 1)
    size: tuple[int, int] = (1, 1)
    start: tuple[int, int] = (0, 0)
    local: bool = True

    def through(
        self, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int]
    ) -> Field:
        """The field after a window operation with this geometry (per axis): each output cell spans
        ``dilation * (kernel - 1) + 1`` input cells, ``stride`` apart, from ``padding`` before."""

        def axis(a: int) -> tuple[int, int, int]:
            jump = self.jump[a]
            return (
                jump * stride[a],
                self.size[a] + dilation[a] * (kernel[a] - 1) * jump,
                self.start[a] - padding[a] * jump,
            )

        (j0, r0, s0), (j1, r1, s1) = axis(0), axis(1)
        return Field((j0, j1), (r0, r1), (s0, s1), self.local)

    def window(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """(top, left, bottom, right), unclipped, for cells (ys, xs): (..., 4) int64."""
        top = self.start[0] + ys * self.jump[0]
        left = self.start[1] + xs * self.jump[1]
        return torch.stack([top, left, top + self.size[0], left + self.size[1]], dim=-1)


class _UnmodelledError(Exception):
    """Internal: an operation whose geometry is not modelled."""


class _Unknown:
    """The field of a node behind an operation whose geometry we do not model (an upsampling, an
    adaptive pool, ...): asking for it is an error, naming the operation."""

    def __init__(self, operation: str):
        self.operation = operation


@dataclass(frozen=True)
class ReceptiveField:
    """Where each cell of ``layer``'s map looks in an input of ``input_hw`` pixels.

    Along rows, cell ``y`` sees input rows ``[offset[0] + y * jump[0], offset[0] + y * jump[0] +
    size[0])`` before clipping; columns alike. Computed from the convolutions and pools between the
    input and the layer; operations that mix locations without a kernel (the attention's softmax over
    locations, reshapes, normalisations) are taken to keep each cell's field, so the field says
    where a cell's own evidence comes from. A residual block's field is its convolution path's.
    """

    layer: str
    input_hw: tuple[int, int]
    jump: tuple[int, int]
    size: tuple[int, int]
    offset: tuple[int, int]

    def boxes(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """(top, left, bottom, right) in input pixels, half-open and clipped to the input: (..., 4)
        int64 for cells ``ys``, ``xs`` of any (equal) shape."""
        window = Field(self.jump, self.size, self.offset).window(torch.as_tensor(ys), torch.as_tensor(xs))
        height, width = self.input_hw
        limits = torch.tensor([height, width, height, width], device=window.device)
        return torch.minimum(window.clamp_min(0), limits)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """The boxes of every cell of a (height, width) map: (height, width, 4) int64."""
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        return self.boxes(ys, xs)


_GEOMETRIC_MODULES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.ZeroPad2d, nn.ConstantPad2d)
_UNMODELLED_MODULES = (
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Conv1d,
    nn.Conv3d,
    nn.Upsample,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.LPPool2d,
    nn.FractionalMaxPool2d,
    nn.MaxUnpool2d,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.Fold,
    nn.Unfold,
    nn.ReflectionPad2d,
    nn.ReplicationPad2d,
    nn.CircularPad2d,
)
_LOCAL_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.BatchNorm2d,  # per-channel affine in eval mode, which the tree uses
)
"""Leaf modules that act on each location alone: a window through them is the whole dependency."""
_LOCAL_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.neg,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    F.relu,
    F.elu,
    F.gelu,
    F.silu,
    F.softplus,
    F.leaky_relu,
)
_LOCAL_METHODS = {"add", "sub", "mul", "div", "relu", "sigmoid", "tanh", "clamp", "clamp_min", "contiguous", "float"}
_UNMODELLED_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    F.interpolate,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F.conv_transpose2d,
    F.pixel_shuffle,
    F.pixel_unshuffle,
    F.unfold,
    F.fold,
    F.grid_sample,
)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if value else (0, 0)
    return (int(value), int(value))


def _bound(node: torch.fx.Node, names: Sequence[str]) -> dict[str, Any]:
    """The arguments of a call_function node by parameter name (``names`` in signature order)."""
    bound = dict(zip(names, node.args))
    bound.update(node.kwargs)
    return bound


def _window_of_module(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, dilation) per axis of a geometric module."""
    if isinstance(module, (nn.ZeroPad2d, nn.ConstantPad2d)):
        left, _, top, _ = module.padding
        return (1, 1), (1, 1), (int(top), int(left)), (1, 1)
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride if module.stride not in (None, ()) else module.kernel_size)
    dilation = _pair(getattr(module, "dilation", 1))
    padding: Any = module.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":
        padding = tuple((d * (k - 1)) // 2 for d, k in zip(dilation, kernel))
    return kernel, stride, _pair(padding), dilation


def _window_of_function(node: torch.fx.Node, graph_module: torch.fx.GraphModule) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding, dilation) of a functional conv, pool or pad; None if not one."""
    target = node.target
    if target in (F.conv2d, torch.conv2d):
        args = _bound(node, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"))
        weight = args["weight"]
        if not (isinstance(weight, torch.fx.Node) and weight.op == "get_attr"):
            raise _UnmodelledError("a conv2d whose weight is computed")
        stored: Any = functools.reduce(getattr, str(weight.target).split("."), graph_module)  # parameter or buffer
        kernel = tuple(stored.shape[-2:])
        dilation = _pair(args.get("dilation", 1))
        padding = args.get("padding", 0)
        if padding == "valid":
            padding = 0
        elif padding == "same":
            padding = tuple((d * (k - 1)) // 2 for d, k in zip(dilation, kernel))
        return _pair(kernel), _pair(args.get("stride", 1)), _pair(padding), dilation
    if target in (F.max_pool2d, torch.max_pool2d, F.max_pool2d_with_indices, F.avg_pool2d):
        args = _bound(node, ("input", "kernel_size", "stride", "padding", "dilation"))
        if target is F.avg_pool2d:  # (input, kernel_size, stride, padding, ceil_mode, ...): no dilation
            args["dilation"] = 1
        kernel = _pair(args["kernel_size"])
        stride = args.get("stride")
        stride = kernel if stride in (None, [], ()) else _pair(stride)
        return kernel, stride, _pair(args.get("padding", 0)), _pair(args.get("dilation", 1))
    if target is F.pad:
        args = _bound(node, ("input", "pad", "mode", "value"))
        pad = tuple(int(p) for p in args["pad"])
        if args.get("mode", "constant") != "constant":
            raise _UnmodelledError(f"F.pad in {args['mode']!r} mode")
        left, top = pad[0], (pad[2] if len(pad) >= 4 else 0)
        return (1, 1), (1, 1), (top, left), (1, 1)
    return None


def _hull(fields: Sequence[Field], local: bool) -> Field | _Unknown:
    """The smallest field holding all of ``fields`` (which must share their jumps)."""
    first = fields[0]
    if any(f.jump != first.jump for f in fields):
        return _Unknown("an operation joining maps of different resolutions")
    top, left = min(f.start[0] for f in fields), min(f.start[1] for f in fields)
    bottom, right = max(f.start[0] + f.size[0] for f in fields), max(f.start[1] + f.size[1] for f in fields)
    return Field(first.jump, (bottom - top, right - left), (top, left), local and all(f.local for f in fields))


def _propagate(graph_module: torch.fx.GraphModule, source: torch.fx.Node) -> dict[torch.fx.Node, Field | _Unknown]:
    """The field of every node that depends on ``source``, measured against ``source``'s map."""
    modules = dict(graph_module.named_modules())
    fields: dict[torch.fx.Node, Field | _Unknown] = {source: Field()}
    for node in graph_module.graph.nodes:
        if node is source or node.op in ("placeholder", "get_attr", "output"):
            continue
        inputs = [fields[n] for n in node.all_input_nodes if n in fields]
        if not inputs:
            continue
        unknown = [f for f in inputs if isinstance(f, _Unknown)]
        if unknown:
            fields[node] = unknown[0]
            continue
        try:
            fields[node] = _through(node, fields, modules, graph_module)
        except _UnmodelledError as exc:
            fields[node] = _Unknown(str(exc))
    return fields


def _through(
    node: torch.fx.Node,
    fields: dict[torch.fx.Node, Field | _Unknown],
    modules: dict[str, nn.Module],
    graph_module: torch.fx.GraphModule,
) -> Field | _Unknown:
    """The field of one node's output from its inputs' (all known) fields."""
    inputs = [f for n in node.all_input_nodes if isinstance(f := fields.get(n), Field)]
    data = node.args[0] if node.args else node.kwargs.get("input")
    if node.op == "call_module":
        module = modules[str(node.target)]
        if isinstance(module, _UNMODELLED_MODULES):
            raise _UnmodelledError(f"{type(module).__name__} ({node.target})")
        if isinstance(module, _GEOMETRIC_MODULES):
            return _data_field(fields, data, node).through(*_window_of_module(module))
        return _hull(inputs, isinstance(module, _LOCAL_MODULES))
    if node.op == "call_function":
        if node.target in _UNMODELLED_FUNCTIONS:
            raise _UnmodelledError(getattr(node.target, "__name__", str(node.target)))
        window = _window_of_function(node, graph_module)
        if window is not None:
            return _data_field(fields, data, node).through(*window)
        if node.target is F.normalize:  # across channels (dim 1) it acts on each location alone
            return _hull(inputs, _bound(node, ("input", "p", "dim")).get("dim", 1) in (1, -3))
        return _hull(inputs, node.target in _LOCAL_FUNCTIONS)
    return _hull(inputs, node.op == "call_method" and node.target in _LOCAL_METHODS)


def _data_field(fields: dict[torch.fx.Node, Field | _Unknown], data: Any, node: torch.fx.Node) -> Field:
    """The field of a window operation's data input; a window whose weights depend on the input
    (so that the data carries no field of its own) is not modelled."""
    field = fields.get(data) if isinstance(data, torch.fx.Node) else None
    if not isinstance(field, Field) or any(
        isinstance(fields.get(n), Field) for n in node.all_input_nodes if n is not data
    ):
        raise _UnmodelledError(f"{node.name}, whose weights depend on the input")
    return field


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    """The model's fx graph (a recurrent model's from an episode's start, as layers.py does)."""
    concrete = {"state": None} if getattr(model, "state_size", 0) else None
    try:
        return torch.fx.symbolic_trace(model, concrete_args=concrete)
    except Exception as exc:  # fx raises many types for untraceable code
        raise UserError(
            f"cannot trace {type(model).__name__} to follow its layers' geometry ({type(exc).__name__})"
        ) from None


def _scopes(node: torch.fx.Node) -> list[str]:
    stack = node.meta.get("nn_module_stack", {})
    return [value[0] if isinstance(value, tuple) else key for key, value in stack.items()]


def _layer_node(graph_module: torch.fx.GraphModule, layer: str) -> torch.fx.Node:
    """The node holding ``layer``'s output: its call, or the last node inside its scope."""
    nodes = list(graph_module.graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and n.target == layer]
    if len(calls) > 1:
        raise UserError(f"layer {layer!r} is called {len(calls)} times in one forward pass; a tree needs one call")
    if calls:
        return calls[0]
    inside = [n for n in nodes if layer in _scopes(n)]
    if not inside:
        raise UserError(f"layer {layer!r} takes no part in the forward pass")
    return inside[-1]


def _input_node(graph_module: torch.fx.GraphModule) -> torch.fx.Node:
    return next(n for n in graph_module.graph.nodes if n.op == "placeholder")


def _field_or_error(
    fields: dict[torch.fx.Node, Field | _Unknown], node: torch.fx.Node, what: str, source: str = "the input"
) -> Field:
    field = fields.get(node)
    if field is None:
        raise UserError(f"{what} does not depend on {source}")
    if isinstance(field, _Unknown):
        raise UserError(f"cannot compute the receptive field of {what}: it passes through {field.operation}")
    return field


@dataclass(frozen=True)
class TreeGeometry:
    """What the attention tree needs of the graph, per layer: its field in input pixels
    (``inputs``) and, below the root, the field of the layer above measured in this layer's cells
    (``segments``, one per pair of adjacent layers)."""

    inputs: tuple[Field, ...]
    segments: tuple[Field, ...]


_GEOMETRY_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[Any, TreeGeometry]] = weakref.WeakKeyDictionary()


def _signature(model: nn.Module) -> tuple:
    """What a cached geometry depends on: every module's name, type and window settings."""
    keys = ("kernel_size", "stride", "padding", "dilation")
    return tuple(
        (name, type(m), tuple(str(getattr(m, k, None)) for k in keys) if isinstance(m, _GEOMETRIC_MODULES) else ())
        for name, m in model.named_modules()
    )


def _ancestors(node: torch.fx.Node) -> set[torch.fx.Node]:
    seen: set[torch.fx.Node] = set()
    stack = list(node.all_input_nodes)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


def tree_geometry(model: nn.Module, layers: tuple[str, ...]) -> TreeGeometry:
    """Fields for the tree's ``layers`` (top to bottom: each must feed the one before it), checking
    that order; cached per model. See :class:`TreeGeometry`."""
    key = (layers, _signature(model))
    cached = _GEOMETRY_CACHE.get(model)
    if cached is not None and key in cached:
        return cached[key]
    graph_module = _trace(model)
    nodes = [_layer_node(graph_module, name) for name in layers]
    for upper, lower, above, below in zip(nodes, nodes[1:], layers, layers[1:]):
        if lower not in _ancestors(upper):
            raise UserError(
                f"layers must run from the attention down: {below!r} does not feed {above!r} in the forward pass"
            )
    fields = _propagate(graph_module, _input_node(graph_module))
    inputs = tuple(_field_or_error(fields, node, f"layer {name!r}") for node, name in zip(nodes, layers))
    segments = []
    for upper, lower, above, below in zip(nodes, nodes[1:], layers, layers[1:]):
        relative = _propagate(graph_module, lower)
        segments.append(_field_or_error(relative, upper, f"layer {above!r}", f"layer {below!r}"))
    geometry = TreeGeometry(inputs, tuple(segments))
    _GEOMETRY_CACHE.setdefault(model, {})[key] = geometry
    return geometry


def receptive_fields(model: nn.Module, layer: str, input_hw: tuple[int, int]) -> ReceptiveField:
    """The receptive field of every cell of ``layer`` in an input of ``input_hw`` (height, width)
    pixels: see :class:`ReceptiveField`. Needs a model ``torch.fx`` can trace."""
    find_modules(model, [layer])
    field = tree_geometry(model, (layer,)).inputs[0]
    return ReceptiveField(layer, (int(input_hw[0]), int(input_hw[1])), field.jump, field.size, field.start)
