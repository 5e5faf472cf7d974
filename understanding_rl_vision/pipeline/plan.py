"""What a run computes: its layers, outputs, methods and jobs, each job named by a digest of its inputs.

Jobs form a small dependency graph: the two rollouts, one fit per layer (value attribution of the
observation set, NMF, dataset examples) needing the observation set, and one attribution job per
(method, site, trajectory), where a site is a layer or the input. A ``channels`` method's job
needs the trajectories and that layer's fit; a ``map`` method's job only the trajectories. Any
process may run any job whose inputs exist; the result is the same bytes whoever runs it.

Nothing here names a method: each one's :class:`~..attribution.methods.MethodInfo` says where it
attaches, what it produces and whether it explains vector outputs, and its settings enter its jobs'
names (:meth:`Method.settings`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..agents.base import Agent
from ..attribution import INPUT_LAYER, Layer, default_layer, explain_agent, resolve_layers
from ..attribution.methods import BASIS_METHOD, REGISTRY, Method, method_class
from ..attribution.outputs import ATTENTION_OUTPUT
from ..common.files import file_digest
from ..config import AttributionConfig, InterfaceConfig, RunConfig
from ..contract.schema import DEFAULT_KEY_PREFIX
from ..editing.names import read_feature_names
from ..envs import EnvSpec, parse_env_id, spec_to_dict
from ..errors import UserError
from ..rollout import observation_parts
from ..states import parse_targets, read_header
from ..states.perception import check_agent
from ..states.store import generator_file
from .cache import digest

INPUT_SITE = -1
"""The site of a method that reads the model's input rather than a layer."""
REPORT_FORMAT = 1
"""In the report card's and the ablation table's job names: bumped when what they compute changes."""
ATTRIBUTION_FORMAT = 2
"""In every attribution job's name: 2 since its product is the payload scripts (:mod:`.payloads`),
so a cache of arrays is not read as scripts, while rollouts and fits keep their names and are reused."""


@dataclass(frozen=True)
class PlannedMethod:
    """One chosen method, and what of the run it covers."""

    method: Method
    outputs: tuple[int, ...]
    """Indices into :attr:`Plan.outputs` it explains."""
    layers: tuple[int, ...]
    """Indices into :attr:`Plan.layers` it is computed at; empty for a method of the input."""
    key_prefix: str
    """Its payloads' key prefix in the output (the first ``channels`` method keeps format 1's)."""

    @property
    def sites(self) -> tuple[int, ...]:
        """Where its jobs run: its layers, or :data:`INPUT_SITE`."""
        return self.layers or (INPUT_SITE,)


