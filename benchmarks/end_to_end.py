"""Default-size run of the bundled agent, end to end: 8 trajectories x 512 frames, every layer,
value attribution, the original's observation set (32 envs x 128 obs, every 128 steps).

Runs the CLI twice from an empty cache, once as one process and once under ``mpiexec -n 2``, and
measures wall time, peak resident memory (the largest process; /usr/bin/time) and output size.
Goals (issue 7): <= 15 min, <= 4 GB, <= 100 MB, and 2 ranks >= 1.6x faster than 1. Also
printed: how many cores each run kept busy on average (user + system CPU time / wall time).

    .venv/bin/python benchmarks/end_to_end.py [--work /tmp/e2e] [-- extra run flags]

The last line is machine-readable:
RESULT end_to_end wall_s=<t> peak_rss_mb=<m> output_mb=<o> mpi2_speedup=<s>
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(label: str, command: list[str], out: Path) -> dict[str, float]:
    for stale in (out, out.parent / f"{out.name}.cache"):
        shutil.rmtree(stale, ignore_errors=True)
    rss_file = out.parent / f"{out.name}.rss"
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_file), *command])
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{label} failed with exit status {result.returncode}")
    peak_kb, user, system = rss_file.read_text().split()[-3:]  # time's last line (mpiexec may add some)
    numbers = {
        "wall_s": wall,
        "peak_rss_mb": int(peak_kb) / 1024,
        "output_mb": folder_bytes(out) / 1e6,
        "cores": (float(user) + float(system)) / wall,
    }
    print(
        f"{label}: wall {wall:.1f} s, peak RSS {numbers['peak_rss_mb']:.0f} MB (largest process), "
        f"output {numbers['output_mb']:.1f} MB, {numbers['cores']:.2f} cores busy on average",
        flush=True,
    )
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/e2e"), help="scratch folder (replaced)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the MPI run")
    parser.add_argument("extra", nargs="*", help="extra flags for `run` (after --)")
    args = parser.parse_args()
    from understanding_rl_vision.demo import bundled_agent_path

    bin_dir = Path(sys.executable).parent
    cli = [str(bin_dir / "understanding-rl-vision"), "run", str(bundled_agent_path()), "--quiet", *args.extra]
    args.work.mkdir(parents=True, exist_ok=True)
    one = measure("1 process", [*cli, "-o", str(args.work / "one")], args.work / "one")
    mpiexec = shutil.which("mpiexec", path=str(bin_dir)) or "mpiexec"
    two = measure(
        f"{args.ranks} ranks", [mpiexec, "-n", str(args.ranks), *cli, "-o", str(args.work / "two")], args.work / "two"
    )
    same = subprocess.run(["diff", "-rq", str(args.work / "one"), str(args.work / "two")], capture_output=True)
    print(f"outputs byte-identical: {same.returncode == 0}")
    speedup = one["wall_s"] / two["wall_s"]
    print(
        f"RESULT end_to_end wall_s={one['wall_s']:.1f} peak_rss_mb={one['peak_rss_mb']:.0f} "
        f"output_mb={one['output_mb']:.1f} mpi2_speedup={speedup:.2f}"
    )


if __name__ == "__main__":
    main()
