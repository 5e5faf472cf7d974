"""Arrays and payloads to JSON and back: quantise, deflate, base85; PNG encoding.

Array bytes travel as base85 text (RFC 1924's alphabet, as :func:`base64.b85encode` writes it:
5 characters per 4 bytes, a last group of n bytes in n + 1), 6 % smaller than base64's 4/3, and
its alphabet needs no escaping in JSON or in a script. Each decoding step here is one the page
does in JavaScript (base85, ``DecompressionStream``
("deflate"), a typed array over the bytes, ``* scale``), so the Python reader is a faithful
model of the page. Dequantisation multiplies in float64 and rounds to float32, exactly as JS
does when it stores ``q * scale`` into a ``Float32Array``.
"""

from __future__ import annotations

import base64
import io
import math
import types
import typing
import zlib
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any, Literal, TypedDict

import numpy as np
from PIL import Image

from ..errors import UserError
from .schema import DTYPES, ArraySpec, ImageRef, array_spec, is_optional

Compression = Literal["none", "deflate"]
DEFLATE_LEVEL = 6
"""zlib level: 9 saves under 2% more on attribution maps and takes several times longer."""


class EncodedArray(TypedDict):
    """An array on the wire (see :mod:`.schema`)."""

    dtype: str
    shape: list[int]
    scale: float
    compression: Compression
    data: str  # base85 (RFC 1924 alphabet)


def _qmax(dtype: str) -> int:
    return int(np.iinfo(np.dtype(dtype)).max)


def quantise(values: np.ndarray, dtype: str, step: float | None = None) -> tuple[np.ndarray, float]:
    """Integers ``q`` and ``scale`` with ``|q * scale - values| <= scale / 2``.

    ``scale = max|values| / qmax`` (symmetric for signed dtypes, so int8 uses -127..127 and the
    sign of every value at least ``scale / 2`` in size survives). All zeros give scale 0.
    A positive ``step`` (see :func:`display_step`) is the scale instead, coarser or finer: values
    beyond ``qmax * step`` are then clipped to it.
    """
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("cannot quantise NaN or infinite values")
    signed = np.issubdtype(np.dtype(dtype), np.signedinteger)
    if not signed and (x < 0).any():
        raise ValueError(f"{dtype} quantisation needs non-negative values")
    peak = float(np.abs(x).max()) if x.size else 0.0
    qmax = _qmax(dtype)
    if peak == 0.0:
        return np.zeros(x.shape, dtype), 0.0
    scale = float(step) if step is not None and step > 0 else peak / qmax
    q = np.clip(np.rint(x / scale), -qmax if signed else 0, qmax)
    return q.astype(dtype), scale


DISPLAY_PERCENTILE = 99.0
"""The page draws full colour at this percentile of a payload's nonzero values (svelte/src/lib/levels.js)."""
DISPLAY_ERROR = 0.02
"""Largest quantisation error of a map payload, as a fraction of its display scale (issue 20)."""


def display_step(*parts: np.ndarray) -> float:
    """The quantisation step that keeps every value of ``parts`` within :data:`DISPLAY_ERROR` of the
    display scale (the :data:`DISPLAY_PERCENTILE` of their nonzero magnitudes, as the page computes
    it), but for values over 255 steps (about 10x the display scale), which clip: 0 if all are 0.

    A step of twice the allowed error is the coarsest whose rounding stays within it; coarser
    levels carry fewer bits for deflate, finer ones only noise the eye cannot see at that scale.
    """
    magnitudes = np.concatenate([np.abs(np.asarray(part, np.float32)).ravel() for part in parts])
    nonzero = magnitudes[magnitudes > 0]
    if not nonzero.size:
        return 0.0
    return 2 * DISPLAY_ERROR * float(np.percentile(nonzero, DISPLAY_PERCENTILE))


def dequantise(q: np.ndarray, scale: float) -> np.ndarray:
    """float32 ``q * scale``, computed as the page computes it."""
    return (np.asarray(q, np.float64) * scale).astype(np.float32)


