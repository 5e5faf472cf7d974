"""Files: written so that a crash never leaves a half-written one behind, hashed, and resume
states read back without unpickling."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError, first_line


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def left_by_dead_process(pid: str) -> bool:
    """Whether a leftover whose name carries ``pid`` (as text) was left by a process that is gone.
    A name without a process id is never judged dead: it may not be ours."""
    return pid.isdigit() and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (leftovers of dead ones may be removed)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """A temporary path beside ``path`` that replaces it in one step if the block succeeds.

    The data is fsynced before the rename, and the file gets the usual permissions (0666 less
    the umask) rather than ``mkstemp``'s private 0600. On any error the temporary file is removed
    and ``path`` is left as it was; an ``OSError`` without a file name (a full disk) gets
    ``path``'s. The temporary name carries the process id, so a later run can tell a killed
    process's leftover (:func:`remove_stale_temporaries`) from a file still being written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None or exc.filename == tmp:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> int:
    """Remove :func:`atomic_path` temporaries in ``directory`` whose process is gone; their count."""
    removed = 0
    for leftover in Path(directory).glob(".*.*.tmp"):
        pid = leftover.name.rsplit(".", 3)[-3] if leftover.name.count(".") >= 4 else ""
        if left_by_dead_process(pid):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (the checkpoint), read in 1 MiB blocks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def load_resume_state(path: Path, what: str) -> Any:
    """A resume state saved with ``torch.save`` (tensors and plain values, read with
    ``weights_only=True``, so never unpickling code); a missing or unreadable file is one line."""
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} does not exist; train without --resume first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign: one line, not a traceback
        raise UserError(f"cannot read the {what} {path}: {first_line(exc)}") from None
