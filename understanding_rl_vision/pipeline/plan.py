"""What a run computes: its layers, outputs and jobs, each job named by a digest of its inputs.

Jobs form a small dependency graph: the two rollouts, one fit per layer (value attribution of the
observation set, NMF, dataset examples) needing the observation set, and one attribution job per
(layer, trajectory) needing the trajectories and that layer's fit. Any process may run any job
whose inputs exist; the result is the same bytes whoever runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..agents.base import Agent
from ..attribution import INPUT_LAYER, Layer, default_layer, explain_agent, resolve_layers
from ..config import RunConfig
from ..envs import EnvSpec, parse_env_id, spec_to_dict
from ..errors import UserError
from ..rollout import observation_parts
from .cache import digest

"""The pseudo-layer of plain input gradients."""


@dataclass(frozen=True)
class Job:
    """One unit of work; ``name`` is its product's name in the cache."""

    kind: str  # "trajectories", "observations", "fit" or "attribution"
    name: str
    layer: int = -1
    trajectory: int = -1
    part: int = -1  # which part of the observation set
    needs: tuple[str, ...] = ()
    cost: float = 1.0  # relative, to start the longest jobs first


@dataclass(frozen=True)
class Plan:
    config: RunConfig
    env: EnvSpec
    layers: tuple[Layer, ...]
    default_layer: int
    outputs: tuple[str, ...]
    jobs: tuple[Job, ...]

    @property
    def trajectories(self) -> Job:
        return next(job for job in self.jobs if job.kind == "trajectories")

    @property
    def observations(self) -> tuple[Job, ...]:
        """The observation set's parts, in order."""
        return tuple(job for job in self.jobs if job.kind == "observations")

    def fit(self, layer: int) -> Job:
        return next(job for job in self.jobs if job.kind == "fit" and job.layer == layer)

    def attribution(self, layer: int, trajectory: int) -> Job:
        return next(
            job for job in self.jobs if job.kind == "attribution" and (job.layer, job.trajectory) == (layer, trajectory)
        )


def choose_env(agent: Agent, requested: str) -> EnvSpec:
    """The agent's environment (with every option it records, e.g. the frame stack), which a
    requested name must agree with."""
    if not requested:
        if agent.env_spec is None:
            raise UserError("the checkpoint records no environment; name one with --env")
        return agent.env_spec
    spec = parse_env_id(requested)
    if agent.env_spec is None:
        return spec
    if spec.id != agent.env_spec.id:
        raise UserError(
            f"the checkpoint was trained on {agent.env_spec.id}, not {spec.id}; "
            "omit --env to use the checkpoint's environment"
        )
    return agent.env_spec


def choose_layers(agent: Agent, config: RunConfig) -> tuple[list[Layer], int]:
    """The selected layers (input first if included) and the index of the default one."""
    selection = config.layer_selection
    example = torch.zeros((1, *agent.observation_shape), dtype=torch.uint8)
    if agent.named_layers():
        layers = resolve_layers(agent.traceable(), agent.preprocess(example.numpy()), list(selection.layers))
    elif selection.layers:
        raise UserError("this model's layers cannot be hooked (TorchScript); only the input can be explained")
    else:
        layers = []
    if not selection.layers:
        layers = layers[selection.discard_first_n :]
    if not layers and not selection.include_input:
        raise UserError("no layers left to show: discard_first_n removed them all")
    wanted = selection.default_layer
    if wanted:
        match = [i for i, layer in enumerate(layers) if wanted in (layer.name, layer.label)]
        if not match:
            known = ", ".join(layer.label for layer in layers)
            raise UserError(f"default_layer {wanted!r} is not among the chosen layers ({known})")
        default = match[0]
    else:
        default = layers.index(default_layer(layers)) if layers else 0
    if selection.include_input:
        h, w, c = agent.observation_shape
        layers = [Layer(INPUT_LAYER, INPUT_LAYER, (c, h, w)), *layers]
        default += 1 if len(layers) > 1 else 0
    return layers, default


def make_plan(agent: Agent, config: RunConfig, checkpoint_digest: str) -> Plan:
    env = choose_env(agent, config.env)
    layers, default = choose_layers(agent, config)
    outputs = tuple(o.name for o in explain_agent(agent).outputs(config.attribution.outputs))
    unknown = [name for name in config.interface.row_outputs if name not in outputs]
    if unknown:
        raise UserError(
            f"row_outputs {', '.join(unknown)} not computed; outputs: {', '.join(outputs)}"
            + ("" if config.attribution.attr_policy else " (add --attr-policy for logits)")
        )
    if config.interface.trajectory >= config.trajectories.num_envs:
        raise UserError(
            f"trajectory {config.interface.trajectory} does not exist: there are {config.trajectories.num_envs}"
        )
    base = {"checkpoint": checkpoint_digest, "env": spec_to_dict(env), "seed": config.seed}
    trajectories = Job("trajectories", "trajectories-" + digest({**base, **dataclasses.asdict(config.trajectories)}))
    observations = tuple(
        Job(
            "observations",
            "observations-" + digest({**base, **dataclasses.asdict(config.observation_set), "part": part}),
            part=part,
        )
        for part in range(observation_parts(config.observation_set))
    )
    parts = tuple(job.name for job in observations)
    integration = {"ig_steps": config.attribution.ig_steps, "ig_rule": config.attribution.ig_rule}
    fits, attributions = [], []
    for index, layer in enumerate(layers):
        fit_name = "fit-" + digest(
            {
                "observations": parts,
                "layer": layer.name,
                **integration,
                **dataclasses.asdict(config.reduction),
                **dataclasses.asdict(config.feature_vis),
            }
        )
        cost = float(torch.tensor(layer.shape).prod())
        fits.append(Job("fit", fit_name, layer=index, needs=parts, cost=cost))
        for t in range(config.trajectories.num_envs):
            name = "attribution-" + digest(
                {"fit": fit_name, "trajectories": trajectories.name, "trajectory": t, "outputs": outputs, **integration}
            )
            attributions.append(
                Job(
                    "attribution",
                    name,
                    layer=index,
                    trajectory=t,
                    needs=(trajectories.name, fit_name),
                    cost=cost * len(outputs),
                )
            )
    by_cost = sorted(fits, key=lambda j: -j.cost) + sorted(attributions, key=lambda j: -j.cost)
    return Plan(config, env, tuple(layers), default, outputs, (*observations, trajectories, *by_cost))
