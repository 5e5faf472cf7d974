"""What each job computes, and how its product is stored in and read back from the cache.

* ``trajectories`` / ``observations``: the rollouts (:mod:`..rollout`).
* ``fit``: the layer's value attribution on the observation set, its NMF (:mod:`..reduction`)
  and the dataset examples of each feature (:mod:`..feature_vis`).
* ``attribution``: every explained output over one trajectory at one layer, in NMF features,
  stored quantised exactly as the page will receive it (:mod:`..contract.codec`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import attribution
from ..agents.base import Agent
from ..attribution import INPUT_CHUNK, INPUT_LAYER, ExplainedModel, Layer, capture
from ..config import RunConfig
from ..contract.codec import dequantise, quantise
from ..errors import UserError
from ..feature_vis import feature_images
from ..feature_vis.dataset_examples import FeatureImages, Popup, Thumbnail
from ..reduction import ChannelReducer, FeatureMaps
from ..rollout import Trajectories, collect_observation_set, collect_trajectories
from .cache import Cache
from .plan import Job, Plan

# ------------------------------------------------------------------------------------ rollouts


def run_trajectories(agent: Agent, plan: Plan, cache: Cache, progress: bool) -> None:
    found = collect_trajectories(
        agent, plan.config.trajectories, env_spec=plan.env, seed=plan.config.seed, progress=progress
    )
    _check_finite(found.values, "value", found.logits, "logits")
    cache.save(plan.trajectories.name, dataclasses.asdict(found))


def load_trajectories(cache: Cache, plan: Plan) -> Trajectories:
    return Trajectories(**cache.load(plan.trajectories.name))


def run_observations(agent: Agent, plan: Plan, cache: Cache, job: Job, progress: bool) -> None:
    found = collect_observation_set(
        agent, plan.config.observation_set, env_spec=plan.env, seed=plan.config.seed, progress=progress, part=job.part
    )
    cache.save(job.name, {"observations": found})


def load_observations(cache: Cache, plan: Plan) -> np.ndarray:
    return np.concatenate([cache.load(job.name)["observations"] for job in plan.observations])


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
    explained: ExplainedModel, inputs: torch.Tensor, layer: Layer, outputs: Sequence[str], config: RunConfig
) -> torch.Tensor:
    """(K, N, C, H, W) attribution of ``outputs`` at ``layer``, with the run's settings."""
    values = attribution.attribute(
        explained, inputs, layer, list(outputs), steps=config.attribution.ig_steps, rule=config.attribution.ig_rule
    ).values
    _check_finite(values.numpy(), "attribution")
    return values


def activations(agent: Agent, explained: ExplainedModel, inputs: torch.Tensor, layer: Layer) -> torch.Tensor:
    """The layer's activations on ``inputs`` (for the input layer: the preprocessed input)."""
    if layer.name == INPUT_LAYER:
        return inputs.float().cpu()
    parts = []
    with capture(agent.model, [layer.name]) as captured, torch.no_grad():
        for chunk in inputs.split(INPUT_CHUNK):
            explained.forward(chunk)
            parts.append(captured[layer.name].float().cpu())
    return torch.cat(parts)


# ------------------------------------------------------------------------------------ layer fits


@dataclass(frozen=True)
class LayerFit:
    components: np.ndarray  # (K, C)
    features: list[FeatureImages]


def run_fit(agent: Agent, explained: ExplainedModel, plan: Plan, cache: Cache, job: Job) -> None:
    layer = plan.layers[job.layer]
    observations = load_observations(cache, plan)
    inputs = agent.preprocess(observations)
    value = attribute(explained, inputs, layer, ["value"], plan.config)[0]
    reducer = ChannelReducer(plan.config.reduction).fit(value)
    images = feature_images(
        observations, activations(agent, explained, inputs, layer), reducer.components, plan.config.feature_vis
    )
    arrays = {"components": reducer.components}
    for k, feature in enumerate(images):
        thumb = feature.thumbnail
        arrays |= {
            f"{k}/thumbnail": thumb.image,
            f"{k}/thumbnail_indices": thumb.indices,
            f"{k}/thumbnail_positions": thumb.positions,
        }
        for i, popup in enumerate(feature.popups):
            arrays |= {
                f"{k}/{i}/{field.name}": np.asarray(getattr(popup, field.name)) for field in dataclasses.fields(popup)
            }
    cache.save(job.name, arrays)


def load_fit(cache: Cache, job: Job) -> LayerFit:
    arrays = cache.load(job.name)
    components = arrays["components"]
    features = []
    for k in range(len(components)):
        thumbnail = Thumbnail(
            arrays[f"{k}/thumbnail"], arrays[f"{k}/thumbnail_indices"], arrays[f"{k}/thumbnail_positions"]
        )
        popups, i = [], 0
        while f"{k}/{i}/image" in arrays:
            values: dict[str, Any] = {f.name: arrays[f"{k}/{i}/{f.name}"] for f in dataclasses.fields(Popup)}
            values["expand_mult"] = int(values["expand_mult"])
            values["subdiv_mult"] = float(values["subdiv_mult"])
            popups.append(Popup(**values))
            i += 1
        features.append(FeatureImages(thumbnail, tuple(popups)))
    return LayerFit(components, features)


# ------------------------------------------------------------------------------------ attribution jobs

_QUANTISED = {"positive": "uint8", "negative": "uint8", "residual": "int8"}


def run_attribution(
    agent: Agent,
    explained: ExplainedModel,
    plan: Plan,
    cache: Cache,
    job: Job,
    trajectories: Trajectories,
    components: np.ndarray,
) -> None:
    """Every output's attribution over one trajectory, transformed into the layer's features."""
    layer = plan.layers[job.layer]
    inputs = agent.preprocess(trajectories.observations[job.trajectory])
    values = attribute(explained, inputs, layer, plan.outputs, plan.config)
    reducer = ChannelReducer.from_components(components, plan.config.reduction)
    arrays: dict[str, np.ndarray | np.generic] = {}
    for o in range(len(plan.outputs)):
        maps = reducer.transform(values[o])
        for name, dtype in _QUANTISED.items():
            stored, scale = quantise(getattr(maps, name), dtype)
            arrays[f"{o}/{name}"], arrays[f"{o}/{name}_scale"] = stored, np.float64(scale)
        arrays[f"{o}/totals"], arrays[f"{o}/residual_totals"] = maps.totals, maps.residual_totals
        arrays[f"{o}/scale"] = np.float64(maps.scale)
    cache.save(job.name, arrays)


def load_attribution(cache: Cache, job: Job, num_outputs: int) -> list[FeatureMaps]:
    arrays = cache.load(job.name)
    return [
        FeatureMaps(
            **{name: dequantise(arrays[f"{o}/{name}"], float(arrays[f"{o}/{name}_scale"])) for name in _QUANTISED},
            totals=arrays[f"{o}/totals"],
            residual_totals=arrays[f"{o}/residual_totals"],
            scale=float(arrays[f"{o}/scale"]),
        )
        for o in range(num_outputs)
    ]
