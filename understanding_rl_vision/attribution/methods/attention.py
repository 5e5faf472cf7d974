"""The agent's own attention map (seed 002): read, not explained.

An attention agent (:mod:`...agents.attention`) computes a mask over the locations of its last
feature map and passes only the masked features on. The mask is part of the forward pass, so this
method costs one forward pass per chunk of frames and no backward pass. It is the same whatever the
output, so it explains only the ``attention`` entry (``explains="attention"``); the sum over the K
masks is drawn, at the mask's resolution, over the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...agents.attention import attention_layer
from ...errors import UserError
from ..hooks import capture
from ..integrated_gradients import INPUT_CHUNK
from ..outputs import ExplainedModel, Output
from .base import Method, MethodInfo, register


def attention_maps(explained: ExplainedModel, inputs: torch.Tensor) -> torch.Tensor:
    """The attention of each frame summed over its K masks, (N, h, w) float32 on the CPU."""
    name = attention_layer(explained.model)
    if name is None:
        raise UserError(f"{type(explained.model).__name__} has no attention layer to show (an attention agent has)")
    parts = []
    with capture(explained.model, [name]) as captured, torch.no_grad():
        for start in range(0, len(inputs), INPUT_CHUNK):
            explained.on(slice(start, start + INPUT_CHUNK)).forward(inputs[start : start + INPUT_CHUNK])
            parts.append(captured[name].float().sum(dim=1).cpu())
    if not parts:
        raise UserError("no frames to attribute")
    return torch.cat(parts)


@register
@dataclass(frozen=True)
class AttentionMap(Method):
    """Where the agent's attention puts its weight, per frame."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="attention",
        title="Attention",
        citation="Zhao et al. 2016; Nikulin, Kosch, Steuer & Cunningham, AI Safety Camp 2019 (seed 002)",
        summary="The agent's own attention mask: what it lets through to the policy, computed by the agent itself.",
        attaches="input",
        produces="map",
        scalar_outputs=False,
        explains="attention",
        automatic=True,
    )

    @property
    def signed(self) -> bool:
        return False

    def attribute(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        maps = attention_maps(explained, inputs)
        return maps.expand(len(outputs), *maps.shape).clone()
