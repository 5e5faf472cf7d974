"""The stages of one run, in order: plan, compute every missing product (on one process or
across MPI ranks), then export the output folder from the cache and swap it into place.

Every product is a cache file (:mod:`.cache`), so an interrupted run resumes where it stopped,
and the output folder appears only complete: it is built beside its final place and renamed.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from tqdm.auto import tqdm

from ..agents.base import Agent
from ..attribution import explain_agent
from ..common.device import one_thread
from ..config import RunConfig
from ..errors import UserError
from . import jobs
from .cache import Cache
from .output import write_output
from .parallel import Claims, OtherRankFailed, RankError, Workers, lanes_per_process, run_jobs
from .plan import Job, Plan, make_plan
from .publish import check_target, publish
from .resources import check_resources
from .timings import TimingLog

if TYPE_CHECKING:
    import numpy as np

    from ..rollout import Trajectories

LANE_PREFIX = "understanding-rl-vision-lane-"
INTERRUPT_WAIT_SECONDS = 0.5
"""How long Ctrl-C waits for the other lanes to finish their jobs before leaving them."""
STAGE_NAMES = {
    "trajectories": "rollouts",
    "observations": "rollouts",
    "states": "states of interest",
    "fit": "layer fits",
    "attribution": "attribution",
    "report": "report card",
    "ablation": "ablation",
}


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves; none of these change what it computes."""

    cache_dir: str | os.PathLike[str] | None = None
    """Where products are cached; None puts them beside the output, in ``<output>.cache``."""
    resample: bool = True
    """False only rebuilds the page from the cache, and fails if a product is missing."""
    overwrite: bool = False
    """Replace an earlier output of this tool (otherwise refuse an existing folder)."""
    checkpoint: Path | None = None
    """The checkpoint file, which the output folder must not hold."""
    progress: bool = True
    """Progress bars with ETAs on stderr (rank 0 only)."""


def default_cache_dir(output_dir: Path) -> Path:
    return output_dir.parent / f"{output_dir.name}.cache"


def run_pipeline(
    agent: Agent,
    checkpoint_digest: str,
    output_dir: str | os.PathLike[str],
    config: RunConfig,
    options: RunOptions = RunOptions(),
    *,
    title: str = "",
    workers: Workers | None = None,
) -> Path:
    """Compute what is missing and write ``output_dir``; returns its interface.html (every rank)."""
    workers = workers or Workers.detect()
    output_dir = Path(output_dir).absolute()
    cache_dir = Path(options.cache_dir or default_cache_dir(output_dir))
    target = check_target(output_dir, overwrite=options.overwrite, cache_dir=cache_dir, checkpoint=options.checkpoint)
    check_resources(agent, config, cache_dir, output_dir, checkpoint_digest=checkpoint_digest, workers=workers)
    plan = make_plan(agent, config, checkpoint_digest)
    cache = Cache(cache_dir, checkpoint_digest, workers.rank)
    if not options.resample:
        missing = [job for job in plan.jobs if not cache.has(job.name)]
        if missing:
            raise UserError(
                f"--no-resample: {len(missing)} of {len(plan.jobs)} products for this checkpoint and "
                f"config are not in the cache {cache.directory}; run once without --no-resample"
            )
    try:
        with one_thread():
            _compute(agent, plan, cache, workers, options.progress and workers.is_root)
        if workers.is_root:
            with TimingLog(cache.directory, plan, workers.rank).timing(None):
                publish(target, lambda building: _export(building, agent, plan, cache, title, options.progress))
        workers.barrier()
    except OSError as exc:  # disk full, permissions: one line, and the cache stays consistent
        where = f" {exc.filename}" if exc.filename else ""
        raise UserError(f"cannot write{where}: {exc.strerror or exc}") from None
    return output_dir / "interface.html"


