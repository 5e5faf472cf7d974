"""Model editing: project feature directions out of a layer's activations.

The Distill article removed one NMF feature from a layer and watched how the agent's failures
changed. Here a :class:`FeatureEdit` names a layer and a direction over its C channels, and
:func:`apply_edits` registers a forward hook that removes that direction from the activation at
every location: ``a' = a - (a . u) u`` with ``u = d / |d|``. Several directions of one layer are
projected out jointly (an orthonormal basis of their span), so the result has no component
along any of them, whatever their overlap.

The edits live on the model (``model.feature_edits``), so a checkpoint saves them, the agent's
digest changes with them, and a deep copy keeps them (the hook is a plain object holding its
own tensor, not a handle on the module).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .base import Agent

EDITS_ATTRIBUTE = "feature_edits"
"""The model attribute holding its edits, a tuple of :class:`FeatureEdit` in the order applied."""
RANK_TOLERANCE = 1e-6
"""Singular values below this fraction of the largest are dropped: a direction that repeats
(or combines) others removes nothing more."""


@dataclass(frozen=True)
class FeatureEdit:
    """Remove ``direction`` (over the layer's C channels, as given; normalised when applied)
    from the output of the module named ``layer``; ``name`` is for people (e.g. "coin")."""

    layer: str
    direction: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", tuple(float(x) for x in self.direction))
        if not self.layer:
            raise UserError("an edit needs a layer name")
        if not self.direction:
            raise UserError(f"the edit of layer {self.layer} has an empty direction")
        if not all(math.isfinite(x) for x in self.direction):
            raise UserError(f"the edit of layer {self.layer} has a direction with NaN or infinite values")
        if not any(self.direction):
            raise UserError(f"the edit of layer {self.layer} has an all-zero direction, which removes nothing")

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "direction": list(self.direction), "name": self.name}


def model_edits(model: nn.Module) -> tuple[FeatureEdit, ...]:
    """The edits applied to ``model`` so far (empty for an unedited one)."""
    return tuple(getattr(model, EDITS_ATTRIBUTE, ()))


class _Projection:
    """The forward hook of one layer: removes the span of its directions from dim 1."""

    def __init__(self, layer: str, directions: Sequence[tuple[float, ...]]):
        self.layer = layer
        self.channels = len(directions[0])
        matrix = torch.tensor(np.array(directions, np.float64).T)  # (C, k)
        u, s, _ = torch.linalg.svd(matrix, full_matrices=False)
        self.basis = u[:, s > RANK_TOLERANCE * s.max()].to(torch.float32).contiguous()  # (C, r) orthonormal

    def __call__(self, module: nn.Module, inputs: object, output: object) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.dim() not in (2, 4):
            raise UserError(
                f"layer {self.layer} does not output an (N, C) or (N, C, h, w) tensor, so no feature can be removed"
            )
        if output.shape[1] != self.channels:
            raise UserError(
                f"an edit of layer {self.layer} has a direction over {self.channels} channels, "
                f"but the layer has {output.shape[1]}"
            )
        q = self.basis.to(device=output.device, dtype=output.dtype)
        if output.dim() == 2:
            return output - (output @ q) @ q.T
        coefficients = torch.einsum("nchw,ck->nkhw", output, q)
        return output - torch.einsum("nkhw,ck->nchw", coefficients, q)


def known_channels(module: nn.Module) -> int | None:
    """The module's output channels where its own attributes say (convolutions, dense and
    normalisation layers); None where only a forward pass can tell (a block, an activation)."""
    for attribute in ("out_channels", "out_features", "num_features"):
        value = getattr(module, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def apply_edits(model: nn.Module, edits: Sequence[FeatureEdit]) -> None:
    """Add ``edits`` to those already on ``model`` and hook every edited layer, in place.

    One hook per layer projects out all of that layer's directions (earlier edits' included).
    A direction whose length is not the layer's channel count is refused now where the module
    says its count, else at the first forward pass (:func:`check_edits` runs one).
    """
    edits = tuple(edits)
    for edit in edits:
        if not isinstance(edit, FeatureEdit):
            raise TypeError(f"expected FeatureEdit, got {type(edit).__name__}")
    if not edits:
        return
    if isinstance(model, torch.jit.ScriptModule):
        raise UserError("a TorchScript model's layers cannot be hooked, so no feature can be removed from it")
    modules = dict(model.named_modules())
    unknown = sorted({edit.layer for edit in edits if edit.layer not in modules or not edit.layer})
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise UserError(f"no layer {names} in this model (its layers: `understanding-rl-vision inspect`)")
    for edit in edits:
        channels = known_channels(modules[edit.layer])
        if channels is not None and channels != len(edit.direction):
            raise UserError(
                f"the edit {edit.name or 'of ' + edit.layer} has a direction over {len(edit.direction)} "
                f"channels, but layer {edit.layer} has {channels}"
            )
    every = (*model_edits(model), *edits)
    for layer in dict.fromkeys(edit.layer for edit in edits):
        directions = [edit.direction for edit in every if edit.layer == layer]
        if len({len(d) for d in directions}) > 1:
            raise UserError(f"the edits of layer {layer} have directions of different lengths")
        module = modules[layer]
        for key, hook in list(module._forward_hooks.items()):
            if isinstance(hook, _Projection):
                del module._forward_hooks[key]
        module.register_forward_hook(_Projection(layer, directions))
    setattr(model, EDITS_ATTRIBUTE, every)


def check_edits(agent: Agent) -> None:
    """Run the agent once on a blank observation, so that an edit whose direction does not fit
    its layer fails now, with the layer named, rather than in the middle of a run."""
    if model_edits(agent.model):
        with torch.no_grad():
            agent(np.zeros((1, *agent.observation_shape), np.uint8))
