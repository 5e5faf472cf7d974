"""Rebuild a network from a file's weights without believing the file about its size.

The architecture and observation shape come from the file (or from its tensors' shapes), and
building the module allocates whatever they imply. So the module is first built on torch's
``meta`` device, which allocates nothing: its parameter count, the size of its activations and
every tensor shape are checked against the caps and against the file's own tensors, and only a
network that the file's weights fill exactly is built for real.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..errors import CheckpointError, UserError, first_line
from .architectures import build_model
from .base import ArchitectureSpec
from .limits import (
    MAX_ACTIVATION_VALUES,
    MAX_PARAMETERS,
    check_num_actions,
    check_observation_shape,
)

ACCEPTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
"""Weights we convert to float32; other floating-point halves are rare but lossless to widen."""


class MisfitError(CheckpointError):
    """The file's tensors do not fill the network its metadata (or its shapes) describe."""

    def __init__(self, message: str, names: frozenset[str] = frozenset()):
        super().__init__(message)
        self.names = names  # the tensors missing, unexpected or of the wrong shape


def shape_mismatch(expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]) -> str:
    """A one-line summary of missing, unexpected and wrongly shaped tensors ('' if none)."""

    def listing(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f", ... ({len(items) - 3} more)" if len(items) > 3 else "")

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} {tuple(found[k])} vs {tuple(expected[k])} expected"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k]) != tuple(expected[k])
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({listing(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({listing(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} with the wrong shape ({listing(shapes)})")
    return "; ".join(parts)


def planned_model(
    spec: ArchitectureSpec,
    shape: Sequence[int],
    num_actions: int,
    found: Mapping[str, Sequence[int]],
    what: str,
    misfit: str,
) -> nn.Module:
    """The network ``spec`` describes, built for real only once a meta-device twin shows that it
    is within the caps and that ``found`` (the file's tensor shapes) fills it exactly; otherwise
    a :class:`CheckpointError` (``misfit`` opens the message for a shape mismatch)."""
    shape = check_observation_shape(tuple(shape), what)
    check_num_actions(num_actions, what)
    try:
        with torch.device("meta"):
            plan = build_model(spec, shape, num_actions)
    except UserError as exc:
        raise CheckpointError(f"cannot rebuild the agent in {what}: {exc}") from None
    except (TypeError, ValueError, OverflowError, RuntimeError) as exc:  # torch refusing the sizes
        raise CheckpointError(
            f"cannot rebuild the agent in {what}: bad {spec.name!r} architecture arguments "
            f"{spec.kwargs} ({first_line(exc)})"
        ) from None
    expected = {name: tuple(tensor.shape) for name, tensor in plan.state_dict().items()}
    count = sum(tensor.numel() for tensor in plan.state_dict().values())
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{what} describes a network of {count:,} parameters, over the {MAX_PARAMETERS:,} this tool loads"
        )
    problem = shape_mismatch(expected, found)
    if problem:
        wrong = set(expected) ^ set(found) | {k for k in set(expected) & set(found) if tuple(found[k]) != expected[k]}
        raise MisfitError(f"{misfit}: {problem}", frozenset(wrong))
    largest = _largest_activation(plan, shape)
    if largest > MAX_ACTIVATION_VALUES:
        raise CheckpointError(
            f"{what}: a layer of this network yields {largest:,} values per observation, over the "
            f"{MAX_ACTIVATION_VALUES:,} this tool can explain"
        )
    return build_model(spec, shape, num_actions)


def _largest_activation(plan: nn.Module, shape: tuple[int, int, int]) -> int:
    """The most values any module outputs for one observation, measured on the meta device."""
    sizes = [shape[0] * shape[1] * shape[2]]

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                sizes.append(tensor.numel())

    handles = [module.register_forward_hook(record) for module in plan.modules()]
    try:
        with torch.no_grad():
            plan(torch.zeros((1, shape[2], shape[0], shape[1]), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return max(sizes)


def float32_weights(state: Mapping[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """``state`` as dense float32 CPU tensors. Half-precision weights are widened with one note
    on stderr; integer (quantized) weights, sparse tensors, NaN and infinity are refused."""
    out: dict[str, torch.Tensor] = {}
    converted: set[str] = set()
    for name, tensor in state.items():
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type != "cpu":
            raise CheckpointError(f"{what}: tensor {name} is not a plain dense tensor ({tensor.layout})")
        if tensor.dtype not in ACCEPTED_DTYPES:
            raise CheckpointError(
                f"{what} stores {str(tensor.dtype).removeprefix('torch.')} weights ({name}); only floating-point "
                "weights (float32, float16, bfloat16) can be loaded: quantized integer weights need the code "
                "that quantized them"
            )
        if tensor.dtype != torch.float32:
            converted.add(str(tensor.dtype).removeprefix("torch."))
            tensor = tensor.to(torch.float32)
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{what}: tensor {name} holds NaN or infinite values; the file is damaged")
        out[name] = tensor
    if converted:
        print(f"note: {what} stores {' and '.join(sorted(converted))} weights; converted to float32", file=sys.stderr)
    return out
