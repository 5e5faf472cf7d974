"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
