"""Zip archives and ``torch.save`` files, opened with every declared size checked first.

Stable-Baselines3 zips, ``torch.save`` files and TorchScript modules are all zip archives, and a
zip entry declares the size it inflates to: a 2 MB entry can declare (or, lying, hold) 2 GiB.
Every entry is checked against a cap and a compression ratio before anything is read, entries
are read through a bounded reader, and the pickle of a legacy (non-zip) ``torch.save`` file is
scanned, never run, for the storage sizes it declares; every pickle's opcodes are counted
first, since the unpickler turns each into a Python object. ``torch.load`` then runs with
``weights_only=True``, and its refusals become our own message: never torch's advice to load
with ``weights_only=False``.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, cast

import torch

from ...errors import CheckpointError, first_line
from ..limits import (
    BOMB_MIN_BYTES,
    MAX_COMPRESSION_RATIO,
    MAX_PICKLE_BYTES,
    MAX_PICKLE_OPS,
    MAX_WEIGHT_BYTES,
    MAX_ZIP_ENTRIES,
)

_CHUNK = 1 << 20
_INT_OPCODES = {"INT", "LONG", "BININT", "BININT1", "BININT2", "LONG1", "LONG4"}
_STORAGE_BYTES = {
    "Double": 8,
    "Long": 8,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
    "Float": 4,
    "Int": 4,
    "Half": 2,
    "BFloat16": 2,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
}


def open_zip(
    source: Path | bytes, what: str, total_cap: int | None = MAX_WEIGHT_BYTES + MAX_PICKLE_BYTES
) -> zipfile.ZipFile:
    """The archive, once its entry count, declared sizes and compression ratios are plausible."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise CheckpointError(f"corrupt zip file {what}: {first_line(exc)}") from None  # (an unknown zip version)
    try:
        check_entries(archive, what, total_cap)
    except CheckpointError:
        archive.close()
        raise
    return archive


def check_entries(
    archive: zipfile.ZipFile, what: str, total_cap: int | None = MAX_WEIGHT_BYTES + MAX_PICKLE_BYTES
) -> None:
    """Refuse zip bombs (an entry inflating far more than weights do) and, for archives that are
    read whole (``total_cap``), more inflated bytes than any agent has."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise CheckpointError(f"{what} holds {len(infos):,} zip entries, over the {MAX_ZIP_ENTRIES:,} this tool reads")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > BOMB_MIN_BYTES and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
            raise CheckpointError(
                f"{what} is a zip bomb: its entry {info.filename[:80]!r} inflates {info.compress_size:,} bytes to "
                f"{info.file_size:,}; real checkpoints do not compress {MAX_COMPRESSION_RATIO}x"
            )
        if total_cap is not None and total > total_cap:
            raise CheckpointError(f"{what} declares {total:,} bytes inflated, over the {total_cap:,} this tool reads")


def read_entry(archive: zipfile.ZipFile, name: str, cap: int, what: str) -> bytes:
    """One entry, read in chunks and refused as soon as it passes ``cap`` or its declared size
    (an entry whose data inflates past what its header says)."""
    try:
        info = archive.getinfo(name)
        if info.file_size > cap:
            raise CheckpointError(
                f"{name} in {what} declares {info.file_size:,} bytes, over the {cap:,} this tool reads"
            )
        limit = min(cap, info.file_size)
        chunks, size = [], 0
        with archive.open(info) as entry:
            while chunk := entry.read(min(_CHUNK, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise CheckpointError(f"{name} in {what} inflates past its declared {info.file_size:,} bytes")
        return b"".join(chunks)
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        ValueError,
        EOFError,
        KeyError,
        NotImplementedError,
        RuntimeError,
    ) as exc:  # RuntimeError: an encrypted entry; NotImplementedError: an unknown method
        raise CheckpointError(f"corrupt zip file {what}: {name}: {first_line(exc)}") from None


def load_torch(source: Path | bytes, what: str, prefix: str) -> Any:
    """``torch.load(weights_only=True)`` of a file or bytes, after the zip or legacy pickle is
    checked; every failure is one :class:`CheckpointError` opening with ``prefix``."""
    head = source[:4] if isinstance(source, bytes) else _head(source)
    if head.startswith(b"PK\x03\x04"):
        with open_zip(source, what) as archive:  # torch checks each storage against its entry's size
            for info in archive.infolist():
                if info.filename.endswith(".pkl"):
                    _scan_pickles(read_entry(archive, info.filename, MAX_PICKLE_BYTES, what), prefix, 1)
    elif head[:1] == b"\x80":
        _check_legacy(source if isinstance(source, bytes) else _read_all(source), prefix)
    else:
        raise CheckpointError(f"{prefix}: not a torch.save file")
    try:
        return torch.load(
            io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu", weights_only=True
        )
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{prefix}: {_refusal(str(exc))}") from None
    except Exception as exc:  # torch's reader raises RuntimeError and others; keep it to one line
        reason = first_line(exc)
        if "weights_only" in str(exc) or "Weights only" in reason:
            reason = _refusal(str(exc))
        raise CheckpointError(f"{prefix}: {reason}") from None


def _refusal(message: str) -> str:
    """Why the weights-only unpickler stopped, without its advice to unpickle anyway."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if found:
        return f"it holds pickled Python objects ({found.group(1)}), which this tool never loads"
    detail = message.split("WeightsUnpickler error:", 1)[1].strip() if "WeightsUnpickler error:" in message else ""
    detail = detail.splitlines()[0].strip() if detail else "not tensors in plain containers"
    return f"its pickle is damaged or holds objects this tool never loads ({detail[:120]})"


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None


