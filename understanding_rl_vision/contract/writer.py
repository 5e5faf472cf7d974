"""Write payload scripts and images into the data directory, each file atomically.

A crash leaves every file either old or new, never half-written. Multi-file payloads write
their images first and the ``.js`` last, so a script never names a missing image.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..common.files import atomic_path
from ..common.images import viewable
from ..errors import UserError
from .codec import encode_png, pack_sprites, sprite_layout, to_json
from .schema import (
    KEY_PATTERN,
    MANIFEST_KEY,
    OBS_PER_SHEET,
    PAYLOAD_TYPES,
    RECEIVER,
    FeaturePayload,
    ImageRef,
    Manifest,
    Popup,
    Sprites,
    TrajectoryPayload,
    feature_key,
    trajectory_key,
)

_KEY = re.compile(KEY_PATTERN)
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def check_key(key: str) -> str:
    """``key`` if it is a safe file stem (see KEY_PATTERN), else UserError."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or key.lower() in _RESERVED:
        raise UserError(f"invalid payload key {key!r}: use letters, digits, '-' and '_' only")
    return key


def payload_path(directory: str | os.PathLike[str], key: str) -> Path:
    return Path(directory) / f"{check_key(key)}.js"


def _opening(key: str) -> str:
    """What every payload script starts with: the receiver's call and the key."""
    return f"window.{RECEIVER}({json.dumps(check_key(key))},"


def envelope_chunks(key: str, payload: Any, steps: Mapping[str, float] | None = None) -> Iterable[str]:
    """The script text in pieces: ``window.__rlv_receive("<key>",{...});`` and a newline.
    ``steps``: quantisation steps of named arrays (:func:`~.codec.quantise`)."""
    yield _opening(key)
    yield from _encoder.iterencode(to_json(payload, steps))
    yield ");\n"


def script_text(payload: Any, steps: Mapping[str, float] | None = None) -> bytes:
    """``payload``'s whole script, as :func:`write_payload` writes it (ASCII bytes)."""
    if not isinstance(payload, PAYLOAD_TYPES):
        raise TypeError(f"not a payload: {type(payload).__name__}")
    return "".join(envelope_chunks(payload.key(), payload, steps)).encode("ascii")


def write_script(directory: str | os.PathLike[str], key: str, text: bytes) -> Path:
    """Write a script made by :func:`script_text` as ``<directory>/<key>.js``."""
    if not text.startswith(_opening(key).encode("ascii")):
        raise ValueError(f"the script is not the payload {key!r}")
    path = payload_path(directory, key)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(text)
    return path


def _write_text(path: Path, chunks: Iterable[str]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as handle:
        handle.writelines(chunks)
    return path


def write_payload(directory: str | os.PathLike[str], key: str, payload: Any) -> Path:
    """Write ``payload`` as ``<directory>/<key>.js``; the key must be the payload's own."""
    if not isinstance(payload, PAYLOAD_TYPES):
        raise TypeError(f"not a payload: {type(payload).__name__}")
    if check_key(key) != payload.key():
        raise ValueError(f"{type(payload).__name__} belongs under {payload.key()!r}, not {key!r}")
    return _write_text(payload_path(directory, key), envelope_chunks(key, payload))


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> Path:
    return write_payload(directory, MANIFEST_KEY, manifest)


def write_image(directory: str | os.PathLike[str], name: str, image: np.ndarray) -> ImageRef:
    """Write ``<directory>/<name>.png`` (``name`` follows the key rules); returns its ref."""
    path = Path(directory) / f"{check_key(name)}.png"
    data = encode_png(image)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return ImageRef(path.name)


def write_sprites(
    directory: str | os.PathLike[str], prefix: str, images: np.ndarray, per_sheet: int | None = None
) -> Sprites:
    """Pack (N, H, W, 3) uint8 images into sheets ``<prefix>-<s>.png``."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"sprites need (N >= 1, H, W, C) images, got {images.shape}")
    n, h, w = images.shape[:3]
    per_sheet, columns = sprite_layout(n, h, w, per_sheet)
    sheets = pack_sprites(images, per_sheet, columns)
    refs = tuple(write_image(directory, f"{prefix}-{s}", sheet) for s, sheet in enumerate(sheets))
    return Sprites(sheets=refs, count=n, height=h, width=w, columns=columns, per_sheet=per_sheet)


def write_observations(directory: str | os.PathLike[str], observations: np.ndarray) -> Sprites:
    """The observation set as small sheets ``obs-<s>.png``, so the page loads only what it shows
    (stacked frames as their newest frame: :func:`~..common.images.viewable`)."""
    return write_sprites(directory, "obs", viewable(observations), per_sheet=OBS_PER_SHEET)


def write_trajectory(
    directory: str | os.PathLike[str], trajectory: int, *, frames: np.ndarray, **arrays: np.ndarray
) -> TrajectoryPayload:
    """Frames as ``traj-<t>-<s>.png`` sheets, then ``traj-<t>.js``. ``arrays``: rewards,
    firsts, actions, values, logits, advantages, each with N rows."""
    key = trajectory_key(trajectory)
    sprites = write_sprites(directory, key, frames)
    payload = TrajectoryPayload(trajectory=trajectory, frames=sprites, **arrays)
    write_payload(directory, key, payload)
    return payload


class PopupImages(Protocol):
    """What :func:`write_feature` needs of one popup (``features.Popup`` has it), in observation
    pixels, so the interface draws patches without knowing how they were cut. Its members are
    read-only properties, so a frozen dataclass matches it."""

    @property
    def expand_mult(self) -> int: ...

    @property
    def subdiv_mult(self) -> float: ...

    @property
    def image(self) -> np.ndarray:
        """(Gy P_y, Gx P_x, 4) uint8 RGBA mosaic."""
        ...

    @property
    def index_grid(self) -> np.ndarray:
        """(Gy, Gx) observation index per cell, -1 if empty."""
        ...

    @property
    def tops(self) -> np.ndarray:
        """(Gy,) first observation row of each mosaic row's patch."""
        ...

    @property
    def lefts(self) -> np.ndarray:
        """(Gx,) first observation column of each mosaic column's patch."""
        ...

    @property
    def cell_size(self) -> tuple[int, int]:
        """(P_y, P_x): the observation pixels one patch covers."""
        ...


def write_feature(
    directory: str | os.PathLike[str],
    layer: int,
    feature: int,
    *,
    thumbnail: np.ndarray,
    popups: Sequence[PopupImages],
) -> FeaturePayload:
    """Thumbnail and popups (expand_mult, subdiv_mult, RGBA image, index grid) as PNGs, then
    ``feat-<l>-<f>.js``."""
    key = feature_key(layer, feature)
    payload = FeaturePayload(
        layer=layer,
        feature=feature,
        thumbnail=write_image(directory, f"{key}-thumb", thumbnail),
        popups=tuple(
            Popup(
                expand_mult=int(p.expand_mult),
                subdiv_mult=float(p.subdiv_mult),
                image=write_image(directory, f"{key}-p{i}", p.image),
                grid=p.index_grid,
                patch_height=int(p.cell_size[0]),
                patch_width=int(p.cell_size[1]),
                tops=p.tops,
                lefts=p.lefts,
            )
            for i, p in enumerate(popups)
        ),
    )
    write_payload(directory, key, payload)
    return payload