def deflate(raw: bytes, quantised: bool = False) -> bytes:
    """zlib stream (RFC 1950), the format of ``DecompressionStream("deflate")``.

    ``quantised`` maps are coded the cheaper of two ways. Attribution in NMF features is noise-like:
    its levels repeat only by chance, so coding each byte by its frequency alone (Huffman only) is
    17% smaller than level 6 and 12x faster (1a of the CoinRun agent: 665 KB in 15 ms against 801 KB
    in 190 ms per 2 MB), within 1.25x of the levels' zeroth-order entropy. Smooth maps (Grad-CAM,
    perturbation) repeat whole runs, which level 6 finds: 83 KB against Huffman's 286 KB per 1 MB of
    perturbation maps, in 16 ms. A level-1 pass (fast on both) tells which kind a map is."""
    if not quantised:
        return zlib.compress(raw, DEFLATE_LEVEL)
    packer = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_HUFFMAN_ONLY)
    huffman = packer.compress(raw) + packer.flush()
    if len(zlib.compress(raw, 1)) >= len(huffman):
        return huffman
    return min(huffman, zlib.compress(raw, DEFLATE_LEVEL), key=len)


def inflate(data: bytes) -> bytes:
    return zlib.decompress(data)


_B85 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~", np.uint8)


def b85encode(data: bytes) -> str:
    """``base64.b85encode(data)`` (no padding), vectorised: the stdlib's is pure Python, 3.6x
    slower (0.22 s vs 0.06 s per 3 MB), which made exporting the demo's 21 outputs take minutes."""
    tail = len(data) % 4
    padded = np.frombuffer(data + b"\0" * (-len(data) % 4), ">u4").astype(np.uint64)
    digits = np.empty((len(padded), 5), np.uint8)
    for i in range(4, -1, -1):
        padded, digits[:, i] = np.divmod(padded, 85)
    text = _B85[digits].tobytes()
    return (text[: len(text) - (4 - tail)] if tail else text).decode("ascii")


def encode_array(values: np.ndarray, spec: ArraySpec, step: float | None = None) -> EncodedArray:
    """Quantise if the spec says so (by ``step`` where given, see :func:`quantise`), deflate where
    that is smaller, base85."""
    if spec.quantised:
        stored, scale = quantise(values, spec.stored, step)
    else:
        stored, scale = np.asarray(values).astype(spec.stored), 1.0
    raw = np.ascontiguousarray(stored, dtype=np.dtype(spec.stored).newbyteorder("<")).tobytes()
    packed = deflate(raw, quantised=spec.quantised)
    compression: Compression = "deflate" if len(packed) < len(raw) else "none"
    return {
        "dtype": spec.stored,
        "shape": [int(n) for n in stored.shape],
        "scale": float(scale),
        "compression": compression,
        "data": b85encode(packed if compression == "deflate" else raw),
    }


