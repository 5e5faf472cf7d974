"""A layer's NMF basis fitted as a run fits it, without building the run (for ``edit`` and
``ablate`` when no finished run is given).

The pipeline's own steps, with a run's settings: the observation set (:mod:`..rollout`), the
basis method's value attribution at the layer (:func:`.jobs.attribute`), then
:class:`~..reduction.ChannelReducer`. With the same settings the features come out as the run
numbers them, so ``--remove-feature 3`` means the third feature a ``run`` of the agent shows.
"""

from __future__ import annotations

import numpy as np

from ..agents.base import Agent
from ..attribution import INPUT_LAYER, Layer, explain_agent
from ..attribution.methods import BASIS_METHOD
from ..common.device import one_thread
from ..config import RunConfig
from ..errors import UserError
from ..reduction import ChannelReducer
from ..rollout import collect_observation_set
from .jobs import attribute
from .plan import choose_env, choose_layers


def find_layer(agent: Agent, layer: str = "", config: RunConfig | None = None) -> Layer:
    """The layer labelled or named ``layer`` among those a run would offer (the run's default
    layer when empty); anything else is one line listing them."""
    layers, default = choose_layers(agent, config or RunConfig())
    if not layer:
        if layers[default].name == INPUT_LAYER:
            raise UserError("the default layer is the input, whose features cannot be removed; name a layer")
        return layers[default]
    for item in layers:
        if layer in (item.name, item.label) and item.name != INPUT_LAYER:
            return item
    known = ", ".join(f"{item.label}={item.name}" for item in layers if item.name != INPUT_LAYER)
    raise UserError(f"no layer {layer!r} among this agent's layers ({known})")


def fit_basis(agent: Agent, layer: Layer, config: RunConfig | None = None, *, progress: bool = True) -> np.ndarray:
    """The (K, C) NMF components of ``layer``, each row summing to 1, fitted on the value
    attribution of the observation set ``config`` (default: a run's defaults) describes."""
    config = config or RunConfig()
    env = choose_env(agent, config.env)
    with one_thread():  # as a run computes it: the same bytes, so the same features in the same order
        observed = collect_observation_set(
            agent, config.observation_set, env_spec=env, seed=config.seed, progress=progress
        )
        explained = explain_agent(agent).with_states(observed.states)
        inputs = agent.preprocess(observed.observations)
        method = config.method_settings.method(BASIS_METHOD)
        value = attribute(explained, inputs, method, layer, explained.outputs(["value"]))[0][0]
        return ChannelReducer(config.reduction).fit(value).components
