"""What each job computes, and how its product is stored in and read back from the cache.

* ``trajectories`` / ``observations``: the rollouts (:mod:`..rollout`).
* ``fit``: the layer's value attribution on the observation set, its NMF (:mod:`..reduction`)
  and the dataset examples of each feature (:mod:`..feature_vis`).
* ``states``: the states of interest, generated for each target (:mod:`..states`).
* ``attribution``: one method's explained outputs over one trajectory at one site, in the layer's
  NMF features or as heat maps, stored as the page's payload scripts (:mod:`.payloads`).
* ``report`` / ``ablation``: the methods' report card (:mod:`..evaluation`) and the returns with each
  feature of the default layer removed (:mod:`..editing`), as the manifest's JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np
import torch

from ..agents.base import Agent
from ..attribution import INPUT_CHUNK, INPUT_LAYER, ExplainedModel, Layer, Output, capture
from ..attribution.methods import BASIS_METHOD, Method, TreeMethod
from ..common.images import viewable
from ..contract.codec import from_json, to_json
from ..contract.schema import AblationInfo, ReportCard
from ..errors import UserError
from ..evaluation.report import card_methods, report_card, spread_frames
from ..feature_vis import feature_images
from ..reduction import ChannelReducer
from ..rollout import ObservationSet, Trajectories, collect_observation_set, collect_trajectories
from ..states import load_generator, measures, parse_targets, sample_states
from .cache import Cache
from .payloads import Scripts, channel_scripts, map_scripts, tree_scripts
from .plan import INPUT_SITE, Job, Plan
from .products import LayerFit, StatesProduct, TargetStates

# ------------------------------------------------------------------------------------ rollouts


def run_trajectories(agent: Agent, plan: Plan, cache: Cache, progress: bool) -> None:
    found = collect_trajectories(
        agent, plan.config.trajectories, env_spec=plan.env, seed=plan.config.seed, progress=progress
    )
    _check_finite(found.values, "value", found.logits, "logits")
    cache.save(plan.trajectories.name, {k: v for k, v in dataclasses.asdict(found).items() if v is not None})


def load_trajectories(cache: Cache, plan: Plan) -> Trajectories:
    return Trajectories(**cache.load(plan.trajectories.name))


def run_observations(agent: Agent, plan: Plan, cache: Cache, job: Job, progress: bool) -> None:
    found = collect_observation_set(
        agent, plan.config.observation_set, env_spec=plan.env, seed=plan.config.seed, progress=progress, part=job.part
    )
    cache.save(job.name, dataclasses.asdict(found))


def load_observations(cache: Cache, plan: Plan) -> ObservationSet:
    parts = [cache.load(job.name) for job in plan.observations]
    return ObservationSet(*(np.concatenate([part[name] for part in parts]) for name in ("observations", "states")))


# ------------------------------------------------------------------------------------ states of interest


def run_states(agent: Agent, plan: Plan, cache: Cache, job: Job) -> None:
    """Generate each target's states (seed 003) and find their nearest frames in the observation set."""
    settings = plan.config.states_of_interest
    vae, _ = load_generator(settings.states, plan.identity, device=agent.device)
    observed = load_observations(cache, plan).observations
    rng = np.random.default_rng(plan.config.seed)
    targets = []
    for target in parse_targets(agent, settings.state_targets, settings.state_sharpness):
        starts = None
        if settings.state_start == "observations":
            starts = observed[
                rng.choice(len(observed), settings.state_count, replace=len(observed) < settings.state_count)
            ]
        made = sample_states(vae, agent, target, settings, starts, seed=int(rng.integers(1 << 31)))
        _check_finite(made.values, "value", made.logits, "logits")
        nearest, error = measures.nearest_by_pixels(made.observations, observed)
        real_energy = measures.target_energies(agent, target, observed)
        by_energy = measures.nearest_by_energy(made.energy, real_energy)
        targets.append(
            TargetStates(
                observations=made.observations,
                logits=made.logits,
                values=made.values,
                energy=made.energy,
                start_energy=made.start_energy,
                nearest_pixels=nearest,
                pixel_error=error,
                novelty=measures.differing_share(made.observations, observed[nearest]),
                nearest_energy=by_energy,
                nearest_energy_value=real_energy[by_energy],
            )
        )
    cache.save(job.name, StatesProduct(tuple(targets)).to_arrays())


