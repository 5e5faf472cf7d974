"""The check against this machine: refuse, in one line naming what to lower and how far, a run
whose estimate does not fit the memory or disk here."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ...agents.base import Agent
from ...common.machine import available_memory, format_bytes, free_disk, resident_memory
from ...config import RunConfig
from ...errors import UserError
from ...rollout import observation_parts
from ..parallel import Workers, lanes_per_process
from ..plan import Plan
from .estimate import BASELINE_BYTES, Estimate, _estimate, _missing_jobs
from .shapes import Shapes, shapes_of
from .sizes import Part

_FLAGS = {"num_steps": "--num-steps", "num_envs": "--num-envs", "num_obs": "--num-obs",
          "obs_num_envs": "--obs-num-envs", "ig_steps": "--ig-steps", "nmf_features": "--nmf-features",
          "thumbnail_grid": "--thumbnail-grid"}  # fmt: skip
_UNITS = {"num_steps": "steps", "num_envs": "environments", "num_obs": "observations per environment",
          "obs_num_envs": "observation-set environments", "ig_steps": "integration steps",
          "nmf_features": "features", "thumbnail_grid": "thumbnail tiles per side"}  # fmt: skip
_ADVICE = {"layers": "fewer --layers", "attr_policy": "no --attr-policy", "subdiv_mults": "smaller --subdiv-mults",
           "expand_mults": "fewer --expand-mults"}  # fmt: skip
"""Settings that are not one number: named in the advice, never searched."""
MAX_PLANNED_JOBS = 20_000
"""Above this many jobs the cache is not consulted (planning them would take long): a run that
large only fits if its sizes do, cached or not."""


def check_resources(agent: Agent, config: RunConfig | Plan, cache_dir: str | os.PathLike[str],
                    output_dir: str | os.PathLike[str], *, checkpoint_digest: str = "",
                    workers: Workers | None = None) -> None:  # fmt: skip
    """Refuse, with one line that says what to lower and how far, a run whose estimated memory or
    disk exceeds what this machine has; before any work, in milliseconds.

    Call it before :func:`..plan.make_plan` (which builds a job per trajectory and layer, so a huge
    ``num_envs`` would stall there): from a config it plans nothing unless the run does not fit
    as if nothing were cached, and then (given ``checkpoint_digest``, and for a plan of at most
    :data:`MAX_PLANNED_JOBS` jobs) it counts the products already in the cache as done. Rank 0
    judges and every rank raises the same error, so no rank waits for one that left.
    """
    workers = workers or Workers.detect()
    lanes, processes = lanes_per_process(agent, workers), workers.local_size()
    verdict: str | UserError | None = None
    if workers.is_root:
        try:
            verdict = _verdict(agent, config, Path(cache_dir), Path(output_dir), checkpoint_digest, lanes,
                               processes, workers.rank)  # fmt: skip
        except Exception as exc:  # the other ranks wait in the broadcast: they fail too
            workers.broadcast(exc if isinstance(exc, UserError) else UserError(f"rank 0 failed: {exc!r}"))
            raise
    verdict = workers.broadcast(verdict)
    if isinstance(verdict, UserError):
        raise verdict
    if verdict is not None:
        raise UserError(verdict)


@dataclass(frozen=True)
class _Room:
    memory: int | None  # bytes the run may hold, its processes' current memory included
    fixed: int  # what the processes hold before any job (refusals never rest on this alone)
    disks: tuple[tuple[int, int, Path, str], ...]  # (device, free bytes, folder, "cache" | "output")


def _verdict(agent: Agent, config: RunConfig | Plan, cache_dir: Path, output_dir: Path, checkpoint_digest: str,
             lanes: int, processes: int, rank: int) -> str | None:  # fmt: skip
    """The refusal, or None if the run fits."""
    shapes = shapes_of(agent, config)
    base = config.config if isinstance(config, Plan) else config
    memory = available_memory()
    room = _Room(None if memory is None else memory + processes * resident_memory(), processes * BASELINE_BYTES,
                 ((*free_disk(cache_dir), "cache"), (*free_disk(output_dir.parent), "output")))  # fmt: skip
    found = _estimate(shapes, base, lanes, processes, None)
    if _problem(found, room) is None:
        return None
    cached = _cached_products(agent, config, cache_dir, checkpoint_digest, rank, len(shapes.layers))
    if cached is not None:
        plan, names = cached
        found = _estimate(shapes, base, lanes, processes, _missing_jobs(plan, names))
        if _problem(found, room) is None:
            return None
    return _message(found, room, shapes, base, lanes, processes)


def _cached_products(agent: Agent, config: RunConfig | Plan, cache_dir: Path, checkpoint_digest: str, rank: int,
                     layers: int) -> tuple[Plan, set[str]] | None:  # fmt: skip
    """The plan and the names of its products already in the cache, where that is cheap to know."""
    from ..cache import Cache
    from ..plan import make_plan

    if not checkpoint_digest:
        return None
    if not isinstance(config, Plan):
        jobs = observation_parts(config.observation_set) + 1 + layers * (1 + config.trajectories.num_envs)
        if jobs > MAX_PLANNED_JOBS:
            return None
    directory = Cache(cache_dir, checkpoint_digest, rank).directory
    names = {path.name[: -len(".npz")] for path in directory.glob("*.npz")} if directory.is_dir() else set()
    if not names:
        return None
    return (config if isinstance(config, Plan) else make_plan(agent, config, checkpoint_digest)), names


def _problem(found: Estimate, room: _Room) -> str | None:
    """ "memory", "disk" or None: what this estimate does not fit in."""
    if room.memory is not None and found.peak_memory_bytes > room.memory and room.fixed < room.memory:
        return "memory"
    if _disk_shortage(found, room):
        return "disk"
    return None


def _disk_shortage(found: Estimate, room: _Room) -> list[tuple[int, int, Path, str]]:
    """(needed, free, folder, "cache" / "output" / "cache and output") of each file system the
    run's files do not fit on."""
    needs: dict[int, list] = {}
    for device, free, folder, what in room.disks:
        entry = needs.setdefault(device, [0, free, folder, []])
        entry[0] += found.cache_bytes if what == "cache" else found.output_bytes
        entry[3].append(what)
    return [(need, free, folder, " and ".join(whats)) for need, free, folder, whats in needs.values() if need > free]