def decode_stored(obj: Mapping[str, Any]) -> tuple[np.ndarray, float]:
    """The stored integers (or floats) and the scale: base85-decode, inflate, view."""
    if not isinstance(obj, Mapping) or set(obj) != set(EncodedArray.__annotations__):
        raise UserError(f"not an encoded array: {_brief(obj)}")
    dtype, shape, scale = obj["dtype"], obj["shape"], obj["scale"]
    if dtype not in DTYPES or obj["compression"] not in ("none", "deflate"):
        raise UserError(f"unknown dtype or compression in {_brief(obj)}")
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise UserError(f"bad shape {shape!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
        raise UserError(f"bad scale {scale!r}")
    try:
        data = base64.b85decode(obj["data"])
        if obj["compression"] == "deflate":
            data = inflate(data)
    except (ValueError, TypeError, zlib.error) as exc:
        raise UserError(f"corrupt array data ({exc})") from None
    wire = np.dtype(dtype).newbyteorder("<")
    if len(data) != math.prod(shape) * wire.itemsize:
        raise UserError(f"array data has {len(data)} bytes, shape {shape} of {dtype} needs more")
    return np.frombuffer(data, wire).reshape(shape).astype(dtype), float(scale)


def decode_array(obj: Mapping[str, Any], spec: ArraySpec) -> np.ndarray:
    """The array the page works with: floats dequantised, flags as bool."""
    stored, scale = decode_stored(obj)
    if obj["dtype"] != spec.stored or stored.ndim != len(spec.dims):
        raise UserError(f"expected {spec.stored} with dims {spec.dims}, got {_brief(obj)}")
    if spec.quantised:
        return dequantise(stored, scale)
    if spec.logical == "bool":
        return stored != 0
    return stored.astype(spec.logical)


def _brief(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return repr({k: v for k, v in obj.items() if k != "data"})[:200]
    return repr(obj)[:200]


# ---------------------------------------------------------------------------- payloads


def to_json(record: Any, steps: Mapping[str, float] | None = None) -> Any:
    """A payload dataclass as JSON-ready data, arrays encoded; ``kind`` added at top level.
    ``steps`` name the quantisation step of some of its quantised arrays (:func:`quantise`)."""
    if is_dataclass(record):
        out: dict[str, Any] = {}
        kind = getattr(type(record), "KIND", None)
        if kind is not None:
            out["kind"] = kind
        for f in fields(record):
            spec, value = array_spec(f), getattr(record, f.name)
            if is_optional(f) and (value is None if spec else value == f.default):
                continue  # absent means the default (see schema._optional, schema._optional_array)
            out[f.name] = encode_array(value, spec, (steps or {}).get(f.name)) if spec else to_json(value)
        return out
    if isinstance(record, Mapping):
        return {str(k): to_json(v) for k, v in record.items()}
    if isinstance(record, (tuple, list)):
        return [to_json(v) for v in record]
    if isinstance(record, np.generic):
        record = record.item()
    if isinstance(record, float) and not math.isfinite(record):
        raise ValueError(f"JSON cannot hold {record}")
    return record


def from_json(cls: type, obj: Any) -> Any:
    """Rebuild ``cls`` from :func:`to_json` output; wrong types or fields raise UserError."""
    try:
        return _convert(cls, obj, cls.__name__)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid {cls.__name__} payload: {exc}") from None


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, typing.NewType):
        return _convert(hint.__supertype__, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: expected an object, got {_brief(value)}")
        expected = {f.name for f in fields(hint) if not is_optional(f) or f.name in value}
        kind = getattr(hint, "KIND", None)
        keys = set(value) - ({"kind"} if kind is not None else set())
        if kind is not None and value.get("kind") != kind:
            raise TypeError(f"{where}: kind is {value.get('kind')!r}, expected {kind!r}")
        if keys != expected:
            raise TypeError(f"{where}: fields {sorted(keys ^ expected)} missing or unknown")
        kwargs = {}
        for f in fields(hint):
            if f.name not in value:
                continue  # an optional field left out: its default
            spec = array_spec(f)
            sub = f"{where}.{f.name}"
            kwargs[f.name] = (
                decode_array(value[f.name], spec)
                if spec
                else _convert(_hints(typing.cast(type, hint))[f.name], value[f.name], sub)
            )
        return typing.cast(type, hint)(**kwargs)  # a hint is the class, never an instance
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {args}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list, got {_brief(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is Mapping or hint is Mapping:
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: expected an object, got {_brief(value)}")
        return {k: _convert(args[1], v, f"{where}[{k!r}]") for k, v in value.items()}
    if hint is float and type(value) in (int, float):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise TypeError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {_brief(value)}")


# ---------------------------------------------------------------------------- images


def _image(image: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"images are uint8 (H, W, 3|4), got {array.dtype} {array.shape}")
    return array


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG of an RGB or RGBA uint8 image."""
    buffer = io.BytesIO()
    Image.fromarray(_image(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("RGB", "RGBA"):
            return np.asarray(image.convert("RGBA"))
        return np.asarray(image)


def png_data_url(image: np.ndarray) -> ImageRef:
    """An inline image reference, for pictures too small to deserve a file."""
    data = base64.b64encode(encode_png(image)).decode("ascii")
    return ImageRef(f"data:image/png;base64,{data}")


def sprite_layout(
    count: int, height: int, width: int, per_sheet: int | None = None, max_side: int = 4096
) -> tuple[int, int]:
    """(per_sheet, columns): as many images as fit in a ``max_side`` square, laid out squarish."""
    fit = max(1, max_side // width) * max(1, max_side // height)
    per_sheet = max(1, min(count, fit, per_sheet or count))
    columns = min(max(1, max_side // width), math.ceil(math.sqrt(per_sheet * height / width)))
    return per_sheet, max(1, min(columns, per_sheet))


def pack_sprites(images: np.ndarray, per_sheet: int, columns: int) -> list[np.ndarray]:
    """Sheets holding ``images`` (N, H, W, C) row-major, ``per_sheet`` each; spare cells black."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (3, 4):
        raise ValueError(f"sprites are uint8 (N, H, W, 3|4), got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    sheets = []
    for start in range(0, n, per_sheet):
        chunk = images[start : start + per_sheet]
        rows = -(-len(chunk) // columns)
        sheet = np.zeros((rows * columns, h, w, c), np.uint8)
        sheet[: len(chunk)] = chunk
        sheet = sheet.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4)
        sheets.append(sheet.reshape(rows * h, columns * w, c))
    return sheets
