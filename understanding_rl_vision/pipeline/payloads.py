"""One attribution job's payloads, made where the job runs.

An attribution job's product is the finished scripts of its payloads (``data/<key>.js``), not
arrays to encode later: quantising, deflating and base85 run in every lane beside the other jobs
instead of in rank 0's export after them, and the cache holds what the output holds, no more.
Export copies the bytes (:func:`~.output.write_output`).

Maps are quantised by :func:`~..contract.codec.display_step`: within 2% of the scale the page draws
them at, a coarser grid than a payload's maximum gives when a few values stand far above the rest
(docs/benchmarks.md, issue 20).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..attribution.methods import TREE_FIELDS
from ..contract import AttributionPayload, MapPayload, TreePayload
from ..contract.codec import display_step
from ..contract.writer import script_text
from ..reduction import FeatureMaps
from .plan import Job, Plan
from .products import Arrays


@dataclass(frozen=True)
class Scripts:
    """An attribution job's product: its payload scripts by key, and the maps' (h, w) (the
    manifest's map shape of the input; () for a tree)."""

    texts: Mapping[str, bytes]
    shape: tuple[int, ...] = ()

    def to_arrays(self) -> Arrays:
        arrays: Arrays = {"shape": np.asarray(self.shape, np.int64)}
        arrays |= {f"script/{key}": np.frombuffer(text, np.uint8) for key, text in self.texts.items()}
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Scripts:
        texts = {name.removeprefix("script/"): array.tobytes() for name, array in arrays.items() if name != "shape"}
        return cls(texts, tuple(int(n) for n in arrays["shape"]))


def _shared_step(positive: np.ndarray, negative: np.ndarray) -> dict[str, float]:
    """One quantisation step for both parts of a map, as the page draws them on one scale."""
    step = display_step(positive, negative)
    return {"positive": step, "negative": step}


def channel_scripts(plan: Plan, job: Job, maps: Sequence[FeatureMaps], memory: np.ndarray | None) -> Scripts:
    """A ``channels`` method's payloads: each output's attribution in the layer's NMF features."""
    planned = plan.methods[job.method]
    texts = {}
    for i, (o, part) in enumerate(zip(planned.outputs, maps)):
        payload = AttributionPayload(
            layer=job.layer,
            trajectory=job.trajectory,
            output=o,
            positive=part.positive,
            negative=part.negative,
            residual=part.residual,
            totals=part.totals,
            residual_totals=part.residual_totals,
            display_scale=part.scale,
            key_prefix=planned.key_prefix,
            memory_totals=None if memory is None else memory[i],
        )
        texts[payload.key()] = script_text(payload, _shared_step(part.positive, part.negative))
    return Scripts(texts, tuple(maps[0].positive.shape[2:]) if maps else ())


def map_scripts(plan: Plan, job: Job, values: np.ndarray) -> Scripts:
    """A ``map`` method's payloads from its (K, N, h, w) maps: positive and negative parts."""
    planned = plan.methods[job.method]
    texts = {}
    for o, v in zip(planned.outputs, np.asarray(values, np.float32)):
        positive, negative = np.maximum(v, 0.0), np.maximum(-v, 0.0)
        payload = MapPayload(
            method=job.method,
            site=job.layer,
            trajectory=job.trajectory,
            output=o,
            key_prefix=planned.key_prefix,
            positive=positive,
            negative=negative,
            totals=v.sum(axis=(1, 2), dtype=np.float64).astype(np.float32),
        )
        texts[payload.key()] = script_text(payload, _shared_step(positive, negative))
    return Scripts(texts, tuple(values.shape[2:]))


def tree_scripts(plan: Plan, job: Job, trees: Sequence[np.ndarray], levels: tuple[str, ...]) -> Scripts:
    """A ``tree`` method's payloads: each output's (N, T, fields) nodes."""
    planned = plan.methods[job.method]
    texts = {}
    for o, nodes in zip(planned.outputs, trees):
        column = {name: nodes[..., i] for i, name in enumerate(TREE_FIELDS)}
        tree = TreePayload(
            method=job.method,
            trajectory=job.trajectory,
            output=o,
            key_prefix=planned.key_prefix,
            levels=levels,
            parent=column["parent"].astype(np.int16),
            level=column["level"].astype(np.uint8),
            y=column["y"].astype(np.int16),
            x=column["x"].astype(np.int16),
            contribution=column["contribution"].astype(np.float32),
            valid=column["valid"].astype(np.uint8),
            boxes=nodes[..., TREE_FIELDS.index("top") :].astype(np.float32),
        )
        texts[tree.key()] = script_text(tree)
    return Scripts(texts)