def _message(found: Estimate, room: _Room, shapes: Shapes, config: RunConfig, lanes: int, processes: int) -> str:
    def fits(settings: dict[str, int], lanes: int = lanes) -> bool:
        return _problem(_estimate(shapes, config.replace(**settings), lanes, processes, None), room) is None

    parts: Sequence[Part]
    if _problem(found, room) == "memory":
        parts = found.memory_parts
        head = (f"this run needs about {format_bytes(found.peak_memory_bytes)} of memory ({parts[0].what}) "
                f"but {format_bytes(room.memory or 0)} is available")  # fmt: skip
        elsewhere = ""
        if lanes > 1 and fits({}, lanes=1):  # each core runs a job at once (a lane): fewer cores fit
            cores = max(n for n in range(1, lanes) if fits({}, lanes=n))
            elsewhere = f", or give it at most {cores} of its {lanes} cores (taskset -c 0-{cores - 1})"
    else:
        need, free, folder, what = _disk_shortage(found, room)[0]
        parts = sorted(found.cache_parts * ("cache" in what) + found.output_parts * ("output" in what),
                       key=lambda p: -p.bytes)  # fmt: skip
        head = (f"this run needs about {format_bytes(need)} of disk for its {what} ({parts[0].what}) "
                f"but {format_bytes(free)} is free in {folder}")  # fmt: skip
        where = {"cache": "choose a --cache-dir", "output": "write the output (-o)"}.get(
            what, "choose a --cache-dir and output (-o)"
        )
        elsewhere = f", or {where} on a disk with more room"
    return f"{head}; {_advice(parts, shapes, config, fits)}{elsewhere}"


def _advice(parts: Sequence[Part], shapes: Shapes, config: RunConfig, fits: Callable[[dict[str, int]], bool]) -> str:
    """ "lower --num-steps or --num-envs (at most ~N steps fit)": the settings that size the
    largest terms, those that alone can make the run fit first, and the first one's limit."""
    knobs = list(dict.fromkeys(k for part in parts[:4] for k in part.knobs))
    numbers = [k for k in knobs if k in _FLAGS and _setting(config, k) > 1]
    others = [_ADVICE[k] for k in parts[0].knobs if k in _ADVICE and _applies(k, shapes, config)]
    largest = {k: _largest_fitting(k, _setting(config, k), fits) for k in numbers}
    helpful = [k for k in numbers if largest[k] is not None]
    if helpful:
        knob = helpful[0]
        limit = f"at most ~{_round_down(cast(int, largest[knob])):,} {_UNITS[knob]} fit"  # helpful: not None
        text = f"lower {' or '.join(_FLAGS[k] for k in helpful)} ({limit})"
    elif numbers and not others:  # the largest term's own settings, all of them
        first = [k for k in parts[0].knobs if k in numbers] or numbers
        text = f"lower {' and '.join(_FLAGS[k] for k in first)}"
        text += " (no one of them alone is enough)" * (len(first) > 1)
    else:
        text = ""
    if others:
        text += (", or use " if text else "use ") + " or ".join(others)
    return text or "free some memory or disk, or run on a larger machine"


def _setting(config: RunConfig, name: str) -> int:
    return int(config.setting(name))


def _applies(name: str, shapes: Shapes, config: RunConfig) -> bool:
    if name == "layers":
        return len(shapes.layers) > 1
    if name == "attr_policy":
        return config.attribution.attr_policy
    if name == "expand_mults":
        return len(config.feature_vis.expand_mults) > 1
    return True


def _largest_fitting(knob: str, current: int, fits: Callable[[dict[str, int]], bool]) -> int | None:
    """The largest value below ``current`` with which the run fits (estimates grow with every
    size, so a bisection finds it in at most ~64 estimates); None if even 1 does not."""
    if not fits({knob: 1}):
        return None
    low, high = 1, min(current - 1, 1 << 64)  # nothing of 2**64 fits anywhere
    while low < high:
        middle = (low + high + 1) // 2
        if fits({knob: middle}):
            low = middle
        else:
            high = middle - 1
    return low


def _round_down(n: int) -> int:
    """Two significant digits, rounded down (an "at most" stays true)."""
    if n < 100:
        return n
    unit = 10 ** (len(str(n)) - 2)
    return n // unit * unit
