"""The estimate: what a run holds at its peak, every process on this machine together, and
what it adds to the cache and the output folder."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from ...agents.base import Agent
from ...config import RunConfig
from ...rollout import observation_parts
from ..plan import Plan
from .shapes import Shapes, shapes_of
from .sizes import Part, _Sizes, _total

BASELINE_BYTES = 1_200_000_000
"""One process before any job: Python, torch, scikit-learn, the environment library (procgen
alone maps about 400 MB), the model, thread stacks. A small real run peaks at about 1.0 GB."""
ALLOCATOR_FACTOR = (5, 4)
"""Resident memory over the arrays a job holds, 5/4: freed blocks the allocator keeps, short-lived
temporaries not counted one by one (measured runs peaked 0.8x to 1.0x of the unscaled figure).
Fractions of integers, so that no size is ever too large for a float."""


@dataclass(frozen=True)
class Estimate:
    peak_memory_bytes: int
    """Resident memory at the run's peak, every process on this machine together."""
    cache_bytes: int
    """What the missing products add to the cache."""
    output_bytes: int
    """The output folder."""
    memory_parts: tuple[Part, ...]
    """The terms of the peak that grow with the settings, largest first (a refusal names the
    first and searches the settings of each)."""
    cache_parts: tuple[Part, ...]
    output_parts: tuple[Part, ...]

    @property
    def memory_part(self) -> Part:
        return self.memory_parts[0]

    @property
    def cache_part(self) -> Part:
        return self.cache_parts[0]

    @property
    def output_part(self) -> Part:
        return self.output_parts[0]


def estimate(agent: Agent, plan: Plan | RunConfig, lanes: int = 1, processes: int = 1,
             cached: Collection[str] = (), *, shapes: Shapes | None = None) -> Estimate:  # fmt: skip
    """What ``plan`` (or a config, planned as :func:`..plan.make_plan` would) needs, run by
    ``processes`` ranks on this machine with ``lanes`` lanes each; ``cached`` names products
    already in the cache (only a plan's job names mean anything there)."""
    shapes = shapes or shapes_of(agent, plan)
    config = plan.config if isinstance(plan, Plan) else plan
    missing = _missing_jobs(plan, cached) if isinstance(plan, Plan) and cached else None
    return _estimate(shapes, config, max(1, lanes), max(1, processes), missing)


def _missing_jobs(plan: Plan, cached: Collection[str]) -> dict[str, object]:
    """Which products still have to be computed: kinds, and for attribution the per-layer counts."""
    jobs = [job for job in plan.jobs if job.name not in cached]
    return {
        "trajectories": any(job.kind == "trajectories" for job in jobs),
        "observations": sum(job.kind == "observations" for job in jobs),
        "fit": {job.layer for job in jobs if job.kind == "fit"},
        "attribution": Counter((job.method, job.layer) for job in jobs if job.kind == "attribution"),
    }


def _estimate(s: Shapes, config: RunConfig, lanes: int, processes: int, missing: dict | None) -> Estimate:
    c = _Sizes(s, config)
    jobs: list[tuple[list[Part], int]] = []  # (a job's peak stage, how many such jobs)
    parts = observation_parts(config.observation_set)
    if missing is None or missing["trajectories"]:
        jobs.append((c.trajectories_job(), 1))
    count = parts if missing is None else missing["observations"]
    if count:
        jobs.append((c.observation_part_job(), count))
    for index, layer in enumerate(s.layers):
        if missing is None or index in missing["fit"]:
            jobs.append((c.fit_job(layer), 1))
    for m, method in enumerate(s.methods):
        for site in method.sites:
            count = config.trajectories.num_envs if missing is None else missing["attribution"][m, site]
            if count:
                jobs.append((c.attribution_job(method, site), count))
    slots = lanes * processes  # jobs that can run at once on this machine
    running: list[list[Part]] = []
    for stage, count in sorted(jobs, key=lambda job: -_total(job[0])):
        running += [stage] * min(count, slots - len(running))
        if len(running) >= slots:
            break
    fixed = Part(processes * (BASELINE_BYTES + lanes * s.model_bytes), "the program itself")  # a model per lane
    compute = [fixed, *(_scaled(part) for stage in running for part in stage)]
    export = [fixed, *map(_scaled, c.export())]
    peak = max(compute, export, key=_total)
    cache, output = c.cache(missing), c.output()
    return Estimate(
        _total(peak), _total(cache), _total(output), _merged(peak[1:] or [fixed]), _merged(cache), _merged(output)
    )


def _scaled(part: Part) -> Part:
    return replace(part, bytes=part.bytes * ALLOCATOR_FACTOR[0] // ALLOCATOR_FACTOR[1])


def _merged(parts: Sequence[Part]) -> tuple[Part, ...]:
    """Equal terms added up (each lane's copy of the trajectories is one term, several times),
    largest first."""
    merged: dict[tuple[str, tuple[str, ...]], int] = {}
    for part in parts:
        merged[part.what, part.knobs] = merged.get((part.what, part.knobs), 0) + part.bytes
    found = [Part(size, what, knobs) for (what, knobs), size in merged.items()]
    return tuple(sorted(found, key=lambda p: -p.bytes)) or (Part(0, "nothing"),)
