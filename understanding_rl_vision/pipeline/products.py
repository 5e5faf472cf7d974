"""What each job stores in the cache, one typed class per product: the array layout of a product
is written here and nowhere else. Every class turns itself into named arrays (:meth:`to_arrays`,
what :meth:`~.cache.Cache.save` writes) and back (:meth:`from_arrays`).

Attribution jobs store the page's payload scripts themselves (:mod:`.payloads`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..feature_vis.dataset_examples import FeatureImages, Popup, Thumbnail

Arrays = dict[str, np.ndarray | np.generic]


@dataclass(frozen=True)
class LayerFit:
    """A layer's NMF basis (K features x C channels) and each feature's dataset examples."""

    components: np.ndarray
    features: list[FeatureImages]

    def to_arrays(self) -> Arrays:
        arrays: Arrays = {"components": self.components}
        for k, feature in enumerate(self.features):
            thumb = feature.thumbnail
            arrays |= {
                f"{k}/thumbnail": thumb.image,
                f"{k}/thumbnail_indices": thumb.indices,
                f"{k}/thumbnail_positions": thumb.positions,
            }
            for i, popup in enumerate(feature.popups):
                arrays |= {f"{k}/{i}/{f.name}": np.asarray(getattr(popup, f.name)) for f in dataclasses.fields(popup)}
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> LayerFit:
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
        return cls(components, features)


STATE_FIELDS = (
    "observations",
    "logits",
    "values",
    "energy",
    "start_energy",
    "nearest_pixels",
    "pixel_error",
    "novelty",
    "nearest_energy",
    "nearest_energy_value",
)


@dataclass(frozen=True)
class TargetStates:
    """One target's generated states (N of them) and how they relate to the observation set."""

    observations: np.ndarray  # (N, H, W, C) uint8
    logits: np.ndarray  # (N, A) the agent's on them
    values: np.ndarray  # (N,)
    energy: np.ndarray  # (N,) the target's energy
    start_energy: np.ndarray  # (N,) where the optimisation started
    nearest_pixels: np.ndarray  # (N,) observation-set index nearest in pixels
    pixel_error: np.ndarray  # (N,) its mean squared error
    novelty: np.ndarray  # (N,) share of pixels differing from it by more than a quarter of the range
    nearest_energy: np.ndarray  # (N,) observation-set index nearest in energy
    nearest_energy_value: np.ndarray  # (N,) its energy


@dataclass(frozen=True)
class StatesProduct:
    """The states of interest: one :class:`TargetStates` per target, in the plan's order."""

    targets: tuple[TargetStates, ...]

    def to_arrays(self) -> Arrays:
        return {f"{k}/{name}": getattr(t, name) for k, t in enumerate(self.targets) for name in STATE_FIELDS}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> StatesProduct:
        count = sum(1 for key in arrays if key.endswith("/observations"))
        return cls(tuple(TargetStates(**{n: arrays[f"{k}/{n}"] for n in STATE_FIELDS}) for k in range(count)))
