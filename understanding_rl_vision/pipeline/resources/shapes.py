"""What the estimate reads off the agent and the config: layer and frame shapes, none of which
depends on a size setting (so they are found once per model and reused)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from ...agents.base import Agent
from ...attribution import INPUT_LAYER, Layer, explain_agent
from ...attribution.hooks import forward_hooks
from ...config import RunConfig
from ...envs.spec import AtariSpec, EnvSpec, ProcgenSpec
from ...errors import UserError
from ..plan import Plan, choose_env, choose_layers, plan_methods, with_automatic_methods

FULL_RES = 512
"""Procgen's full-resolution display frames (``full_res_frames``)."""
ATARI_SCREEN = (210, 160, 3)
"""What a person sees of an Atari game (ALE's screen, 210 x 160 for most games)."""


@dataclass(frozen=True)
class LayerShape:
    label: str
    channels: int
    height: int
    width: int
    above_sum: int
    """Elements per frame of every module output after the layer (autograd keeps about these)."""
    above_max: int
    """The largest of them (the backward pass holds about three at once)."""
    below_max: int
    """The largest module output up to the layer: the forward pass below it holds about two at
    once for every frame of a chunk, which integrated gradients' chunk size does not count."""

    @property
    def size(self) -> int:
        return self.channels * self.height * self.width

    @property
    def positions(self) -> int:
        return self.height * self.width

    @property
    def is_input(self) -> bool:
        return self.label == INPUT_LAYER


@dataclass(frozen=True)
class MethodShape:
    """What the estimate needs of one chosen method."""

    name: str
    produces: str  # "channels" or "map"
    outputs: int
    sites: tuple[int, ...]
    """Indices into :attr:`Shapes.layers`, or (-1,) for the input."""
    rows_per_frame: int


@dataclass(frozen=True)
class Shapes:
    """What the estimate needs of the agent and the plan: nothing here depends on a size setting."""

    observation: tuple[int, int, int]  # (H, W, C)
    frame: tuple[int, int, int]  # (h, w, 3), what a person sees
    num_actions: int
    outputs: int
    layers: tuple[LayerShape, ...]
    model_bytes: int
    methods: tuple[MethodShape, ...]
    network: LayerShape
    """The whole network seen from its input: what a method of the input runs through."""


_SHAPES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, Shapes]] = weakref.WeakKeyDictionary()
"""Shapes already found for a model and the settings they depend on (finding layers traces the
model, which takes a good part of a second)."""


def shapes_of(agent: Agent, plan: Plan | RunConfig) -> Shapes:
    """The agent's and plan's shapes; from a config, resolved as :func:`..plan.make_plan` does it,
    without building a job per trajectory (so a huge ``num_envs`` costs nothing here)."""
    config = plan.config if isinstance(plan, Plan) else plan
    key = (id(agent), agent.observation_shape, config.env, config.layer_selection, config.attribution,
           isinstance(plan, Plan) and (plan.env, plan.layers, plan.outputs))  # fmt: skip
    try:
        known = _SHAPES.setdefault(agent.model, {})
        hash(key)
    except TypeError:  # an environment option that cannot be hashed, a model that cannot be weakly referenced
        return _shapes_of(agent, plan)
    if key not in known:
        known[key] = _shapes_of(agent, plan)
    return known[key]


def _shapes_of(agent: Agent, plan: Plan | RunConfig) -> Shapes:
    layers: Sequence[Layer]
    if isinstance(plan, Plan):
        env, layers, outputs, methods = plan.env, plan.layers, len(plan.outputs), plan.methods
    else:
        plan = with_automatic_methods(agent, plan)  # as make_plan does
        env = choose_env(agent, plan.env)
        layers = choose_layers(agent, plan)[0]
        chosen = explain_agent(agent).outputs(plan.attribution.selection)
        methods = plan_methods(plan, list(layers), tuple(o.name for o in chosen), tuple(o.kind for o in chosen))
        outputs = len(chosen)
    sizes = _module_sizes(agent)
    shapes = []
    for layer in layers:
        c, h, w = layer.shape
        names = [name for name, _ in sizes]
        if layer.name == INPUT_LAYER or layer.name not in names:
            above, below = ([size for _, size in sizes] if layer.name == INPUT_LAYER else []), []
        else:
            position = len(names) - 1 - names[::-1].index(layer.name)
            above, below = [size for _, size in sizes[position + 1 :]], [size for _, size in sizes[: position + 1]]
        above = above or [8 * c * h * w]  # unknown (a model we cannot hook): a guess of its size
        below = below or [c * h * w, math.prod(agent.observation_shape)]
        shapes.append(LayerShape(layer.label, c, h, w, sum(above), max(above), max(below)))
    h, w, c = agent.observation_shape
    every = [size for _, size in sizes] or [8 * h * w * c]
    network = LayerShape(INPUT_LAYER, c, h, w, sum(every), max(every), h * w * c)
    method_shapes = tuple(
        MethodShape(m.method.info.name, m.method.info.produces, len(m.outputs), m.sites, m.method.rows_per_frame)
        for m in methods
    )
    params = sum(p.numel() * p.element_size() for p in agent.model.parameters())
    observation = cast("tuple[int, int, int]", tuple(agent.observation_shape))  # an (H, W, C) shape
    return Shapes(observation, _frame_shape(env, agent.observation_shape), agent.num_actions,
                  outputs, tuple(shapes), params, method_shapes, network)  # fmt: skip


def _module_sizes(agent: Agent) -> list[tuple[str, int]]:
    """(module name, output elements per frame) of every leaf module, in execution order."""
    explained = explain_agent(agent)
    sizes: list[tuple[str, int]] = []

    def measure(name: str):
        def hook(module: torch.nn.Module, args: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.dim() > 0:
                sizes.append((name, output[0].numel()))

        return hook

    try:
        modules = [name for name, module in explained.model.named_modules() if name]
        example = agent.preprocess(torch.zeros((1, *agent.observation_shape), dtype=torch.uint8))
        with torch.no_grad(), forward_hooks(explained.model, {name: measure(name) for name in modules}):
            explained.forward(example)
    except (RuntimeError, AttributeError, TypeError, UserError):  # TorchScript and other models we cannot hook
        return []
    return sizes


def _frame_shape(env: EnvSpec, observation: Sequence[int]) -> tuple[int, int, int]:
    if isinstance(env, ProcgenSpec):
        size = FULL_RES if env.full_res_frames else observation[0]
        return (size, size, 3)
    if isinstance(env, AtariSpec):
        return ATARI_SCREEN
    return (observation[0], observation[1], 3)
