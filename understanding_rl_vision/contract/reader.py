"""Read payload scripts back, by the same steps the page takes.

Strip the ``window.__rlv_receive(`` wrapper, parse the key and the JSON object, then decode
each array (base64, inflate, dequantise). Used by tests and by anyone checking a build.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .codec import decode_png, from_json
from .schema import (
    MANIFEST_KEY,
    PAYLOAD_TYPES,
    RECEIVER,
    AttributionPayload,
    FeaturePayload,
    ImageRef,
    Manifest,
    MapPayload,
    Sprites,
    StatesPayload,
    TrajectoryPayload,
    TreePayload,
)
from .writer import check_key, payload_path

_PREFIX = f"window.{RECEIVER}("
_KINDS: dict[object, type] = {cls.KIND: cls for cls in PAYLOAD_TYPES}  # looked up by any JSON value


def parse_envelope(text: str) -> tuple[str, dict[str, Any]]:
    """(key, JSON object) of one payload script; anything else raises UserError."""
    if not text.startswith(_PREFIX):
        raise UserError(f"not a payload script: does not start with {_PREFIX!r}")
    decoder = json.JSONDecoder()
    try:
        key, end = decoder.raw_decode(text, len(_PREFIX))
        if text[end] != ",":
            raise ValueError("expected ',' after the key")
        obj, end = decoder.raw_decode(text, end + 1)
    except (ValueError, IndexError) as exc:
        raise UserError(f"malformed payload script: {exc}") from None
    if text[end:].rstrip() != ");" or not isinstance(key, str) or not isinstance(obj, dict):
        raise UserError("malformed payload script: expected one call with a key and an object")
    return key, obj


def read_raw(directory: str | os.PathLike[str], key: str) -> dict[str, Any]:
    """The payload's JSON object, arrays still encoded."""
    path = payload_path(directory, key)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"missing payload {path}") from None
    found, obj = parse_envelope(text)
    if found != key:
        raise UserError(f"{path} holds key {found!r}, not {key!r}")
    return obj


def read_payload(directory: str | os.PathLike[str], key: str) -> Any:
    """The payload dataclass stored under ``key``, arrays decoded as the page decodes them."""
    obj = read_raw(directory, check_key(key))
    cls = _KINDS.get(obj.get("kind"))
    if cls is None:
        raise UserError(f"payload {key!r} has unknown kind {obj.get('kind')!r}")
    payload = from_json(cls, obj)
    if payload.key() != key:
        raise UserError(f"payload under key {key!r} describes {payload.key()!r}")
    return payload


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    return read_payload(directory, MANIFEST_KEY)


def read_image(directory: str | os.PathLike[str], ref: ImageRef) -> np.ndarray:
    """Pixels of an image reference: a ``data:`` URL or a file name in ``directory``."""
    if ref.startswith("data:"):
        header, _, data = ref.partition(",")
        if header != "data:image/png;base64":
            raise UserError(f"unsupported image data URL {header!r}")
        return decode_png(base64.b64decode(data, validate=True))
    if not ref.endswith(".png"):
        raise UserError(f"image refs are .png files, got {ref!r}")
    return decode_png((Path(directory) / f"{check_key(ref[:-4])}.png").read_bytes())


def read_sprite(directory: str | os.PathLike[str], sprites: Sprites, index: int) -> np.ndarray:
    """Image ``index`` cut out of its sheet, as the page crops it."""
    sheet, x, y = sprites.locate(index)
    return read_image(directory, sheet)[y : y + sprites.height, x : x + sprites.width]


def read_sprites(directory: str | os.PathLike[str], sprites: Sprites) -> np.ndarray:
    """Every image of ``sprites`` as one (count, height, width, channels) array, each sheet decoded
    once and cut into its grid by a reshape (images fill a sheet row by row)."""
    h, w = sprites.height, sprites.width
    parts = []
    for number, ref in enumerate(sprites.sheets):
        sheet = read_image(directory, ref)
        rows, columns = sheet.shape[0] // h, sheet.shape[1] // w
        grid = sheet[: rows * h, : columns * w].reshape(rows, h, columns, w, -1).swapaxes(1, 2)
        held = min(sprites.per_sheet, sprites.count - number * sprites.per_sheet)
        parts.append(grid.reshape(rows * columns, h, w, -1)[:held])
    return np.concatenate(parts)


