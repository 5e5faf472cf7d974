"""The stages of one run, in order: plan, compute every missing product (on one process or
across MPI ranks), then export the output folder from the cache and swap it into place.

Every product is a cache file (:mod:`.cache`), so an interrupted run resumes where it stopped,
and the output folder appears only complete: it is built beside its final place and renamed.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..agents.base import Agent
from ..attribution import explain_agent
from ..config import RunConfig
from ..errors import UserError
from . import jobs
from .export import write_output
from .cache import Cache
from .parallel import Claims, OtherRankFailed, RankError, Workers, one_thread, run_jobs
from .plan import Job, Plan, make_plan

STAGE_NAMES = {"trajectories": "rollouts", "observations": "rollouts", "fit": "layer fits",
               "attribution": "attribution"}  # fmt: skip


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves; none of these change what it computes."""

    cache_dir: str | os.PathLike[str] | None = None
    """Where products are cached; None puts them beside the output, in ``<output>.cache``."""
    resample: bool = True
    """False only rebuilds the page from the cache, and fails if a product is missing."""
    overwrite: bool = False
    """Replace an existing output folder (otherwise refuse)."""
    progress: bool = True
    """Progress bars with ETAs on stderr (rank 0 only)."""


def default_cache_dir(output_dir: Path) -> Path:
    return output_dir.parent / f"{output_dir.name}.cache"


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output {output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise UserError(f"output folder {output_dir} exists; pass --overwrite to replace it")


def run_pipeline(agent: Agent, checkpoint_digest: str, output_dir: str | os.PathLike[str], config: RunConfig,
                 options: RunOptions = RunOptions(), *, title: str = "", workers: Workers | None = None) -> Path:  # fmt: skip
    """Compute what is missing and write ``output_dir``; returns its interface.html (every rank)."""
    workers = workers or Workers.detect()
    output_dir = Path(output_dir).absolute()
    check_output_dir(output_dir, options.overwrite)
    plan = make_plan(agent, config, checkpoint_digest)
    cache = Cache(options.cache_dir or default_cache_dir(output_dir), checkpoint_digest, workers.rank)
    if not options.resample:
        missing = [job for job in plan.jobs if not cache.has(job.name)]
        if missing:
            raise UserError(f"--no-resample: {len(missing)} of {len(plan.jobs)} products for this checkpoint and "
                            f"config are not in the cache {cache.directory}; run once without --no-resample")  # fmt: skip
    try:
        with one_thread():
            _compute(agent, plan, cache, workers, options.progress and workers.is_root)
        if workers.is_root:
            _publish(output_dir, lambda building: _export(building, agent, plan, cache, title, options.progress))
        workers.barrier()
    except OSError as exc:  # disk full, permissions: one line, and the cache stays consistent
        where = f" {exc.filename}" if exc.filename else ""
        raise UserError(f"cannot write{where}: {exc.strerror or exc}") from None
    return output_dir / "interface.html"


def _compute(agent: Agent, plan: Plan, cache: Cache, workers: Workers, progress: bool) -> None:
    """Run the missing jobs on this rank's lanes: threads that each take the next ready job and
    compute it on one CPU thread, on their own copy of the model (hooks are per module)."""
    claims = Claims.open(cache.directory, workers)
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
            run_jobs(plan.jobs, cache.has, _runner(copy, plan, cache, progress=False), claims)
        except OtherRankFailed:
            pass
        except BaseException as exc:  # the main lane reports it
            failures.append(exc)
            claims.fail(workers.rank, f"rank {workers.rank} failed: {_describe(exc)}")

    sides = [threading.Thread(target=side_lane, args=(copy,), daemon=True) for copy in _lane_agents(agent, workers)]
    try:
        for thread in sides:
            thread.start()
        try:
            run_jobs(plan.jobs, cache.has, _runner(agent, plan, cache, progress, start=bar), claims, tick)
        except BaseException as exc:
            if not isinstance(exc, OtherRankFailed):
                claims.fail(workers.rank, f"rank {workers.rank} failed: {_describe(exc)}")
            for thread in sides:  # they stop after their current job
                thread.join()
            if isinstance(exc, OtherRankFailed) and failures:
                raise failures[0] from None  # this process's own lane failed: its error, not a rank's message
            raise
        for thread in sides:
            thread.join()
        if failures:
            raise failures[0]
    except (UserError, KeyboardInterrupt) as exc:
        if isinstance(exc, OtherRankFailed) or workers.size == 1 or not isinstance(exc, UserError):
            raise
        raise RankError(f"rank {workers.rank}: {exc}") from None
    finally:
        for stage in bars.values():
            stage.close()
    workers.barrier()
    if workers.is_root:
        claims.remove()


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__} {exc}"


def _lane_agents(agent: Agent, workers: Workers) -> list[Agent]:
    """Copies of the agent for this rank's extra lanes: its share of the cores, less the main lane.
    Agents we did not build (custom forwards, TorchScript) keep one lane: they may share state
    a copy would not."""
    if agent.architecture is None or agent.forward is not None or agent.device.type != "cpu":
        return []
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return [copy.deepcopy(agent) for _ in range(max(1, cores // workers.local_size()) - 1)]


def _runner(agent: Agent, plan: Plan, cache: Cache, progress: bool, start=lambda job: None):
    """What one lane does with a claimed job."""
    explained = explain_agent(agent)
    loaded: dict[str, object] = {}

    def run(job: Job) -> None:
        start(job)  # the stage's bar starts with its first job, so its clock and ETA are right
        if job.kind == "trajectories":
            jobs.run_trajectories(agent, plan, cache, progress)
        elif job.kind == "observations":
            jobs.run_observations(agent, plan, cache, job, progress)
        elif job.kind == "fit":
            jobs.run_fit(agent, explained, plan, cache, job)
        else:
            if "trajectories" not in loaded:
                loaded["trajectories"] = jobs.load_trajectories(cache, plan)
            fit = plan.fit(job.layer)
            if fit.name not in loaded:
                loaded[fit.name] = cache.load(fit.name)["components"]
            jobs.run_attribution(agent, explained, plan, cache, job, loaded["trajectories"], loaded[fit.name])

    return run


def _export(building: Path, agent: Agent, plan: Plan, cache: Cache, title: str, progress: bool) -> None:
    total = len(plan.layers) * plan.config.trajectories.num_envs
    with tqdm(total=total, desc="export", unit="job", disable=not progress) as bar:
        write_output(building, agent, plan, cache, title, bar.update)


def _publish(output_dir: Path, write) -> None:
    """Run ``write(folder)`` on a fresh sibling folder and, only if it succeeds, put the folder in
    ``output_dir``'s place; the previous output survives any failure."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.partial-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(building, 0o777 & ~umask)  # mkdtemp's 0700 would hide a hosted site from its server
    try:
        write(building)
        if output_dir.exists():
            old = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.old-"))
            os.rmdir(old)
            output_dir.rename(old)
            building.rename(output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            building.rename(output_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