@dataclass(frozen=True)
class Job:
    """One unit of work; ``name`` is its product's name in the cache."""

    kind: str  # "trajectories", "observations", "states", "fit", "attribution", "report" or "ablation"
    name: str
    layer: int = -1  # a fit's layer; an attribution's site (a layer index, or INPUT_SITE)
    trajectory: int = -1
    method: int = -1  # an attribution's index into Plan.methods
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
    methods: tuple[PlannedMethod, ...]
    jobs: tuple[Job, ...]
    identity: str = ""
    """The checkpoint's digest (a generator of states must have been trained for it)."""

    @property
    def trajectories(self) -> Job:
        return next(job for job in self.jobs if job.kind == "trajectories")

    @property
    def states(self) -> Job | None:
        """The states of interest's job, when the run has a generator."""
        return next((job for job in self.jobs if job.kind == "states"), None)

    @property
    def played(self) -> int:
        """Trajectories the agent plays; the states of interest's targets follow, one trajectory each."""
        return self.config.trajectories.num_envs

    @property
    def num_trajectories(self) -> int:
        states = len(self.config.states_of_interest.state_targets) if self.states is not None else 0
        return self.played + states

    @property
    def observations(self) -> tuple[Job, ...]:
        """The observation set's parts, in order."""
        return tuple(job for job in self.jobs if job.kind == "observations")

    def fit(self, layer: int) -> Job:
        return next(job for job in self.jobs if job.kind == "fit" and job.layer == layer)

    @property
    def report(self) -> Job | None:
        """The report card's job, when the run has one (``report_frames`` > 0)."""
        return next((job for job in self.jobs if job.kind == "report"), None)

    @property
    def ablation(self) -> Job | None:
        """The ablation table's job, when the run has one (``ablation_episodes`` > 0)."""
        return next((job for job in self.jobs if job.kind == "ablation"), None)

    def attribution(self, method: int, site: int, trajectory: int) -> Job:
        return next(
            job
            for job in self.jobs
            if job.kind == "attribution" and (job.method, job.layer, job.trajectory) == (method, site, trajectory)
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


def plan_methods(
    config: RunConfig, layers: list[Layer], outputs: tuple[str, ...], kinds: tuple[str, ...]
) -> tuple[PlannedMethod, ...]:
    """Each chosen method with the outputs it can explain (``kinds``: each output's
    :data:`~..attribution.outputs.OutputKind`) and the layers it attaches to."""
    planned = []
    channels = 0
    for index, name in enumerate(config.attribution.methods):
        method = config.method_settings.method(name)
        info = method.info
        explained = tuple(
            o
            for o, kind in enumerate(kinds)
            if (kind != "vector" or not info.scalar_outputs)
            and (info.explains != "attention" or outputs[o] == ATTENTION_OUTPUT)
        )
        if not explained and info.explains == "attention":
            raise UserError(f"{info.title} shows an attention agent's attention, and this agent has no attention layer")
        if not explained:
            raise UserError(
                f"{info.title} explains none of the chosen outputs ({', '.join(outputs)}): add value or action"
            )
        if info.attaches == "layer":
            at = tuple(i for i, layer in enumerate(layers) if layer.name != INPUT_LAYER or info.input_layer)
            if not at:
                raise UserError(f"{info.title} explains a layer, and no layer it can read is chosen (--layers)")
        else:
            at = ()
        if info.produces == "channels":
            prefix = DEFAULT_KEY_PREFIX if channels == 0 else f"m{index}"
            channels += 1
        else:
            prefix = f"m{index}"
        planned.append(PlannedMethod(method, explained, at, prefix))
    return tuple(planned)


def with_automatic_methods(agent: Agent, config: RunConfig) -> RunConfig:
    """``config`` with what the agent itself calls for. With the default methods, each
    :attr:`~..attribution.methods.MethodInfo.automatic` method that applies to the agent is added (an
    attention agent's map and tree); a chosen method that explains the attention adds its output."""
    methods = config.attribution.methods
    if methods == AttributionConfig().methods:
        methods = (
            *methods,
            *(name for name, cls in REGISTRY.items() if cls.info.automatic and cls.applies_to(agent.model)),
        )
    explain = config.attribution.explain
    wants_attention = any(method_class(name).info.explains == "attention" for name in methods)
    if wants_attention and ATTENTION_OUTPUT in explain_agent(agent).entries and ATTENTION_OUTPUT not in explain:
        explain = (*explain, ATTENTION_OUTPUT)
    if (methods, explain) == (config.attribution.methods, config.attribution.explain):
        return config
    return config.replace(methods=methods, explain=explain)


def make_plan(agent: Agent, config: RunConfig, checkpoint_digest: str) -> Plan:
    config = with_automatic_methods(agent, config)
    env = choose_env(agent, config.env)
    layers, default = choose_layers(agent, config)
    chosen = explain_agent(agent).outputs(config.attribution.selection)
    outputs = tuple(o.name for o in chosen)
    methods = plan_methods(config, layers, outputs, tuple(o.kind for o in chosen))
    if config.interface.row_outputs == InterfaceConfig().row_outputs and "value" not in outputs:
        config = config.replace(row_outputs=outputs[:1])  # the default row explains what was computed
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
    if config.evaluation.feature_names:
        check_feature_names(config.evaluation.feature_names, layers, config.reduction.nmf_features)
    base = {"checkpoint": checkpoint_digest, "env": spec_to_dict(env), "seed": config.seed}
    if agent.recurrent:  # the stored states: carried from the rollout's start, zeroed where an episode starts
        base["state"] = {"size": agent.state_size, "reset": "episode start"}
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
    states = _states_job(agent, config, checkpoint_digest, parts)
    sources = [trajectories.name] * config.trajectories.num_envs
    sources += [states.name] * len(config.states_of_interest.state_targets) if states else []
    basis = config.method_settings.method(BASIS_METHOD).settings()
    fits, attributions = [], []
    for index, layer in enumerate(layers):
        fit_name = "fit-" + digest(
            {
                "observations": parts,
                "layer": layer.name,
                **basis,
                **dataclasses.asdict(config.reduction),
                **dataclasses.asdict(config.feature_vis),
            }
        )
        fits.append(Job("fit", fit_name, layer=index, needs=parts, cost=_size(layer)))
    for m, planned in enumerate(methods):
        names = [outputs[o] for o in planned.outputs]
        for site in planned.sites:
            for t, source in enumerate(sources):
                if planned.method.info.produces == "channels":
                    fit_name = fits[site].name
                    key = {"fit": fit_name, "trajectories": source, "trajectory": t, "outputs": names}
                    needs: tuple[str, ...] = (source, fit_name)
                else:
                    where = INPUT_LAYER if site == INPUT_SITE else layers[site].name
                    key = {"site": where, "trajectories": source, "trajectory": t, "outputs": names}
                    needs = (source,)
                cost = _size(layers[site]) if site != INPUT_SITE else float(np.prod(agent.observation_shape))
                attributions.append(
                    Job(
                        "attribution",
                        "attribution-" + digest({**key, **planned.method.settings(), "format": ATTRIBUTION_FORMAT}),
                        layer=site,
                        trajectory=t,
                        method=m,
                        needs=needs,
                        cost=cost * len(names),
                    )
                )
    by_cost = sorted(fits, key=lambda j: -j.cost) + sorted(attributions, key=lambda j: -j.cost)
    evaluation = _evaluation_jobs(config, methods, layers, default, trajectories, fits, base)
    made = (*observations, trajectories, *([states] if states else []), *evaluation, *by_cost)
    return Plan(config, env, tuple(layers), default, outputs, methods, made, checkpoint_digest)


def _states_job(agent: Agent, config: RunConfig, checkpoint_digest: str, parts: tuple[str, ...]) -> Job | None:
    """The job generating the states of interest, named by the generator's bytes and the settings;
    the generator must have been trained for this checkpoint, and its targets must fit the agent."""
    settings = config.states_of_interest
    if not settings.states:
        return None
    check_agent(agent)
    parse_targets(agent, settings.state_targets, settings.state_sharpness)
    file = generator_file(Path(settings.states))
    header = read_header(file)
    if header.get("agent") != checkpoint_digest:
        raise UserError(
            f"the generator {file} was trained for another agent; train one for this checkpoint with `states train`"
        )
    key = {"generator": file_digest(file), "observations": parts, "seed": config.seed, **dataclasses.asdict(settings)}
    key.pop("states")  # where the generator lies does not change what it makes
    return Job("states", "states-" + digest(key), needs=parts, cost=float(settings.state_count * settings.state_steps))


def check_feature_names(path: str, layers: list[Layer], features: int) -> dict[str, dict[int, str]]:
    """The names file's names, by layer label, refused before any work when they name a layer the
    run does not show or a feature it does not fit."""
    found = read_feature_names(path)
    by_key = {layer.label: layer.label for layer in layers} | {layer.name: layer.label for layer in layers}
    named: dict[str, dict[int, str]] = {}
    for key, names in found.items():
        if key not in by_key:
            known = ", ".join(layer.label for layer in layers)
            raise UserError(f"{path} names features of layer {key!r}, which this run does not show ({known})")
        beyond = [n for n in names if n > features]
        if beyond:
            raise UserError(f"{path} names feature {beyond[0]} of layer {key}, but the run fits {features} features")
        named.setdefault(by_key[key], {}).update(names)
    return named


def _evaluation_jobs(
    config: RunConfig,
    methods: tuple[PlannedMethod, ...],
    layers: list[Layer],
    default: int,
    trajectories: Job,
    fits: list[Job],
    base: dict,
) -> list[Job]:
    """The report card (every method judged on frames of the trajectories) and the ablation
    table (the agent played without each feature of the default layer), when asked for."""
    settings = config.evaluation
    made = []
    if settings.report_frames:
        where = layers[default].name if layers else INPUT_LAYER
        key = {
            "trajectories": trajectories.name,
            "layer": where,
            "methods": [planned.method.settings() for planned in methods],
            **{k: v for k, v in dataclasses.asdict(settings).items() if k.startswith(("report", "sanity"))},
            "format": REPORT_FORMAT,
        }
        cost = float(settings.report_frames * len(methods) * 100)
        made.append(Job("report", "report-" + digest(key), needs=(trajectories.name,), cost=cost))
    if settings.ablation_episodes and layers and layers[default].name != INPUT_LAYER:
        fit = fits[default]
        key = {**base, "fit": fit.name, "episodes": settings.ablation_episodes, "format": REPORT_FORMAT}
        cost = float(settings.ablation_episodes * (len(fits) + 1) * 100)
        made.append(Job("ablation", "ablation-" + digest(key), layer=default, needs=(fit.name,), cost=cost))
    return made


def _size(layer: Layer) -> float:
    return float(np.prod(layer.shape))