def load_states(cache: Cache, plan: Plan) -> StatesProduct:
    job = plan.states
    if job is None:
        raise AssertionError("the plan has no states of interest")  # callers check plan.states first
    return StatesProduct.from_arrays(cache.load(job.name))


def states_as_trajectories(states: StatesProduct) -> Trajectories:
    """The targets' states as trajectories (one per target, a state per frame), so that attribution
    explains them like played frames: each frame its own episode, with the agent's preferred action."""
    observations = np.stack([t.observations for t in states.targets])
    count, steps = observations.shape[:2]
    logits = np.stack([t.logits for t in states.targets]).astype(np.float32)
    return Trajectories(
        observations=observations,
        frames=viewable(observations.reshape(-1, *observations.shape[2:])).reshape(
            count, steps, *observations.shape[2:4], 3
        ),
        actions=logits.argmax(-1).astype(np.int64),
        rewards=np.zeros((count, steps), np.float32),
        firsts=np.ones((count, steps), bool),
        dones=np.zeros((count, steps), bool),
        logits=logits,
        values=np.stack([t.values for t in states.targets]).astype(np.float32),
        last_values=np.zeros(count, np.float32),
        states=np.zeros((count, steps, 0), np.float32),
    )


def _check_finite(*named: object) -> None:
    for values, name in zip(named[::2], named[1::2]):
        bad = ~np.isfinite(np.asarray(values))
        if bad.any():
            where = np.argwhere(bad)[0]
            raise UserError(
                f"the model's {name} output is NaN or infinite (at index {tuple(where.tolist())}); "
                "the checkpoint's weights are broken"
            )


# ------------------------------------------------------------------------------------ attribution


