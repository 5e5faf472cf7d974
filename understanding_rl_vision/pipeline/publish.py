"""The output folder's life: which folders a run may write, and the swap that puts a finished
output in place.

A run builds its output in a fresh hidden sibling and renames it into place, so an output never
looks complete before it is. ``--overwrite`` may replace only a folder that this tool wrote: every
output carries a record (:data:`RECORD`) that lists its files, and a folder holding anything else
is refused. The checks hold at the moment of the swap, not only at the start: the old folder is
first renamed aside (atomic), checked there, and put back if it is not the one the run was allowed
to replace. Removing an old output removes only the files its record lists.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..common.files import current_umask, left_by_dead_process
from ..errors import UserError

RECORD = ".understanding-rl-vision.json"
"""Written last into every output: which files this tool wrote there."""
TOOL = "understanding-rl-vision"
TRAINING_FILES = ("train_state.pt", "log.csv")
"""Files that mark a training run (see :mod:`..training.run_dir`)."""


@dataclass(frozen=True)
class Target:
    """An output folder a run may write, and what was there when the run was allowed to.

    ``seen`` identifies the record of the output present at the check (None: no folder, or an
    empty one), so the swap replaces that output and nothing that appeared later.
    """

    path: Path
    overwrite: bool
    seen: tuple[int, int, int] | None


def check_target(
    output_dir: Path, *, overwrite: bool, cache_dir: Path | None = None, checkpoint: Path | None = None
) -> Target:
    """Refuse, with one line naming the reason, any folder a run must not write or replace."""
    path = Path(os.path.abspath(output_dir))
    if path.is_symlink():
        raise UserError(f"output {path} is a symbolic link; give the folder it points to")
    if path.exists() and not path.is_dir():
        raise UserError(f"output {path} exists and is not a folder")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"output {path} cannot be made: {blocking} is a file")
    real = path.resolve()
    _refuse_protected(real, path)
    if path.parent.is_dir():
        remove_leftovers(path)
    cache = None if cache_dir is None else Path(cache_dir).absolute().resolve()
    if cache is not None and _within(cache, real):
        raise UserError(
            f"the cache folder {cache} is inside the output folder {path}, which every run replaces; "
            "choose a --cache-dir outside -o"
        )
    if cache is not None and _within(real, cache):
        raise UserError(f"the output folder {path} is inside the cache folder {cache}; choose another -o")
    if checkpoint is not None and _within(Path(checkpoint).absolute().resolve(), real):
        raise UserError(f"the output folder {path} holds the checkpoint {checkpoint}; choose another -o")
    if not path.is_dir() or not any(path.iterdir()):
        return Target(path, overwrite, None)
    if not overwrite:
        raise UserError(f"output folder {path} exists; pass --overwrite to replace an earlier output of this tool")
    return Target(path, overwrite, _stamp(check_ours(path)))


def publish(target: Target, write: Callable[[Path], object]) -> None:
    """Run ``write(folder)`` on a fresh hidden sibling and, only if it succeeds, put that folder
    in the target's place; the previous output survives any failure."""
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-{os.getpid()}-"))
    os.chmod(building, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide a hosted site from its server
    try:
        write(building)
        _write_record(building)
        _swap(building, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)  # everything in it is ours


def check_ours(folder: Path) -> Path:
    """The record of ``folder`` if it is an output of this tool holding nothing else; else one
    error naming what is foreign there."""
    record = folder / RECORD
    listed = _listed(record)
    foreign = sorted(set(_files(folder)) - (listed or set()) - {RECORD})
    if listed is None:
        training = [name for name in TRAINING_FILES if (folder / name).exists()]
        what = f"a training run ({', '.join(training)})" if training else _some(foreign)
        raise UserError(
            f"{folder} holds {what} and was not written by this tool; it is never replaced "
            "(remove it yourself or choose another -o)"
        )
    if foreign:
        raise UserError(
            f"{folder} holds {_some(foreign)} that this tool did not write; it is not replaced "
            "(move them out or choose another -o)"
        )
    return record


def remove_output(folder: Path) -> bool:
    """Remove the files ``folder``'s record lists, then its folders if empty. True if it is gone."""
    record = folder / RECORD
    for name in _listed(record) or ():
        with contextlib.suppress(OSError):  # gone already, or no longer a file: left as it is
            (folder / name).unlink()
    record.unlink(missing_ok=True)
    for parent, _, _ in os.walk(folder, topdown=False):  # deepest first
        _rmdir_if_empty(Path(parent))
    return not folder.exists()


def remove_leftovers(path: Path) -> None:
    """Folders an earlier run left beside ``path`` when it was killed (SIGKILL, power loss):
    its half-built output is removed, and an old output it had moved aside is put back (or, if
    ``path`` has been written since, removed as an output of ours)."""
    for leftover in sorted(path.parent.glob(f".{path.name}.partial-*-*")):
        if left_by_dead_process(_pid(leftover)):
            shutil.rmtree(leftover, ignore_errors=True)
    for leftover in sorted(path.parent.glob(f".{path.name}.old-*-*")):
        if not left_by_dead_process(_pid(leftover)):
            continue
        try:
            os.rename(leftover, path)  # only if ``path`` is missing or empty
        except OSError:
            try:
                check_ours(leftover)
            except UserError:
                continue  # not provably ours: never deleted
            remove_output(leftover)


def _swap(building: Path, target: Target) -> None:
    path = target.path
    try:
        os.rename(building, path)  # succeeds only where nothing is, or an empty folder
        return
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise UserError(f"output {path} appeared during the run and is not a folder") from None
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if target.seen is None:
        raise UserError(
            f"output folder {path} appeared during the run and was left as it is; the work is "
            "cached: rerun (with --overwrite if it is an earlier output of this tool)"
        )
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-{os.getpid()}-"))
    os.rmdir(old)
    os.rename(path, old)  # whatever is there now, taken aside in one step
    try:
        if _stamp(check_ours(old)) != target.seen:
            raise UserError(
                f"output folder {path} was replaced by another run during this one and was left "
                "as it is; the work is cached: rerun to replace it"
            )
        os.rename(building, path)
    except BaseException:
        _put_back(old, path)
        raise
    if not remove_output(old):
        print(f"note: left {old}: files appeared in the old output while it was being replaced", file=sys.stderr)


def _put_back(old: Path, path: Path) -> None:
    try:
        os.rename(old, path)
    except OSError:
        raise UserError(f"{path} changed during the run; what was there before is now in {old}") from None


def _write_record(folder: Path) -> None:
    text = json.dumps({"written_by": TOOL, "version": __version__, "files": sorted(_files(folder))}, indent=1)
    (folder / RECORD).write_text(text + "\n", encoding="utf-8")


def _files(folder: Path) -> list[str]:
    """Every entry but folders under ``folder``, relative; symbolic links are not followed."""
    found = []
    for parent, directories, files in os.walk(folder):
        links = [d for d in directories if os.path.islink(os.path.join(parent, d))]
        found += [os.path.relpath(os.path.join(parent, name), folder) for name in files + links]
    return found


def _listed(record: Path) -> frozenset[str] | None:
    """The files a record lists; None if there is no readable record of ours."""
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) and data.get("written_by") == TOOL else None
    if not isinstance(files, list) or not all(isinstance(f, str) and ".." not in Path(f).parts for f in files):
        return None
    return frozenset(files)


def _stamp(record: Path) -> tuple[int, int, int]:
    """Which record this is: a later run's record is a new file (new inode and time)."""
    info = record.stat()
    return info.st_dev, info.st_ino, info.st_mtime_ns


def _refuse_protected(real: Path, given: Path) -> None:
    if real.parent == real or os.path.ismount(real):
        raise UserError(f"output folder {given} is the root of a filesystem; choose a folder of its own for -o")
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if _within(cwd, real):
        what = "the working directory" if cwd == real else f"the working directory {cwd}"
        raise UserError(f"output folder {given} is or holds {what}; choose a folder of its own for -o")
    if _within(home, real):
        raise UserError(f"output folder {given} is or holds the home folder; choose a folder of its own for -o")


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} file(s) ({shown})" if names else "no record of this tool"


def _pid(leftover: Path) -> str:
    """The process id in ``.<name>.partial-<pid>-<random>`` (and ``.old-``)."""
    return leftover.name.rsplit("-", 2)[-2]


def _rmdir_if_empty(directory: Path) -> bool:
    try:
        directory.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
