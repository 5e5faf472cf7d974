"""One process or many MPI ranks, behind the same small interface.

Ranks share the work through the cache: a rank claims a job by creating its claim file (an
atomic ``O_EXCL`` create, so exactly one rank wins), runs it, and writes the product. Products are
files, so no rank's results travel through memory to be lost, and a rank that finishes early
takes the next job instead of waiting for a fixed share. Rank 0 writes the output once every
product exists. mpi4py is optional: without it, a run under ``mpiexec`` falls back to rank 0
doing all the work, and the other ranks say so and exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..agents.base import Agent
from ..common.files import left_by_dead_process
from ..errors import UserError
from .plan import Job

_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_LOCALRANKID")
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
POLL_SECONDS = 0.2


class RankError(UserError):
    """A failure inside one rank's job: that rank reports it (the others only stop)."""


class OtherRankFailed(UserError):
    """Another rank failed; this one stops (rank 0 repeats that rank's message)."""


def launched_size() -> int:
    """How many ranks the launcher started, from its environment (1 when not under mpiexec)."""
    for name in _SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def launched_rank() -> int:
    for name in _RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


class Workers:
    """This process's place among the ranks: ``rank``, ``size``, barrier and broadcast."""

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1

    @classmethod
    def detect(cls) -> Workers:
        """MPI's world when mpi4py is installed and we run under a launcher, else one process."""
        if launched_size() <= 1:
            return cls()
        try:
            from mpi4py import MPI
        except ImportError:
            return cls()
        return cls(MPI.COMM_WORLD)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    def broadcast(self, value: Any) -> Any:
        return self.comm.bcast(value, root=0) if self.comm is not None else value

    def local_size(self) -> int:
        """Ranks on this machine, which share its cores."""
        if self.comm is None:
            return 1
        from mpi4py import MPI

        return int(self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size())


class Claims:
    """Claim files of one run in ``directory`` (created by rank 0, removed at the end)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def open(cls, cache_dir: Path, workers: Workers) -> Claims:
        """A new claims folder; rank 0's process id in its name lets a later run remove the
        folders of runs that were killed (those still running keep theirs)."""
        name = workers.broadcast(f".claims-{os.getpid()}-{uuid.uuid4().hex[:12]}" if workers.is_root else None)
        directory = cache_dir / name
        if workers.is_root:
            for stale in cache_dir.glob(".claims-*-*"):
                if left_by_dead_process(stale.name.split("-")[1]):
                    shutil.rmtree(stale, ignore_errors=True)
            directory.mkdir(parents=True)
        workers.barrier()
        return cls(directory)

    def claim(self, job: Job) -> bool:
        try:
            os.close(os.open(self.directory / job.name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

    def fail(self, rank: int, message: str) -> None:
        """Tell the other ranks to stop waiting: this rank cannot go on."""
        with contextlib.suppress(OSError):
            (self.directory / f"failed-{rank}").write_text(message)

    def failure(self) -> str | None:
        for path in self.directory.glob("failed-*"):
            return path.read_text() or "another rank failed"
        return None

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def run_jobs(
    jobs: Iterable[Job],
    exists: Callable[[str], bool],
    run: Callable[[Job], None],
    claims: Claims,
    on_progress: Callable[[Job], None] = lambda job: None,
) -> None:
    """Run every job whose product does not exist yet, claiming each; a job starts once the
    products it needs exist. Jobs are tried in the given order (most expensive first).

    Returns when every product exists, made by this rank or another. Raises UserError with a
    failed rank's message, so no rank waits forever for work that will not come.
    """
    pending = list(jobs)
    while pending:
        progressed = False
        for job in list(pending):
            if exists(job.name):
                pending.remove(job)
                on_progress(job)
                progressed = True
            elif all(exists(need) for need in job.needs) and claims.claim(job):
                run(job)
                pending.remove(job)
                on_progress(job)
                progressed = True
                break  # look again from the top: the costliest ready job goes first
        if pending and not progressed:
            message = claims.failure()
            if message is not None:
                raise OtherRankFailed(message)
            time.sleep(POLL_SECONDS)


def lanes_per_process(agent: Agent, workers: Workers) -> int:
    """How many lanes (threads with their own model copy) each process runs: its share of the
    cores. Agents we did not build (custom forwards, TorchScript) and agents off the CPU get
    one: they may share state a copy would not."""
    if agent.architecture is None or agent.forward is not None or agent.device.type != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // workers.local_size())


def note_fallback(workers: Workers) -> bool:
    """Under mpiexec without mpi4py: rank 0 says it works alone; other ranks say so and should exit.

    Returns True when this process should do nothing more.
    """
    size = launched_size()
    if workers.comm is not None or size <= 1:
        return False
    if launched_rank() == 0:
        print(
            f"note: launched with {size} MPI ranks but mpi4py is not installed "
            "(pip install 'understanding-rl-vision[mpi]'); running in one process",
            file=sys.stderr,
        )
        return False
    return True