def check_against_manifest(manifest: Manifest, payload: Any) -> None:
    """UserError unless ``payload``'s indices and shapes agree with ``manifest``.

    The page trusts these (K = the layer's feature count, h x w = its map size, N = the
    trajectory's length); a build mixing runs would otherwise draw nonsense.
    """
    problems: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    if isinstance(payload, (TrajectoryPayload, AttributionPayload, MapPayload, TreePayload)):
        t = payload.trajectory
        need(t < len(manifest.trajectory_lengths), f"trajectory {t} is not in the manifest")
        if not problems:
            n = manifest.trajectory_lengths[t]
            frames = len(
                payload.rewards
                if isinstance(payload, TrajectoryPayload)
                else payload.parent
                if isinstance(payload, TreePayload)
                else payload.positive
            )
            need(frames == n, f"{frames} frames, the manifest says {n}")
    if isinstance(payload, TrajectoryPayload):
        actions = payload.logits.shape[1]
        need(actions == len(manifest.action_names), f"{actions} logits per frame")
    if isinstance(payload, (AttributionPayload, FeaturePayload)):
        need(payload.layer < len(manifest.layers), f"layer {payload.layer} is not in the manifest")
    if isinstance(payload, AttributionPayload) and not problems:
        layer = manifest.layers[payload.layer]
        k, h, w = payload.positive.shape[1:]
        need(payload.output < len(manifest.outputs), f"output {payload.output} is unknown")
        need(k == len(layer.features), f"{k} features, {layer.label} has {len(layer.features)}")
        need((h, w) == layer.shape[1:], f"maps are {h}x{w}, {layer.label} is {layer.shape}")
    if isinstance(payload, AttributionPayload) and not problems:
        channel_methods = [m for m in manifest.all_methods if m.key_prefix == payload.key_prefix]
        need(
            bool(channel_methods) and channel_methods[0].produces == "channels",
            f"no channels method has key prefix {payload.key_prefix!r}",
        )
    if isinstance(payload, MapPayload):
        methods = manifest.all_methods
        need(payload.method < len(methods), f"method {payload.method} is not in the manifest")
        need(payload.output < len(manifest.outputs), f"output {payload.output} is unknown")
        if not problems:
            method = methods[payload.method]
            need(method.produces == "map", f"{method.name} does not produce maps")
            need(method.key_prefix == payload.key_prefix, f"key prefix {payload.key_prefix!r} is not {method.name}'s")
            need(payload.output in method.outputs, f"{method.name} does not explain output {payload.output}")
            h, w = payload.positive.shape[1:]
            if payload.site == -1:
                need(not method.layers, f"{method.name} is computed at layers, not on the input")
                size = method.map_shape or manifest.observation_size
                need((h, w) == size, f"maps are {h}x{w}, {method.name}'s maps of the input are {size}")
            else:
                need(payload.site in method.layers, f"{method.name} was not computed at layer {payload.site}")
                if not problems:
                    layer = manifest.layers[payload.site]
                    need((h, w) == layer.shape[1:], f"maps are {h}x{w}, {layer.label} is {layer.shape}")
    if isinstance(payload, TreePayload):
        methods = manifest.all_methods
        need(payload.method < len(methods), f"method {payload.method} is not in the manifest")
        need(payload.output < len(manifest.outputs), f"output {payload.output} is unknown")
        if not problems:
            method = methods[payload.method]
            need(method.produces == "tree", f"{method.name} does not produce trees")
            need(method.key_prefix == payload.key_prefix, f"key prefix {payload.key_prefix!r} is not {method.name}'s")
            need(payload.output in method.outputs, f"{method.name} does not explain output {payload.output}")
            count = payload.parent.shape[1]
            need(bool(((payload.parent >= -1) & (payload.parent < count)).all()), "parents index past the tree")
            need(
                bool((payload.level < len(payload.levels)).all()), f"levels index past the {len(payload.levels)} levels"
            )
    if isinstance(payload, FeaturePayload) and not problems:
        count = len(manifest.layers[payload.layer].features)
        need(payload.feature < count, f"feature {payload.feature} of {count}")
        limit = manifest.observations.count if manifest.observations else 0
        need(
            all(p.grid.max(initial=-1) < limit for p in payload.popups),
            f"popup grids index past the {limit} observations",
        )
    if isinstance(payload, StatesPayload):
        targets = manifest.states.targets if manifest.states else ()
        need(payload.target < len(targets), f"target {payload.target} is not in the manifest's states")
        if not problems:
            n = manifest.trajectory_lengths[targets[payload.target].trajectory]
            need(len(payload.energy) == n, f"{len(payload.energy)} states, the target's trajectory has {n}")
            limit = manifest.observations.count if manifest.observations else 0
            nearest = np.concatenate([payload.nearest_pixels, payload.nearest_energy])
            inside = bool(((nearest >= 0) & (nearest < limit)).all())
            need(inside, f"nearest frames index past the {limit} observations")
    if problems:
        details = "; ".join(problems)
        raise UserError(f"payload {payload.key()} disagrees with the manifest: {details}")