def attribute(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    method: Method,
    layer: Layer | None,
    outputs: Sequence[Output],
    actions: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``method``'s attribution of ``outputs`` at ``layer`` (None: the input), checked finite, and
    the part given to a recurrent model's memory (K, N) where the method attributes to it."""
    taken = None if actions is None else torch.as_tensor(actions)
    site = None if layer is None else layer.name
    values, memory = method.attribute_with_memory(explained, inputs, outputs, site, actions=taken)
    _check_finite(values.numpy(), "attribution")
    return values, memory


def activations(agent: Agent, explained: ExplainedModel, inputs: torch.Tensor, layer: Layer) -> torch.Tensor:
    """The layer's activations on ``inputs`` (for the input layer: the preprocessed input)."""
    if layer.name == INPUT_LAYER:
        return inputs.float().cpu()
    parts = []
    with capture(agent.model, [layer.name]) as captured, torch.no_grad():
        for start in range(0, len(inputs), INPUT_CHUNK):
            explained.on(slice(start, start + INPUT_CHUNK)).forward(inputs[start : start + INPUT_CHUNK])
            parts.append(captured[layer.name].float().cpu())
    return torch.cat(parts)


# ------------------------------------------------------------------------------------ layer fits


def run_fit(agent: Agent, explained: ExplainedModel, plan: Plan, cache: Cache, job: Job) -> None:
    """The layer's NMF basis, fitted on the basis method's value attribution of the observation
    set, and its features' dataset examples."""
    layer = plan.layers[job.layer]
    observed = load_observations(cache, plan)
    inputs = agent.preprocess(observed.observations)
    explained = explained.with_states(observed.states)  # each observation explained given the state it came with
    basis = plan.config.method_settings.method(BASIS_METHOD)
    value = attribute(explained, inputs, basis, layer, explained.outputs(["value"]))[0][0]
    reducer = ChannelReducer(plan.config.reduction).fit(value)
    images = feature_images(
        observed.observations, activations(agent, explained, inputs, layer), reducer.components, plan.config.feature_vis
    )
    cache.save(job.name, LayerFit(reducer.components, images).to_arrays())


def load_fit(cache: Cache, job: Job) -> LayerFit:
    return LayerFit.from_arrays(cache.load(job.name))


# ------------------------------------------------------------------------------------ attribution jobs


def run_attribution(
    agent: Agent,
    explained: ExplainedModel,
    plan: Plan,
    cache: Cache,
    job: Job,
    trajectories: Trajectories,
    components: np.ndarray | None,
) -> None:
    """One method's attribution of its outputs over one trajectory at one site, stored as its
    product: in the layer's NMF features (``channels``, with the fit's ``components``) or as maps.
    ``trajectories`` are the played ones, or for a states-of-interest trajectory, the targets' states
    (:func:`states_as_trajectories`)."""
    planned = plan.methods[job.method]
    layer = None if job.layer == INPUT_SITE else plan.layers[job.layer]
    row = job.trajectory if job.trajectory < plan.played else job.trajectory - plan.played  # a target's states
    inputs = agent.preprocess(trajectories.observations[row])
    if trajectories.states is not None:  # each frame explained given the state it was played with
        explained = explained.with_states(trajectories.states[row])
    chosen = explained.outputs([plan.outputs[o] for o in planned.outputs])
    values, memory = attribute(explained, inputs, planned.method, layer, chosen, trajectories.actions[row])
    scripts: Scripts
    if isinstance(planned.method, TreeMethod):
        levels = planned.method.levels(explained.model, inputs)
        scripts = tree_scripts(plan, job, tuple(v.numpy() for v in values), levels)
    elif planned.method.info.produces == "channels":
        if components is None:
            raise AssertionError("a channels job runs after its layer's fit")  # the plan's dependency
        reducer = ChannelReducer.from_components(components, plan.config.reduction)
        kept = None if memory is None else memory.numpy().astype(np.float32)
        scripts = channel_scripts(plan, job, tuple(reducer.transform(v) for v in values), kept)
    else:
        scripts = map_scripts(plan, job, values.numpy())
    cache.save(job.name, scripts.to_arrays())


def load_scripts(cache: Cache, job: Job) -> Scripts:
    return Scripts.from_arrays(cache.load(job.name))


# ------------------------------------------------------------------------------------ evaluation


def run_report(agent: Agent, plan: Plan, cache: Cache, job: Job, trajectories: Trajectories) -> None:
    """The report card: every method of the run judged on frames spread over its trajectories,
    layer methods at the default layer."""
    settings = plan.config.evaluation
    layer = plan.layers[plan.default_layer] if plan.layers else None
    at = None if layer is None or layer.name == INPUT_LAYER else layer
    chosen = card_methods(agent.model, [planned.method for planned in plan.methods], at)
    frames = spread_frames(trajectories, settings.report_frames)
    card = report_card(agent, plan.env, frames, chosen, settings, seed=plan.config.seed)
    cache.save(job.name, {"card": _json_bytes(card)})


def load_report(cache: Cache, job: Job) -> ReportCard:
    return from_json(ReportCard, json.loads(cache.load(job.name)["card"].tobytes()))


def run_ablation(agent: Agent, plan: Plan, cache: Cache, job: Job) -> None:
    """The agent played as is and without each NMF feature of the default layer, on the same levels."""
    from ..editing.ablation import ablate

    fit = load_fit(cache, plan.fit(job.layer))
    info = ablate(
        agent,
        plan.layers[job.layer].name,
        fit.components,
        plan.config.evaluation.ablation_episodes,
        seed=plan.config.seed,
        progress=False,
    ).info(job.layer)
    cache.save(job.name, {"ablation": _json_bytes(info)})


def load_ablation(cache: Cache, job: Job) -> AblationInfo:
    return from_json(AblationInfo, json.loads(cache.load(job.name)["ablation"].tobytes()))


def _json_bytes(record: object) -> np.ndarray:
    return np.frombuffer(json.dumps(to_json(record)).encode(), np.uint8)
