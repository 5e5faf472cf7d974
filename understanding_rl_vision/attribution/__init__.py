"""Attribution: which scalar to explain (:mod:`.outputs`), where (:mod:`.layers`), and how
(:mod:`.integrated_gradients`). :func:`attribute` is the entry point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..agents.base import Agent
from ..errors import UserError
from . import methods
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
from .methods import Method
from .methods.gradient import input_gradient
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
    "Method",
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
    "methods",
    "quadrature",
    "resolve_layers",
]


def attribute(
    agent: Agent | ExplainedModel,
    observations: np.ndarray | torch.Tensor,
    layer: str | Layer | None = None,
    outputs: Sequence[str] | str = ("value",),
    *,
    method: str | Method = "ig",
    actions: np.ndarray | torch.Tensor | None = None,
    states: np.ndarray | torch.Tensor | None = None,
    steps: int = DEFAULT_STEPS,
    rule: Rule = "riemann",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    batching: Batching = "sequential",
) -> LayerAttribution:
    """Explain ``outputs`` with ``method`` at ``layer`` for a batch of observations.

    ``agent`` is an :class:`Agent` (observations are uint8 (N, H, W, C)) or any
    :class:`ExplainedModel` (observations are its preprocessed input). ``method`` is a registered
    name (``ig``, ``gradcam``, ``smoothgrad``, ``perturbation``, ...; see :data:`methods.REGISTRY`)
    or a :class:`~.methods.Method` built with its settings. ``layer`` is a dotted module name, a
    label such as ``2b``, ``input``, a :class:`Layer` already resolved, or None: the default
    (middle) layer for a method that reads a layer, the input for one that reads the input.
    ``outputs`` are names such as ``value``, ``logit:LEFT``, ``logits``, ``group:RIGHT``, ``groups``,
    ``action`` (the logit of the action taken: pass ``actions``, one per frame) or ``actor`` (every
    logit as one vector; perturbation only). Returns (K outputs, N, *shape): the layer's shape for
    ``channels`` methods, (h, w) for ``map`` methods. ``steps``, ``rule``, ``memory_budget`` and
    ``batching`` are integrated gradients' (``method="ig"``); results do not depend on ``batching``.
    For a recurrent agent, ``states`` (N, S) are the states entering each frame, as rollouts store
    them (None: zeros, an episode's start); integrated gradients then also return the part given to
    that memory (``LayerAttribution.memory``).
    """
    if isinstance(agent, Agent):
        explained, inputs = explain_agent(agent, states), agent.preprocess(observations)
    else:
        explained = agent if states is None else agent.with_states(states)  # None keeps states already bound
        inputs = torch.as_tensor(observations)
    chosen = explained.outputs(outputs)
    names = tuple(o.name for o in chosen)
    taken = None if actions is None else torch.as_tensor(np.asarray(actions))
    chosen_method = methods.method_class(method)() if isinstance(method, str) else method
    reads_input = chosen_method.info.attaches == "input"
    if reads_input or layer == INPUT_LAYER or (isinstance(layer, Layer) and layer.name == INPUT_LAYER):
        if not reads_input and not chosen_method.info.input_layer:
            raise UserError(f"{chosen_method.info.title} explains a layer, not the input")
        if isinstance(chosen_method, methods.IntegratedGradients):  # its input path, with the batching asked for
            values = input_gradient(explained, inputs, chosen, taken, batching=batching)
            return LayerAttribution(INPUT_LAYER, names, values)
        return LayerAttribution(INPUT_LAYER, names, chosen_method.attribute(explained, inputs, chosen, actions=taken))
    if isinstance(layer, Layer):
        resolved = layer
    elif layer is None:
        resolved = default_layer(discover_layers(explained.model, inputs[:1]))
    else:
        (resolved,) = resolve_layers(explained.model, inputs[:1], [layer])
    if isinstance(chosen_method, methods.IntegratedGradients):
        return integrated_gradients(
            explained,
            inputs,
            resolved.name,
            chosen,
            steps=steps,
            rule=rule,
            memory_budget=memory_budget,
            batching=batching,
            actions=taken,
        )
    return LayerAttribution(
        resolved.name, names, chosen_method.attribute(explained, inputs, chosen, resolved.name, actions=taken)
    )
