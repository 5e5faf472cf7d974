"""Each computed job's time is recorded beside the cache, and a schedule replays those times on more
lanes: checked on a hand-made set of jobs whose schedule is known, and on a real run."""

import json

import pytest

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.pipeline.timings import EXPORT, Timing, critical_path, read_timings, simulate


def job(name, seconds, order, needs=(), kind="attribution"):
    return Timing("p", name, kind, order, tuple(needs), seconds, 0, "main", finished=float(order))


# a (10 s) -> b (5 s) -> d (2 s) <- c (5 s); the export takes 1 s
JOBS = [
    job("a", 10.0, 0, kind="trajectories"),
    job("c", 5.0, 1),
    job("b", 5.0, 2, needs=("a",)),
    job("d", 2.0, 3, needs=("b", "c", "cached-before")),
    job(EXPORT, 1.0, 4, kind=EXPORT),
]


def test_one_lane_runs_the_jobs_one_after_another():
    one = simulate(JOBS, 1)
    assert (one.jobs_seconds, one.export_seconds, one.makespan, one.busy) == (22.0, 1.0, 23.0, 1.0)


def test_more_lanes_wait_for_what_a_job_needs():
    # two lanes: a | c, then the second lane idles until a is done (b needs it), then b, then d
    two = simulate(JOBS, 2)
    assert two.makespan == 18.0 and two.busy == pytest.approx(22.0 / (2 * 17.0))
    assert simulate(JOBS, 8).makespan == 18.0  # no lane count beats the critical path
    assert [t.name for t in critical_path(JOBS)] == ["a", "b", "d"]


def test_a_cycle_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="cycle"):
        simulate([job("x", 1.0, 0, needs=("y",)), job("y", 1.0, 1, needs=("x",))], 2)


def test_a_run_times_every_job_it_computes_and_no_cached_one(checkpoint, tmp_path, small):
    out = tmp_path / "out"
    rl_clarity.run(checkpoint, out, progress=False, **small)
    cache = next((tmp_path / "out.cache").iterdir())
    timings = read_timings(cache)
    products = sorted(p.stem for p in cache.glob("*.npz"))
    assert sorted(t.name for t in timings if t.kind != EXPORT) == products  # each product timed once
    assert len(products) == 8 and len({t.plan for t in timings}) == 1 and all(t.seconds > 0 for t in timings)
    assert [t.order for t in timings if t.kind == EXPORT] == [len(products)]
    kinds = {t.name: t.kind for t in timings}
    assert all(kinds[n] in ("trajectories", "observations") for t in timings if t.kind == "fit" for n in t.needs)
    assert all(set(t.needs) <= set(products) for t in timings)

    lines = (cache / "timings-0.jsonl").read_text().splitlines()
    rl_clarity.run(checkpoint, out, progress=False, overwrite=True, **small)  # everything cached
    again = (cache / "timings-0.jsonl").read_text().splitlines()
    assert again[: len(lines)] == lines and [json.loads(t)["kind"] for t in again[len(lines) :]] == [EXPORT]
    with (cache / "timings-0.jsonl").open("a") as handle:
        handle.write('{"plan": "cut short')  # a process killed mid-line
    assert len(read_timings(cache)) == len(timings)  # the rerun's export replaces the first's
