"""Two real MPI ranks (mpiexec from the mpich wheel, mpi4py) share a run's jobs, and the output is
byte-identical to a one-process run with the same seed; without mpi4py, mpiexec runs fall back
to one process and say so."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from understanding_rl_vision.demo import bundled_agent_path

FLAGS = (
    "--num-envs 3 --num-steps 16 --obs-num-envs 2 --num-obs 8 "
    "--obs-every 2 --layers 2a,2b,3c --nmf-features 3 --attr-policy --quiet"
).split()


def mpiexec() -> str:
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    assert found, "mpiexec is a test dependency (pip install mpich mpi4py)"
    return found


def tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "understanding_rl_vision.cli", "run", str(bundled_agent_path()), *args, *FLAGS]


METHODS = "--methods ig,gradcam,smoothgrad --explain value,action --noise-samples 4".split()
"""Three methods: channels at each layer, a map at each layer, a map of the input."""


def test_two_ranks_write_the_same_bytes_as_one_process(tmp_path):
    one = subprocess.run(cli("-o", str(tmp_path / "one"), *METHODS), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [mpiexec(), "-n", "2", *cli("-o", str(tmp_path / "two"), *METHODS)], capture_output=True, text=True, timeout=600
    )
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("wrote ") == 1  # rank 0 writes and reports, once
    made_by = [int(np.load(p)["made_by_rank"]) for p in (tmp_path / "two.cache").glob("*/*.npz")]
    # rollouts 2, fits 3, then per trajectory: ig and gradcam at 3 layers, smoothgrad on the input
    assert len(made_by) == 2 + 3 + 3 * (3 + 3 + 1) and set(made_by) == {0, 1}, made_by  # both ranks computed jobs
    assert {p.name for p in (tmp_path / "two" / "data").glob("m2-in-*.js")} == {
        f"m2-in-{t}-{o}.js"
        for t in range(3)
        for o in range(2 + 15 + 5)  # value, action, 15 logits, 5 groups
    }
    assert tree(tmp_path / "one") == tree(tmp_path / "two")  # including the non-root rank's products
    assert len(tree(tmp_path / "two")) > 40


def test_without_mpi4py_mpiexec_falls_back_to_one_process(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "mpi4py.py").write_text("raise ImportError('mpi4py hidden for this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [mpiexec(), "-n", "2", *cli("-o", str(tmp_path / "out"))], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "launched with 2 MPI ranks but mpi4py is not installed" in result.stderr
    assert "this rank leaves the work to rank 0" in result.stderr
    assert (tmp_path / "out" / "interface.html").is_file() and result.stdout.count("wrote ") == 1


@pytest.mark.parametrize("ranks", [2])
def test_bad_input_under_mpi_is_one_line(tmp_path, ranks):
    result = subprocess.run(
        [mpiexec(), "-n", str(ranks), *cli("-o", str(tmp_path / "out")), "--layers", "9z"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "9z" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_a_job_failing_on_one_rank_stops_both_without_a_traceback(tmp_path):
    import torch

    from understanding_rl_vision.agents import load_checkpoint, save_checkpoint

    agent = load_checkpoint(bundled_agent_path())
    with torch.no_grad():
        agent.model.stacks[2].conv.weight.fill_(float("nan"))  # the value is NaN, rollouts fail
    broken = save_checkpoint(agent, tmp_path / "nan.safetensors")
    command = [mpiexec(), "-n", "2", *cli("-o", str(tmp_path / "out"))]
    command[command.index(str(bundled_agent_path()))] = str(broken)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "NaN or infinite" in result.stderr and not (tmp_path / "out").exists()
