"""Attribution: which scalar to explain (:mod:`.outputs`), where (:mod:`.layers`), and how
(:mod:`.integrated_gradients`). :func:`attribute` is the entry point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..agents.base import Agent
from .hooks import LayerNotFoundError, capture, forward_hooks, hook_count
from .integrated_gradients import (
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_STEPS,
    INPUT_CHUNK,
    Batching,
    LayerAttribution,
    Rule,
    completeness_error,
    input_gradients,
    integrated_gradients,
    quadrature,
)
from .layers import Layer, NotABottleneckError, default_layer, discover_layers, resolve_layers
from .outputs import ExplainedModel, Output, explain_agent

INPUT_LAYER = "input"
"""The name under which the model's input is explained, as if it were a layer."""

__all__ = [
    "INPUT_CHUNK",
    "INPUT_LAYER",
    "Batching",
    "ExplainedModel",
    "Layer",
    "LayerAttribution",
    "LayerNotFoundError",
    "NotABottleneckError",
    "Output",
    "Rule",
    "attribute",
    "capture",
    "completeness_error",
    "default_layer",
    "discover_layers",
    "explain_agent",
    "forward_hooks",
    "hook_count",
    "input_gradients",
    "integrated_gradients",
    "quadrature",
    "resolve_layers",
]


def attribute(
    agent: Agent | ExplainedModel,
    observations: np.ndarray | torch.Tensor,
    layer: str | Layer | None = None,
    outputs: Sequence[str] | str = ("value",),
    *,
    steps: int = DEFAULT_STEPS,
    rule: Rule = "riemann",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    batching: Batching = "sequential",
) -> LayerAttribution:
    """Explain ``outputs`` at ``layer`` for a batch of observations.

    ``agent`` is an :class:`Agent` (observations are uint8 (N, H, W, C)) or any
    :class:`ExplainedModel` (observations are its preprocessed input). ``layer`` is a dotted
    module name, a label such as ``2b``, ``input`` for plain input gradients, a :class:`Layer`
    already resolved, or None for the default (middle) layer. ``outputs`` are names such as
    ``value``, ``logit:LEFT``, ``logits``,
    ``group:RIGHT``, ``groups``. Returns (K outputs, N, *layer shape). ``batching`` picks how
    the K backward passes run (see :mod:`.integrated_gradients`); results are identical.
    """
    if isinstance(agent, Agent):
        explained, inputs = explain_agent(agent), agent.preprocess(observations)
    else:
        explained, inputs = agent, torch.as_tensor(observations)
    chosen = explained.outputs(outputs)
    if layer == INPUT_LAYER or (isinstance(layer, Layer) and layer.name == INPUT_LAYER):
        parts = [input_gradients(explained, chunk, chosen, batching=batching) for chunk in inputs.split(INPUT_CHUNK)]
        return LayerAttribution(INPUT_LAYER, tuple(o.name for o in chosen), torch.cat(parts, dim=1))
    if isinstance(layer, Layer):
        resolved = layer
    elif layer is None:
        resolved = default_layer(discover_layers(explained.model, inputs[:1]))
    else:
        (resolved,) = resolve_layers(explained.model, inputs[:1], [layer])
    return integrated_gradients(
        explained,
        inputs,
        resolved.name,
        chosen,
        steps=steps,
        rule=rule,
        memory_budget=memory_budget,
        batching=batching,
    )
