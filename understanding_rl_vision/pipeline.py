"""From an agent and its rollouts to ``interface.html`` and its data: the stages in order.

Per layer: NMF fitted on the value attribution of the observation set (``reduction``), dataset
examples of each feature (``features``), then every output's attribution over each trajectory
transformed into those features; all of it written through the data contract (``export``) and
wrapped in the page (``render``). The output directory appears only when complete: everything is
written into a sibling temporary directory that is renamed into place at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .advantages import find_bookmarks, gae
from .agents.base import Agent
from .attribution import Layer, capture, explain_agent, integrated_gradients
from .config import FeatureVisConfig, InterfaceConfig, ReductionConfig
from .export import (
    AttributionPayload,
    Bookmark,
    FeatureInfo,
    LayerInfo,
    Manifest,
    write_feature,
    write_manifest,
    write_observations,
    write_payload,
    write_trajectory,
)
from .features import feature_images
from .reduction import ChannelReducer, feature_colours
from .render import render_interface
from .rollout import Trajectories

ACTIVATION_BATCH = 512


def write_interface(
    agent: Agent,
    out_dir: str | os.PathLike[str],
    *,
    trajectories: Trajectories,
    observation_set: np.ndarray,
    layers: Sequence[Layer],
    default_layer: int,
    outputs: Sequence[str] | str = ("value", "logits", "groups"),
    reduction: ReductionConfig = ReductionConfig(),
    feature_vis: FeatureVisConfig = FeatureVisConfig(),
    interface: InterfaceConfig = InterfaceConfig(),
    num_bookmarks: int = 16,
    fps: float = 12.0,
    env_id: str = "",
    title: str = "",
) -> Path:
    """Compute and write everything the page shows; returns the path of ``interface.html``."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(building, 0o777 & ~umask)  # mkdtemp's 0700 would hide a hosted site from its server
    try:
        data = building / "data"
        data.mkdir()
        explained = explain_agent(agent)
        chosen = explained.outputs(outputs)
        obs_inputs = agent.preprocess(observation_set)
        layer_infos = [
            _write_layer(agent, explained, data, index, layer, chosen, trajectories,
                         observation_set, obs_inputs, reduction, feature_vis)
            for index, layer in enumerate(layers)
        ]  # fmt: skip
        advantages = gae(trajectories.rewards, trajectories.values, trajectories.dones,
                         agent.gamma, agent.lam, trajectories.last_values)  # fmt: skip
        marks = find_bookmarks(advantages, trajectories.firsts, num_bookmarks)
        for t in range(trajectories.num_envs):
            write_trajectory(data, t, frames=trajectories.frames[t], rewards=trajectories.rewards[t],
                             firsts=trajectories.firsts[t], actions=trajectories.actions[t],
                             values=trajectories.values[t], logits=trajectories.logits[t],
                             advantages=advantages[t])  # fmt: skip
        write_manifest(data, Manifest(
            env_id=env_id, agent=title, action_names=tuple(agent.action_names),
            action_groups={name: tuple(indices) for name, indices in agent.action_groups.items()},
            outputs=tuple(o.name for o in chosen), layers=tuple(layer_infos), default_layer=default_layer,
            trajectory_lengths=(trajectories.num_steps,) * trajectories.num_envs,
            observation_size=tuple(agent.observation_shape[:2]), fps=float(fps),
            bookmarks=tuple(Bookmark(kind=kind, trajectory=b.trajectory, frame=b.frame, advantage=b.advantage)
                            for kind, group in (("high", marks.high), ("low", marks.low)) for b in group),
            observations=write_observations(data, observation_set),
        ))  # fmt: skip
        render_interface(building, title=title or "understanding-rl-vision", interface=interface)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        building.rename(out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out_dir / "interface.html"


def _write_layer(agent, explained, data, index, layer, outputs, trajectories, observation_set,
                 obs_inputs, reduction, feature_vis) -> LayerInfo:  # fmt: skip
    """NMF, feature images and every output's transformed attribution for one layer."""
    value = integrated_gradients(explained, obs_inputs, layer.name, explained.outputs("value"))
    reducer = ChannelReducer(reduction).fit(value.values[0])
    with capture(agent.model, [layer.name]) as captured, torch.no_grad():
        activations = []
        for chunk in obs_inputs.split(ACTIVATION_BATCH):
            explained.forward(chunk)
            activations.append(captured[layer.name].float().cpu())
    images = feature_images(observation_set, torch.cat(activations), reducer.components, feature_vis)
    for f, feature in enumerate(images):
        write_feature(data, index, f, thumbnail=feature.thumbnail.image, popups=feature.popups)
    for t in range(trajectories.num_envs):
        attribution = integrated_gradients(explained, agent.preprocess(trajectories.observations[t]), layer.name, outputs)
        for o in range(len(outputs)):
            maps = reducer.transform(attribution.values[o])
            payload = AttributionPayload(
                layer=index, trajectory=t, output=o, positive=maps.positive, negative=maps.negative,
                residual=maps.residual, totals=maps.totals, residual_totals=maps.residual_totals,
                display_scale=maps.scale,
            )
            write_payload(data, payload.key(), payload)
    colours = feature_colours(reducer.num_features)
    return LayerInfo(name=layer.name, label=layer.label, shape=layer.shape, features=tuple(
        FeatureInfo(name=f"feature {f + 1}", color=colours[f]) for f in range(reducer.num_features)
    ))  # fmt: skip
