"""How a run would scale to more ranks, predicted from its own measured job times: the scheduler's
makespan on N single-core lanes (jobs replayed in plan order as ``run_jobs`` takes them, each
waiting for the products it needs; then rank 0's export alone), against N times one lane.

    .venv/bin/python benchmarks/makespan.py CACHE_DIR [--lanes 1 2 4 8 16]

CACHE_DIR is a run's cache folder (``<output>.cache``) or the checkpoint folder inside it; the newest
run recorded there is used. Job times are those measured on this machine (a job computes on one
thread), so the prediction assumes each extra lane is a whole core as fast as these. Prints the
table, the critical path (the chain of jobs no lane count can shorten) and the time per stage.

The last line is machine-readable:
RESULT makespan lanes=<n> speedup=<s> efficiency=<e> ... (for the largest --lanes)
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from understanding_rl_vision.pipeline.timings import EXPORT, critical_path, read_timings, simulate


def timings_folder(path: Path) -> Path:
    """``path``, or its subfolder (a checkpoint's) with the newest timings."""
    candidates = [p for p in [path, *path.iterdir()] if p.is_dir() and any(p.glob("timings-*.jsonl"))]
    if not candidates:
        sys.exit(f"error: no timings-*.jsonl under {path}: run the pipeline with this version first")
    return max(candidates, key=lambda p: max(f.stat().st_mtime for f in p.glob("timings-*.jsonl")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    timings = read_timings(timings_folder(args.cache))
    jobs = [t for t in timings if t.kind != EXPORT]
    if not jobs:
        sys.exit("error: the newest run recorded there computed no job (everything was cached)")
    print(f"{len(jobs)} jobs, {sum(t.seconds for t in jobs):.1f} s of job time on one thread each")
    stages: dict[str, list[float]] = defaultdict(list)
    for t in timings:
        stages[t.kind].append(t.seconds)
    for kind, seconds in stages.items():
        print(f"  {kind:<13} {len(seconds):>4} x  total {sum(seconds):8.1f} s  longest {max(seconds):7.1f} s")

    one = simulate(timings, 1).makespan
    print("\n| lanes | jobs | export | makespan | speedup | N x one lane | efficiency | lanes busy |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.lanes:
        s = simulate(timings, n)
        print(
            f"| {n} | {s.jobs_seconds:.1f} s | {s.export_seconds:.1f} s | {s.makespan:.1f} s | "
            f"{one / s.makespan:.2f}x | {n}x | {one / s.makespan / n:.0%} | {s.busy:.0%} |"
        )
    path = critical_path(timings)
    chain = " -> ".join(f"{t.kind} {t.seconds:.1f} s" for t in path)
    print(f"\ncritical path: {sum(t.seconds for t in path):.1f} s ({chain}), then the export")
    last = simulate(timings, args.lanes[-1])
    print(
        f"RESULT makespan lanes={args.lanes[-1]} speedup={one / last.makespan:.2f} "
        f"efficiency={one / last.makespan / args.lanes[-1]:.2f} one_lane_s={one:.1f} "
        f"critical_path_s={sum(t.seconds for t in path):.1f} export_s={last.export_seconds:.1f}"
    )


if __name__ == "__main__":
    main()
