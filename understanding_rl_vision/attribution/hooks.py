"""Scoped forward hooks on dotted module names.

Every hook registered here is removed in a ``finally`` block, so a model leaves an attribution
call (successful or not) exactly as it entered it. Tests check this by counting hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import UserError

ForwardHook = Callable[[nn.Module, tuple, torch.Tensor], torch.Tensor | None]


class LayerNotFoundError(UserError):
    """A layer name that is not one of the model's ``named_modules``."""


def find_modules(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    """The modules called ``names``; an unknown name fails listing the valid ones."""
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules or not name]
    if unknown:
        valid = ", ".join(name for name in modules if name)
        raise LayerNotFoundError(f"unknown layer(s) {', '.join(map(repr, unknown))}; valid: {valid}")
    return {name: modules[name] for name in names}


@contextmanager
def forward_hooks(model: nn.Module, hooks: Mapping[str, ForwardHook]) -> Iterator[None]:
    """Attach ``hooks[name]`` to each named module for the duration of the block."""
    modules = find_modules(model, list(hooks))
    handles = []
    try:
        for name, hook in hooks.items():
            handles.append(modules[name].register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the output of each named module during the block's forward passes."""
    captured: dict[str, torch.Tensor] = {}

    def recorder(name: str) -> ForwardHook:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            captured[name] = output

        return hook

    with forward_hooks(model, {name: recorder(name) for name in names}):
        yield captured


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """No parameter requires grad inside the block, so autograd records only what we explain."""
    previous = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for parameter, _ in previous:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, requires_grad in previous:
            parameter.requires_grad_(requires_grad)


def hook_count(model: nn.Module) -> int:
    """Forward (pre-)hooks attached anywhere in ``model``; for tests and sanity checks."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
