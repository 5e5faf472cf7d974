"""Write the output folder from the cached products: the data contract's payloads
(:mod:`..contract`), then the page (:mod:`..render`). Nothing here computes attribution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

from ..advantages import discount_settings, find_bookmarks, gae
from ..agents.base import Agent
from ..config import RunConfig
from ..contract import (
    DATA_DIRNAME,
    AttributionPayload,
    FeatureInfo,
    LayerInfo,
    Manifest,
    bookmarks_from,
    write_feature,
    write_manifest,
    write_observations,
    write_payload,
    write_trajectory,
)
from ..reduction import feature_colours
from ..render import render_interface
from .cache import Cache
from .jobs import load_attribution, load_fit, load_observations, load_trajectories
from .plan import Plan


def write_output(
    directory: Path, agent: Agent, plan: Plan, cache: Cache, title: str, tick: Callable[[], None] = lambda: None
) -> Path:
    """Everything the page needs into ``directory``; returns the path of interface.html."""
    config: RunConfig = plan.config
    data = directory / DATA_DIRNAME
    data.mkdir(parents=True)
    trajectories = load_trajectories(cache, plan)
    layer_infos = []
    for index, layer in enumerate(plan.layers):
        fit = load_fit(cache, plan.fit(index))
        for f, feature in enumerate(fit.features):
            write_feature(data, index, f, thumbnail=feature.thumbnail.image, popups=feature.popups)
        for t in range(trajectories.num_envs):
            maps = load_attribution(cache, plan.attribution(index, t), len(plan.outputs))
            for o, m in enumerate(maps):
                write_payload(
                    data,
                    f"attr-{index}-{t}-{o}",
                    AttributionPayload(
                        layer=index,
                        trajectory=t,
                        output=o,
                        positive=m.positive,
                        negative=m.negative,
                        residual=m.residual,
                        totals=m.totals,
                        residual_totals=m.residual_totals,
                        display_scale=m.scale,
                    ),
                )
            tick()
        colours = feature_colours(len(fit.components))
        layer_infos.append(
            LayerInfo(
                name=layer.name,
                label=layer.label,
                shape=layer.shape,
                features=tuple(
                    FeatureInfo(name=f"feature {f + 1}", color=colours[f]) for f in range(len(fit.components))
                ),
            )
        )
    gamma, lam = discount_settings(config.advantage.gamma, config.advantage.lam, agent.gamma, agent.lam)
    advantages = gae(
        trajectories.rewards, trajectories.values, trajectories.dones, gamma, lam, trajectories.last_values
    )
    marks = find_bookmarks(advantages, trajectories.firsts, config.advantage.num_bookmarks)
    for t in range(trajectories.num_envs):
        write_trajectory(
            data,
            t,
            frames=trajectories.frames[t],
            rewards=trajectories.rewards[t],
            firsts=trajectories.firsts[t],
            actions=trajectories.actions[t],
            values=trajectories.values[t],
            logits=trajectories.logits[t],
            advantages=advantages[t],
        )
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
            trajectory_lengths=(trajectories.num_steps,) * trajectories.num_envs,
            observation_size=cast("tuple[int, int]", tuple(agent.observation_shape[:2])),
            fps=float(config.interface.fps),
            action_outputs=agent.action_outputs,
            bookmarks=bookmarks_from(marks),
            observations=write_observations(data, load_observations(cache, plan)),
        ),
    )
    return render_interface(directory, title=title, interface=config.interface)
