"""Which layers can be attributed, what to call them, and which one to show first.

Integrated gradients to a layer (see :mod:`.integrated_gradients`) evaluate the network above the
layer on scaled copies of its activation. That is only meaningful at a *bottleneck*: a point that
every path from the input to the outputs passes through, so no skip connection carries
information around it. We find bottlenecks on the model's ``torch.fx`` graph: in the graph's
(topological) order, a node is a bottleneck exactly when no edge jumps over it.

The attributable layers, as in the original, are the rank-4 bottleneck outputs of activation
modules (ReLU and friends) and of residual blocks (a module whose output is a sum). They get short
labels by resolution stage: ``1a, 2a, 2b, ...``; the default is the middle one.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import UserError
from .hooks import find_modules

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)
SUM_TARGETS = {"add", "add_", "iadd", "sum"}


@dataclass(frozen=True)
class Layer:
    """An attributable layer: the dotted module name to hook, a short label and its output shape."""

    name: str
    label: str
    shape: tuple[int, int, int]  # (C, H, W) for the agent's observation size


class NotABottleneckError(UserError):
    """A layer that a skip connection crosses, so attribution to it would be wrong."""


def bottleneck_outputs(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Modules whose output is a bottleneck of ``model``'s graph, with the output's shape.

    A module's output is the last graph node inside the module's scope. When nested modules share
    an output (a stage ending in a block), only the innermost is kept. Ordered as the forward
    pass produces them. Raises ``UserError`` if the model cannot be traced symbolically (then
    name layers explicitly).
    """
    try:
        # a recurrent model (agents/recurrent.py) is traced from an episode's start: no state given
        concrete = {"state": None} if getattr(model, "state_size", 0) else None
        graph_module = torch.fx.symbolic_trace(model, concrete_args=concrete)
        ShapeProp(graph_module).propagate(example)
    except Exception as exc:  # fx raises many types for untraceable code
        raise UserError(
            f"cannot trace {type(model).__name__} to find its layers ({type(exc).__name__}); name the layers explicitly"
        ) from None
    nodes = [n for n in graph_module.graph.nodes if n.op not in ("get_attr",)]
    position = {node: i for i, node in enumerate(nodes)}
    jumped = [0] * (len(nodes) + 1)  # difference array: edges spanning each position
    for node in nodes:
        for source in node.all_input_nodes:
            if source in position and position[node] - position[source] > 1:
                jumped[position[source] + 1] += 1
                jumped[position[node]] -= 1
    crossing, outputs = 0, {}
    last_node_of: dict[str, torch.fx.Node] = {}
    for node in nodes:
        for scope in node.meta.get("nn_module_stack", {}):
            last_node_of[scope] = node
        if node.op == "call_module":
            last_node_of[node.target] = node
    for i, node in enumerate(nodes):
        crossing += jumped[i]
        node.meta["bottleneck"] = crossing == 0
    innermost: dict[torch.fx.Node, str] = {}
    for name, node in last_node_of.items():
        if name.count(".") >= innermost.get(node, "").count(".") or node not in innermost:
            innermost[node] = name
    for node, name in sorted(innermost.items(), key=lambda item: position[item[0]]):
        meta = node.meta.get("tensor_meta")
        if node.meta.get("bottleneck") and meta is not None and hasattr(meta, "shape"):
            outputs[name] = tuple(meta.shape[1:])
    return outputs


def discover_layers(model: nn.Module, example: torch.Tensor) -> list[Layer]:
    """Attributable layers in forward order, labelled by resolution stage (1a, 1b, 2a, ...)."""
    bottlenecks = bottleneck_outputs(model, example[:1])
    modules = dict(model.named_modules())
    chosen: list[tuple[str, tuple[int, ...]]] = []
    for name, shape in bottlenecks.items():
        if len(shape) != 3 or name not in modules:
            continue
        module = modules[name]
        if isinstance(module, ACTIVATIONS) or _ends_in_sum(module):
            chosen.append((name, shape))
    return _label(chosen)


def _ends_in_sum(module: nn.Module) -> bool:
    """A residual block: a container whose forward ends by adding its branches."""
    if not list(module.children()):
        return False
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception:
        return False
    output = next(n for n in graph.nodes if n.op == "output")
    last = output.args[0]
    return isinstance(last, torch.fx.Node) and getattr(last.target, "__name__", str(last.target)) in SUM_TARGETS


def _label(layers: list[tuple[str, tuple[int, ...]]]) -> list[Layer]:
    labelled, stage, letter, size = [], 0, 0, None
    for name, shape in layers:
        if shape[1:] != size:
            stage, letter, size = stage + 1, 0, shape[1:]
        suffix = string.ascii_lowercase[letter] if letter < 26 else str(letter)
        labelled.append(Layer(name, f"{stage}{suffix}", tuple(int(d) for d in shape)))  # type: ignore[arg-type]
        letter += 1
    return labelled


def default_layer(layers: list[Layer]) -> Layer:
    """The middle layer, as in the original (for the "clear" CNN that is 2b)."""
    if not layers:
        raise UserError("the model has no attributable layers; name one explicitly")
    return layers[len(layers) // 2]


def resolve_layers(model: nn.Module, example: torch.Tensor, names: list[str] | None) -> list[Layer]:
    """Discovered layers, or the named ones (by module name or label) checked to be bottlenecks."""
    layers = discover_layers(model, example)
    if not names:
        return layers
    by_key = {layer.name: layer for layer in layers} | {layer.label: layer for layer in layers}
    find_modules(model, [n for n in names if n not in by_key])  # unknown names fail here
    bottlenecks = bottleneck_outputs(model, example[:1])
    resolved = []
    for name in names:
        if name in by_key:
            resolved.append(by_key[name])
        elif name in bottlenecks and len(bottlenecks[name]) == 3:
            resolved.append(Layer(name, name, tuple(int(d) for d in bottlenecks[name])))  # type: ignore[arg-type]
        else:
            valid = ", ".join(f"{layer.label}={layer.name}" for layer in layers)
            raise NotABottleneckError(
                f"layer {name!r} is not a spatial bottleneck (a skip connection crosses it or it is "
                f"not rank 4); attributable layers: {valid}"
            )
    return resolved
