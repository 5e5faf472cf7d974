"""Integrated gradients (Sundararajan et al. 2017) as a registered method: the original's attribution,
and the one the layer's NMF basis is fitted on, so every ``channels`` method shares its features.

At the ``input`` pseudo-layer it gives plain input gradients, as the original did (integrating
from a black frame would mostly reproduce the image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ...errors import ConfigError
from ..integrated_gradients import DEFAULT_STEPS, Rule, integrated_gradients
from ..outputs import ExplainedModel, Output
from .base import Method, MethodInfo, register
from .gradient import input_gradient

INPUT = "input"


@register
@dataclass(frozen=True)
class IntegratedGradients(Method):
    """The path integral of the output's gradient from a zero activation to the layer's activation."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="ig",
        title="Integrated gradients",
        citation="Sundararajan, Taly & Yan, Axiomatic Attribution for Deep Networks, ICML 2017",
        summary="How much each feature at this layer adds to the output, relative to a zero activation.",
        attaches="layer",
        produces="channels",
        input_layer=True,
        memory=True,
        complete=True,
    )
    ig_steps: int = DEFAULT_STEPS
    """Integration steps (the original used 10 right-Riemann steps)."""
    ig_rule: Rule = "riemann"
    """Quadrature: right Riemann sum as the original, or Gauss-Legendre (fewer steps suffice)."""

    def __post_init__(self) -> None:
        if isinstance(self.ig_steps, bool) or not isinstance(self.ig_steps, int) or self.ig_steps < 1:
            raise ConfigError(f"ig_steps must be a positive integer, got {self.ig_steps!r}")
        if self.ig_rule not in ("riemann", "gauss-legendre"):
            raise ConfigError(f"ig_rule must be riemann or gauss-legendre, got {self.ig_rule!r}")

    def settings(self) -> dict[str, Any]:
        # Without the method's name: caches written before the registry keep their keys.
        return {"ig_steps": self.ig_steps, "ig_rule": self.ig_rule}

    def attribute(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.attribute_with_memory(explained, inputs, outputs, layer, actions=actions)[0]

    def attribute_with_memory(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """At a layer of a recurrent model, the incoming state is integrated along the same path (from
        zero), so the layer's and the memory's attributions together sum to f(a, s) - f(0, 0)."""
        if layer is None or layer == INPUT:
            return input_gradient(explained, inputs, outputs, actions), None
        found = integrated_gradients(
            explained, inputs, layer, outputs, steps=self.ig_steps, rule=self.ig_rule, actions=actions
        )
        return found.values, found.memory
