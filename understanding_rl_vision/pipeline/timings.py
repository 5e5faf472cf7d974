"""How long each job of a run took, kept beside its products: what a scheduler needs to predict
how the run would scale to more ranks (``benchmarks/makespan.py``), measured rather than guessed.

Each process appends one JSON line per job it computed (and rank 0 one for the export) to its own
``timings-<rank>.jsonl`` in the cache folder, so ranks never write the same file. A job found in the
cache took no time and writes nothing. A line names the run's plan (a digest of its job names), so
the runs that share a cache folder can be told apart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import digest
from .plan import Job, Plan

EXPORT = "export"
"""The ``kind`` of the export's line: rank 0 writes the output after every job is done."""


@dataclass(frozen=True)
class Timing:
    """One job as it ran."""

    plan: str  # :func:`plan_digest` of the run's plan
    name: str  # the job's product name (or "export")
    kind: str
    order: int  # its index in the plan's job list: the order lanes try jobs in
    needs: tuple[str, ...]
    seconds: float
    rank: int
    lane: str  # the thread that ran it
    finished: float  # time.time() at its end


def plan_digest(plan: Plan) -> str:
    return digest([job.name for job in plan.jobs])


class TimingLog:
    """Appends this process's lines; safe to share between its lanes."""

    def __init__(self, directory: Path, plan: Plan, rank: int) -> None:
        self.path = directory / f"timings-{rank}.jsonl"
        self.plan, self.rank = plan_digest(plan), rank
        self.order = {job.name: i for i, job in enumerate(plan.jobs)}
        self._lock = threading.Lock()

    @contextmanager
    def timing(self, job: Job | None) -> Iterator[None]:
        """Time the block, and append its line if it finishes (``job`` None: the export)."""
        started = time.perf_counter()
        yield
        line = Timing(
            plan=self.plan,
            name=job.name if job else EXPORT,
            kind=job.kind if job else EXPORT,
            order=self.order[job.name] if job else len(self.order),
            needs=job.needs if job else (),
            seconds=time.perf_counter() - started,
            rank=self.rank,
            lane=threading.current_thread().name,
            finished=time.time(),
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(line)) + "\n")


def read_timings(directory: Path, plan: str | None = None) -> list[Timing]:
    """Every line under ``directory`` (a checkpoint's cache folder), of ``plan`` or else of the plan
    whose last line is newest, one per job; a line cut short by a killed process is skipped."""
    lines = []
    for path in sorted(directory.glob("timings-*.jsonl")):
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(text)
                lines.append(Timing(**{**record, "needs": tuple(record["needs"])}))
            except (ValueError, TypeError):
                continue
    if plan is None and lines:
        plan = max(lines, key=lambda t: t.finished).plan
    newest = {t.name: t for t in sorted(lines, key=lambda t: t.finished) if t.plan == plan}
    return sorted(newest.values(), key=lambda t: t.finished)  # a job computed again: its last time


@dataclass(frozen=True)
class Schedule:
    """A run's jobs replayed on ``workers`` single-core lanes, as :func:`..parallel.run_jobs` schedules
    them: each free lane takes the first job, in plan order, whose products are made."""

    workers: int
    jobs_seconds: float  # until the last job ends
    export_seconds: float  # then rank 0 writes the output alone
    busy: float  # the share of the lanes' time spent in jobs until the last one ends

    @property
    def makespan(self) -> float:
        return self.jobs_seconds + self.export_seconds


def simulate(timings: list[Timing], workers: int) -> Schedule:
    """Replay measured jobs on ``workers`` lanes. Products a run found in its cache (needed, but
    never timed) are taken as present from the start."""
    jobs = sorted((t for t in timings if t.kind != EXPORT), key=lambda t: t.order)
    export = sum(t.seconds for t in timings if t.kind == EXPORT)
    timed = {t.name for t in jobs}
    done: set[str] = set()
    running: list[tuple[float, str]] = []  # (end, name)
    now, pending = 0.0, list(jobs)
    while pending or running:
        while len(running) < workers:
            ready = next((t for t in pending if all(n in done or n not in timed for n in t.needs)), None)
            if ready is None:
                break
            pending.remove(ready)
            running.append((now + ready.seconds, ready.name))
        if not running:
            raise ValueError("the timed jobs need each other in a cycle")
        running.sort()
        now, name = running.pop(0)
        done.add(name)
    work = sum(t.seconds for t in jobs)
    return Schedule(workers, now, export, work / (workers * now) if now else 1.0)


def critical_path(timings: list[Timing]) -> list[Timing]:
    """The chain of timed jobs, each needing the one before, with the largest total time: no number
    of lanes finishes the jobs sooner."""
    jobs = {t.name: t for t in timings if t.kind != EXPORT}
    longest: dict[str, tuple[float, list[Timing]]] = {}

    def chain(name: str) -> tuple[float, list[Timing]]:
        if name not in longest:
            job = jobs[name]
            before = max((chain(n) for n in job.needs if n in jobs), default=(0.0, []), key=lambda c: c[0])
            longest[name] = (before[0] + job.seconds, [*before[1], job])
        return longest[name]

    return max((chain(name) for name in jobs), default=(0.0, []), key=lambda c: c[0])[1]
