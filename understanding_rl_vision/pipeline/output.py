"""Write the output folder from the cached products: the data contract's payloads
(:mod:`..contract`), then the page (:mod:`..render`). Nothing here computes attribution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np

from ..advantages import discount_settings, find_bookmarks, gae
from ..agents.base import Agent
from ..config import RunConfig
from ..contract import (
    DATA_DIRNAME,
    FeatureInfo,
    LayerInfo,
    Manifest,
    MethodEntry,
    StatesInfo,
    StatesPayload,
    StateTarget,
    bookmarks_from,
    write_feature,
    write_manifest,
    write_observations,
    write_payload,
    write_script,
    write_trajectory,
)
from ..reduction import feature_colours
from ..render import render_interface
from ..rollout import Trajectories
from ..states import parse_targets, read_header
from ..states.store import generator_file
from .cache import Cache
from .jobs import (
    load_ablation,
    load_fit,
    load_observations,
    load_report,
    load_scripts,
    load_states,
    load_trajectories,
    states_as_trajectories,
)
from .plan import INPUT_SITE, Plan, PlannedMethod, check_feature_names


def write_output(
    directory: Path, agent: Agent, plan: Plan, cache: Cache, title: str, tick: Callable[[], None] = lambda: None
) -> Path:
    """Everything the page needs into ``directory``; returns the path of interface.html."""
    config: RunConfig = plan.config
    data = directory / DATA_DIRNAME
    data.mkdir(parents=True)
    trajectories = load_trajectories(cache, plan)
    names = {}
    if config.evaluation.feature_names:
        names = check_feature_names(config.evaluation.feature_names, list(plan.layers), config.reduction.nmf_features)
    layer_infos = []
    for index, layer in enumerate(plan.layers):
        fit = load_fit(cache, plan.fit(index))
        for f, feature in enumerate(fit.features):
            write_feature(data, index, f, thumbnail=feature.thumbnail.image, popups=feature.popups)
        tick()
        colours = feature_colours(len(fit.components))
        layer_infos.append(
            LayerInfo(
                name=layer.name,
                label=layer.label,
                shape=layer.shape,
                features=tuple(
                    FeatureInfo(
                        name=names.get(layer.label, {}).get(f + 1, f"feature {f + 1}"),
                        color=colours[f],
                        direction=tuple(float(np.float32(c)) for c in fit.components[f]),
                    )
                    for f in range(len(fit.components))
                ),
            )
        )
    for m, planned in enumerate(plan.methods):
        for site in planned.sites:
            for t in range(plan.num_trajectories):
                _write_method(data, plan, cache, m, site, t)
                tick()
    gamma, lam = discount_settings(config.advantage.gamma, config.advantage.lam, agent.gamma, agent.lam)
    advantages = gae(
        trajectories.rewards, trajectories.values, trajectories.dones, gamma, lam, trajectories.last_values
    )
    marks = find_bookmarks(advantages, trajectories.firsts, config.advantage.num_bookmarks)
    _write_trajectories(data, trajectories, advantages, first=0)
    lengths = (trajectories.num_steps,) * trajectories.num_envs
    states = None
    if plan.states is not None:
        states = _write_states(data, agent, plan, cache)
        lengths += (plan.config.states_of_interest.state_count,) * len(states.targets)
    write_manifest(
        data,
        Manifest(
            env_id=plan.env.id,
            agent=title,
            action_names=tuple(agent.action_names),
            action_groups={name: tuple(indices) for name, indices in agent.action_groups.items()},
            outputs=plan.outputs,
            layers=tuple(layer_infos),
            default_layer=plan.default_layer,
            trajectory_lengths=lengths,
            observation_size=cast("tuple[int, int]", tuple(agent.observation_shape[:2])),
            fps=float(config.interface.fps),
            action_outputs=agent.action_outputs,
            bookmarks=bookmarks_from(marks),
            observations=write_observations(data, load_observations(cache, plan).observations),
            methods=tuple(
                _method_entry(planned, _map_shape(plan, cache, m, agent)) for m, planned in enumerate(plan.methods)
            ),
            states=states,
            report=None if plan.report is None else load_report(cache, plan.report),
            ablation=None if plan.ablation is None else load_ablation(cache, plan.ablation),
        ),
    )
    return render_interface(directory, title=title, interface=config.interface)


def _write_trajectories(data: Path, trajectories: Trajectories, advantages: np.ndarray, first: int) -> None:
    """Each trajectory's payload, numbered from ``first``."""
    for t in range(trajectories.num_envs):
        write_trajectory(
            data,
            first + t,
            frames=trajectories.frames[t],
            rewards=trajectories.rewards[t],
            firsts=trajectories.firsts[t],
            actions=trajectories.actions[t],
            values=trajectories.values[t],
            logits=trajectories.logits[t],
            advantages=advantages[t],
        )