def _read_all(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_WEIGHT_BYTES + MAX_PICKLE_BYTES:
            raise CheckpointError(f"{path} is over the {MAX_WEIGHT_BYTES + MAX_PICKLE_BYTES:,} bytes this tool loads")
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None


def _scan_pickles(data: bytes, prefix: str, count: int) -> int:
    """Read ``count`` pickles opcode by opcode, never executing them: refuse more opcodes than a
    state dict needs (each can become a Python object for the unpickler), and return the bytes
    of the storages they declare as ``('storage', <type>, key, location, numel, ...)``."""
    stream, declared, ops = io.BytesIO(data), 0, 0
    try:
        for _ in range(count):
            pending: str | None = None  # the storage type once 'storage' has been seen
            for opcode, arg, _ in pickletools.genops(stream):
                ops += 1
                if ops > MAX_PICKLE_OPS:
                    raise CheckpointError(
                        f"{prefix}: its pickle holds over {MAX_PICKLE_OPS:,} operations; a state "
                        "dict needs about 20 a tensor"
                    )
                if arg == "storage" and opcode.name.endswith("UNICODE"):
                    pending = "?"
                elif pending == "?" and opcode.name == "GLOBAL" and isinstance(arg, str):
                    pending = arg.rsplit(" ", 1)[-1].removesuffix("Storage")
                elif pending and opcode.name in _INT_OPCODES:
                    declared += max(int(cast(int, arg)), 0) * _STORAGE_BYTES.get(pending, 8)  # an int opcode
                    pending = None
    except (ValueError, EOFError, OverflowError) as exc:
        raise CheckpointError(f"{prefix}: its pickle is damaged ({first_line(exc)})") from None
    return declared


def _check_legacy(data: bytes, prefix: str) -> None:
    """A legacy ``torch.save`` file is five pickles then the raw storages, which torch allocates
    at the sizes the fourth pickle declares before it reads them: those must fit in the file."""
    declared = _scan_pickles(data, prefix, 4)  # magic number, protocol, system info, the object
    if declared > len(data):
        raise CheckpointError(f"{prefix}: it declares {declared:,} bytes of tensors in a {len(data):,}-byte file")
