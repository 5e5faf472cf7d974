"""What each job stores in the cache, one typed class per product: the array layout of a product
is written here and nowhere else. Every class turns itself into named arrays (:meth:`to_arrays`,
what :meth:`~.cache.Cache.save` writes) and back (:meth:`from_arrays`).

Attribution is stored quantised exactly as the page will receive it (:mod:`..contract.codec`), so
the cache costs what the output costs and export only re-encodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..contract.codec import dequantise, quantise
from ..feature_vis.dataset_examples import FeatureImages, Popup, Thumbnail
from ..reduction import FeatureMaps

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


_CHANNEL_PARTS = {"positive": "uint8", "negative": "uint8", "residual": "int8"}


@dataclass(frozen=True)
class ChannelProduct:
    """A ``channels`` method over one trajectory at one layer: per explained output, its
    attribution in the layer's NMF features (quantised and back, as the page will see it)."""

    maps: tuple[FeatureMaps, ...]
    memory: np.ndarray | None = None
    """(K, N) float32: a recurrent agent's attribution to its incoming state per output and frame
    (the "memory" entry of methods that attribute to it); None otherwise."""

    def to_arrays(self) -> Arrays:
        arrays: Arrays = {} if self.memory is None else {"memory": np.asarray(self.memory, np.float32)}
        for o, maps in enumerate(self.maps):
            for name, dtype in _CHANNEL_PARTS.items():
                stored, scale = quantise(getattr(maps, name), dtype)
                arrays[f"{o}/{name}"], arrays[f"{o}/{name}_scale"] = stored, np.float64(scale)
            arrays[f"{o}/totals"], arrays[f"{o}/residual_totals"] = maps.totals, maps.residual_totals
            arrays[f"{o}/scale"] = np.float64(maps.scale)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ChannelProduct:
        count = sum(1 for key in arrays if key.endswith("/totals"))
        return cls(
            tuple(
                FeatureMaps(
                    **{n: dequantise(arrays[f"{o}/{n}"], float(arrays[f"{o}/{n}_scale"])) for n in _CHANNEL_PARTS},
                    totals=arrays[f"{o}/totals"],
                    residual_totals=arrays[f"{o}/residual_totals"],
                    scale=float(arrays[f"{o}/scale"]),
                )
                for o in range(count)
            ),
            memory=arrays.get("memory"),
        )


@dataclass(frozen=True)
class HeatMap:
    """One output's maps over a trajectory: non-negative ``positive`` and ``negative`` parts
    (N, h, w) float32 (as computed, or as read back after quantisation), and unquantised ``totals``
    (N,) of positive - negative."""

    positive: np.ndarray
    negative: np.ndarray
    totals: np.ndarray


@dataclass(frozen=True)
class MapProduct:
    """A ``map`` method over one trajectory at one site (a layer or the input): a heat map per
    explained output, each part quantised to uint8 with its own scale."""

    maps: tuple[HeatMap, ...]

    @classmethod
    def from_values(cls, values: np.ndarray) -> MapProduct:
        """From (K, N, h, w) float maps."""
        return cls(
            tuple(
                HeatMap(
                    np.maximum(v, 0.0), np.maximum(-v, 0.0), v.sum(axis=(1, 2), dtype=np.float64).astype(np.float32)
                )
                for v in np.asarray(values, np.float32)
            )
        )

    def to_arrays(self) -> Arrays:
        arrays: Arrays = {}
        for o, heat in enumerate(self.maps):
            for name in ("positive", "negative"):
                stored, scale = quantise(getattr(heat, name), "uint8")
                arrays[f"{o}/{name}"], arrays[f"{o}/{name}_scale"] = stored, np.float64(scale)
            arrays[f"{o}/totals"] = heat.totals
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> MapProduct:
        count = sum(1 for key in arrays if key.endswith("/totals"))
        return cls(
            tuple(
                HeatMap(
                    positive=dequantise(arrays[f"{o}/positive"], float(arrays[f"{o}/positive_scale"])),
                    negative=dequantise(arrays[f"{o}/negative"], float(arrays[f"{o}/negative_scale"])),
                    totals=arrays[f"{o}/totals"],
                )
                for o in range(count)
            )
        )


@dataclass(frozen=True)
class TreeProduct:
    """A ``tree`` method over one trajectory: per explained output, (N, T, F) nodes with the fields
    of :data:`~..attribution.methods.TREE_FIELDS`, and the layer of each level, top first."""

    trees: tuple[np.ndarray, ...]
    levels: tuple[str, ...]

    def to_arrays(self) -> Arrays:
        arrays: Arrays = {f"{o}/nodes": np.asarray(nodes, np.float32) for o, nodes in enumerate(self.trees)}
        arrays["levels"] = np.array(self.levels, dtype=np.str_)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> TreeProduct:
        count = sum(1 for key in arrays if key.endswith("/nodes"))
        return cls(tuple(arrays[f"{o}/nodes"] for o in range(count)), tuple(str(v) for v in arrays["levels"]))


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