def _compute(agent: Agent, plan: Plan, cache: Cache, workers: Workers, progress: bool) -> None:
    """Run the missing jobs on this rank's lanes: threads that each take the next ready job and
    compute it on one CPU thread, on their own copy of the model (hooks are per module)."""
    claims = Claims.open(cache.directory, workers)
    timings = TimingLog(cache.directory, plan, workers.rank)
    bars: dict[str, tqdm] = {}

    def bar(job: Job) -> tqdm:
        stage = STAGE_NAMES[job.kind]
        if stage not in bars:
            total = sum(STAGE_NAMES[j.kind] == stage for j in plan.jobs)
            bars[stage] = tqdm(total=total, desc=stage, unit="job", disable=not progress)
        return bars[stage]

    def tick(job: Job) -> None:
        stage = bar(job)
        stage.update()
        if stage.n >= stage.total:
            stage.close()

    failures: list[BaseException] = []

    def side_lane(copy: Agent) -> None:
        try:
            run_jobs(plan.jobs, cache.has, _runner(copy, plan, cache, timings, progress=False), claims)
        except OtherRankFailed:
            pass
        except BaseException as exc:  # the main lane reports it
            failures.append(exc)
            claims.fail(workers.rank, f"rank {workers.rank} failed: {_describe(exc)}")

    sides = [
        threading.Thread(target=side_lane, args=(copy,), name=f"{LANE_PREFIX}{i + 1}", daemon=True)
        for i, copy in enumerate(_lane_agents(agent, workers))
    ]
    try:
        for thread in sides:
            thread.start()
        try:
            run_jobs(plan.jobs, cache.has, _runner(agent, plan, cache, timings, progress, start=bar), claims, tick)
        except BaseException as exc:
            if not isinstance(exc, OtherRankFailed):
                claims.fail(workers.rank, f"rank {workers.rank} failed: {_describe(exc)}")
            # The other lanes stop after their current job. Ctrl-C does not wait for it (an
            # attribution job can take a minute): those threads are daemons, and whatever they
            # were writing is a temporary file that the next run removes.
            deadline = time.monotonic() + INTERRUPT_WAIT_SECONDS
            for thread in sides:
                thread.join(max(0.0, deadline - time.monotonic()) if isinstance(exc, KeyboardInterrupt) else None)
            if isinstance(exc, OtherRankFailed) and failures:
                raise failures[0] from None  # this process's own lane failed: its error, not a rank's message
            raise
        for thread in sides:
            thread.join()
        if failures:
            raise failures[0]
    except BaseException as exc:
        if workers.size == 1:
            claims.remove()  # with more ranks, the others read the failure from it; the next run removes it
        if isinstance(exc, OtherRankFailed) or workers.size == 1 or not isinstance(exc, UserError):
            raise
        raise RankError(f"rank {workers.rank}: {exc}") from None
    finally:
        for stage in bars.values():
            stage.close()
    workers.barrier()
    if workers.is_root:
        claims.remove()


def lanes_running() -> bool:
    """Whether a lane left running by an interrupted run is still in its job. Such a thread is
    inside torch, which aborts the process if the interpreter finalises under it: the CLI then
    ends the process at once instead (every file is written atomically, so nothing is lost)."""
    return any(thread.name.startswith(LANE_PREFIX) and thread.is_alive() for thread in threading.enumerate())


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__} {exc}"


def _lane_agents(agent: Agent, workers: Workers) -> list[Agent]:
    """Copies of the agent for this process's extra lanes (the first lane uses ``agent``)."""
    return [copy.deepcopy(agent) for _ in range(lanes_per_process(agent, workers) - 1)]


def _runner(agent: Agent, plan: Plan, cache: Cache, timings: TimingLog, progress: bool, start=lambda job: None):
    """What one lane does with a claimed job."""
    explained = explain_agent(agent)
    loaded: dict[str, object] = {}

    def run(job: Job) -> None:
        start(job)  # the stage's bar starts with its first job, so its clock and ETA are right
        with timings.timing(job):
            compute(job)

    def compute(job: Job) -> None:
        if job.kind == "trajectories":
            jobs.run_trajectories(agent, plan, cache, progress)
        elif job.kind == "observations":
            jobs.run_observations(agent, plan, cache, job, progress)
        elif job.kind == "states":
            jobs.run_states(agent, plan, cache, job)
        elif job.kind == "fit":
            jobs.run_fit(agent, explained, plan, cache, job)
        elif job.kind == "report":
            jobs.run_report(agent, plan, cache, job, jobs.load_trajectories(cache, plan))
        elif job.kind == "ablation":
            jobs.run_ablation(agent, plan, cache, job)
        else:
            source = "trajectories" if job.trajectory < plan.played else "states"
            if source not in loaded:
                loaded[source] = (
                    jobs.load_trajectories(cache, plan)
                    if source == "trajectories"
                    else jobs.states_as_trajectories(jobs.load_states(cache, plan))
                )
            components = None
            if plan.methods[job.method].method.info.produces == "channels":
                fit = plan.fit(job.layer)
                if fit.name not in loaded:
                    loaded[fit.name] = cache.load(fit.name)["components"]
                components = cast("np.ndarray", loaded[fit.name])
            trajectories = cast("Trajectories", loaded[source])
            jobs.run_attribution(agent, explained, plan, cache, job, trajectories, components)

    return run


def _export(building: Path, agent: Agent, plan: Plan, cache: Cache, title: str, progress: bool) -> None:
    total = len(plan.layers) + sum(job.kind == "attribution" for job in plan.jobs)
    with tqdm(total=total, desc="export", unit="job", disable=not progress) as bar:
        write_output(building, agent, plan, cache, title, bar.update)
