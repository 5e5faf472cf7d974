"""Read and check a ``.safetensors`` header ourselves, before the library maps the file.

The header (8 bytes of length, then a JSON index of dtype, shape and byte offsets per tensor)
is checked entry by entry: known dtypes, shapes whose byte size is the span of their offsets,
offsets inside the file, and totals within :mod:`~understanding_rl_vision.agents.limits`. A
file that passes holds exactly the bytes it declares, so loading it costs what it weighs.
"""

from __future__ import annotations

import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .limits import MAX_HEADER_BYTES, MAX_TENSORS, MAX_WEIGHT_BYTES, is_int, load_json

DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


@dataclass(frozen=True)
class Header:
    """A checked header: tensor name -> (dtype, shape), and the ``__metadata__`` strings."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]


def regular_file_size(path: Path, what: str = "checkpoint") -> int:
    """The size of ``path`` if it is a readable regular file; one error line otherwise (a FIFO
    would block the first read forever, a device could never end)."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"{what} not found: {path}") from None
    except OSError as exc:  # permission denied on a parent, a name too long...
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        try:
            inside = sorted(p.name for p in path.glob("*.safetensors"))[:3]
        except OSError:
            inside = []
        hint = f"; did you mean {', '.join(str(path / n) for n in inside)}?" if inside else ""
        raise CheckpointError(f"{what} path is a directory, not a file: {path}{hint}")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{what} is not a regular file (a pipe, socket or device): {path}")
    if info.st_size == 0:
        raise CheckpointError(f"{what} is empty (0 bytes): {path}")
    return info.st_size


def read_prefix(path: Path, count: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(count)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None


def declared_header_length(prefix: bytes) -> int:
    """The header length a safetensors file declares in its first 8 bytes (-1 if too short)."""
    return int.from_bytes(prefix[:8], "little") if len(prefix) >= 8 else -1


def read_header(path: Path, size: int, what: str) -> Header:
    """Parse and check the header of the safetensors file ``path`` (``size`` bytes)."""
    prefix = read_prefix(path, 9)
    length = declared_header_length(prefix)
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{what} declares a {length:,}-byte header, over the {MAX_HEADER_BYTES:,} this tool "
            f"reads (ours are a few KB): {path}"
        )
    if 8 + length > size:
        raise CheckpointError(f"checkpoint is truncated (header cut short, {size} bytes): {path}")
    try:
        with open(path, "rb") as handle:
            handle.seek(8)
            raw = handle.read(length)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    header = load_json(raw, f"the safetensors header of {path}", MAX_HEADER_BYTES)
    if not isinstance(header, dict):
        raise CheckpointError(f"corrupt safetensors header in {path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"corrupt safetensors header in {path}: __metadata__ is not an object of strings")
    if len(header) > MAX_TENSORS:
        raise CheckpointError(f"{what} lists {len(header):,} tensors, over the {MAX_TENSORS:,} this tool reads: {path}")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    end = total = 0
    for name, entry in header.items():
        dtype, shape, begin, stop = _entry(entry, name, path)
        tensors[name] = (dtype, shape)
        end, total = max(end, stop), total + stop - begin
    expected = 8 + length + end
    if size < expected:
        raise CheckpointError(f"checkpoint is truncated ({size} of {expected} bytes): {path}")
    if total > MAX_WEIGHT_BYTES:
        raise CheckpointError(
            f"{what} declares {total:,} bytes of weights, over the {MAX_WEIGHT_BYTES:,} this tool loads: {path}"
        )
    return Header(tensors, metadata)


def _entry(entry: Any, name: str, path: Path) -> tuple[str, tuple[int, ...], int, int]:
    """(dtype, shape, begin, end) of one header entry, each checked against the others."""

    def bad(reason: str) -> CheckpointError:
        return CheckpointError(f"corrupt safetensors header in {path}: tensor {name[:80]!r} {reason}")

    if not isinstance(entry, dict):
        raise bad("is not described by a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise bad(f"has an unknown dtype {str(dtype)[:20]!r}")
    if not isinstance(shape, list) or len(shape) > 8 or not all(is_int(d) and d >= 0 for d in shape):
        raise bad("has no valid shape (a list of at most 8 sizes)")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(is_int(o) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise bad("has no valid data_offsets")
    if math.prod(shape) * DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
        raise bad(f"of shape {tuple(shape)} does not fill its {offsets[1] - offsets[0]} bytes")
    return dtype, tuple(shape), offsets[0], offsets[1]