def _write_states(data: Path, agent: Agent, plan: Plan, cache: Cache) -> StatesInfo:
    """Each target's states as a trajectory after the played ones, and its :class:`StatesPayload`."""
    settings = plan.config.states_of_interest
    made = load_states(cache, plan)
    as_trajectories = states_as_trajectories(made)
    targets = parse_targets(agent, settings.state_targets, settings.state_sharpness)
    _write_trajectories(data, as_trajectories, np.zeros_like(as_trajectories.values), first=plan.played)
    for k, found in enumerate(made.targets):
        payload = StatesPayload(
            target=k,
            energy=found.energy,
            start_energy=found.start_energy,
            nearest_pixels=found.nearest_pixels,
            pixel_error=found.pixel_error,
            novelty=found.novelty,
            nearest_energy=found.nearest_energy,
            nearest_energy_value=found.nearest_energy_value,
        )
        write_payload(data, payload.key(), payload)
    header = read_header(generator_file(Path(settings.states)))
    extra = header.get("extra") or {}
    generator = (
        f"trained {extra.get('epochs', '?')} epochs on {extra.get('frames', '?')} frames; "
        f"held-out PSNR {float(extra.get('heldout_psnr', float('nan'))):.1f} dB, the agent's action kept on "
        f"{100 * float(extra.get('heldout_action_agreement', float('nan'))):.0f}% of reconstructions"
    )
    return StatesInfo(
        targets=tuple(
            StateTarget(name=target.name, title=target.title, trajectory=plan.played + k)
            for k, target in enumerate(targets)
        ),
        generator=generator,
        start=settings.state_start,
    )


def _write_method(data: Path, plan: Plan, cache: Cache, m: int, site: int, t: int) -> None:
    """One method's payloads for one site and trajectory, one per explained output: the scripts
    its attribution job made (:mod:`.payloads`), copied."""
    for key, text in load_scripts(cache, plan.attribution(m, site, t)).texts.items():
        write_script(data, key, text)


def _map_shape(plan: Plan, cache: Cache, m: int, agent: Agent) -> tuple[int, int] | None:
    """The size of a method's maps of the input when it is not the observation's (an attention mask)."""
    planned = plan.methods[m]
    if planned.method.info.produces != "map" or planned.layers:
        return None
    shape = cast("tuple[int, int]", load_scripts(cache, plan.attribution(m, INPUT_SITE, 0)).shape)
    return None if shape == tuple(agent.observation_shape[:2]) else shape


def _method_entry(planned: PlannedMethod, map_shape: tuple[int, int] | None = None) -> MethodEntry:
    info = planned.method.info
    return MethodEntry(
        map_shape=map_shape,
        name=info.name,
        title=info.title,
        citation=info.citation,
        summary=info.summary,
        produces=info.produces,
        signed=planned.method.signed,
        outputs=planned.outputs,
        layers=planned.layers,
        key_prefix=planned.key_prefix,
    )
