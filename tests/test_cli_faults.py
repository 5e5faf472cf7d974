"""The issue-13 reproductions through the real console process: each ends in one ``error:`` line
and status 2 (or works), and no file this tool did not write is touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from understanding_rl_vision.demo import bundled_agent_path

TINY = (
    "--num-envs 2 --num-steps 12 --obs-num-envs 2 --num-obs 4 "
    "--obs-every 2 --layers 2b --nmf-features 2 --ig-steps 2 --quiet"
).split()


def cli(*args: str, cwd: Path | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "understanding_rl_vision.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, list[str]]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err.strip().splitlines()


def one_error(lines: list[str], expected: str) -> None:
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A cache holding the TINY run's products, so a run from it only exports (seconds)."""
    root = tmp_path_factory.mktemp("warm")
    code, _, err = finish(
        cli("run", str(bundled_agent_path()), "-o", str(root / "out"), "--cache-dir", str(root / "cache"), *TINY)
    )
    assert code == 0, err
    return root / "cache"


def run_from(warm_cache: Path, *args: str, cwd: Path | None = None) -> tuple[int, str, list[str]]:
    return finish(cli("run", str(bundled_agent_path()), *args, "--cache-dir", str(warm_cache), *TINY, cwd=cwd))


def test_overwrite_refuses_a_folder_of_the_users(warm_cache, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "user.txt").write_text("x")
    code, _, err = run_from(warm_cache, "-o", str(tmp_path / "d"), "--overwrite")
    assert code == 2
    one_error(err, "holds 1 file(s) (user.txt) and was not written by this tool")
    assert (tmp_path / "d" / "user.txt").read_text() == "x"


def test_overwrite_refuses_the_working_directory(warm_cache, tmp_path):
    project = tmp_path / "myproject"
    project.mkdir()
    (project / "main.py").write_text("print()")
    code, _, err = run_from(warm_cache, "-o", ".", "--overwrite", cwd=project)
    assert code == 2
    one_error(err, "is or holds the working directory")
    assert sorted(p.name for p in project.iterdir()) == ["main.py"]


def test_overwrite_refuses_a_training_run_folder(warm_cache, tmp_path):
    run = tmp_path / "runs" / "coinrun"
    run.mkdir(parents=True)
    checkpoint = run / "checkpoint.safetensors"
    checkpoint.write_bytes(bundled_agent_path().read_bytes())
    (run / "log.csv").write_text("update\n")
    code, _, err = finish(cli("run", str(checkpoint), "-o", str(run), "--overwrite", *TINY))
    assert code == 2
    one_error(err, "holds the checkpoint")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.safetensors", "log.csv"]


def test_demo_overwrite_follows_the_same_rule(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "user.txt").write_text("x")
    code, _, err = finish(cli("demo", "-o", str(tmp_path / "d"), "--overwrite", "--quiet"))
    assert code == 2
    one_error(err, "was not written by this tool")
    assert (tmp_path / "d" / "user.txt").read_text() == "x"


def test_a_cache_inside_the_output_is_refused(tmp_path):
    code, _, err = finish(
        cli(
            "run",
            str(bundled_agent_path()),
            "-o",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "out" / "cache"),
            *TINY,
        )
    )
    assert code == 2
    one_error(err, "choose a --cache-dir outside -o")
    assert not (tmp_path / "out").exists()


def test_a_folder_made_at_the_output_during_the_run_is_left_alone(tmp_path):
    out, cache = tmp_path / "race", tmp_path / "cache"
    process = cli("run", str(bundled_agent_path()), "-o", str(out), "--cache-dir", str(cache), *TINY)
    while not list(cache.glob("*/trajectories-*.npz")) and process.poll() is None:
        time.sleep(0.01)  # the run is under way: its output does not exist yet
    out.mkdir()
    (out / "user.txt").write_text("x")
    code, _, err = finish(process)
    assert code == 2
    one_error(err, "appeared during the run and was left as it is")
    assert sorted(p.name for p in out.iterdir()) == ["user.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "race"]  # no partial folder left


def test_two_runs_on_one_output_leave_one_output_and_one_error(tmp_path):
    """Both start before either has an output (an empty cache: both compute), so the loser meets
    the winner's output at its swap."""
    out = tmp_path / "out"
    first, second = (
        cli("run", str(bundled_agent_path()), "-o", str(out), "--cache-dir", str(tmp_path / "cache"), *TINY)
        for _ in range(2)
    )
    results = sorted([finish(first), finish(second)], key=lambda result: result[0])
    assert [code for code, _, _ in results] == [0, 2]
    one_error(results[1][2], "appeared during the run and was left as it is")
    assert (out / "interface.html").is_file() and (out / ".understanding-rl-vision.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out"]


def test_sigterm_during_export_leaves_no_partial_folder(warm_cache, tmp_path):
    """SIGTERM runs the same clean-up as Ctrl-C (exit 143); the export is held open by a patched
    writer so that the signal arrives while the partial folder exists."""
    out, ready = tmp_path / "out", tmp_path / "exporting"
    script = (
        "import sys, time, pathlib\n"
        "from understanding_rl_vision.pipeline import runner\n"
        "real = runner._export\n"
        "def slow(building, *args):\n"
        "    real(building, *args)\n"
        f"    pathlib.Path({str(ready)!r}).write_text(str(building))\n"
        "    time.sleep(60)\n"
        "runner._export = slow\n"
        "from understanding_rl_vision.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            "run",
            str(bundled_agent_path()),
            "-o",
            str(out),
            "--cache-dir",
            str(warm_cache),
            *TINY,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    while not ready.exists() and process.poll() is None:
        time.sleep(0.01)
    assert Path(ready.read_text()).is_dir()  # the partial folder, complete but not yet in place
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and err.strip().splitlines() == ["terminated"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exporting"]


def test_the_printed_address_is_a_valid_file_url(warm_cache, tmp_path):
    out = tmp_path / "my output é"
    code, stdout, err = run_from(warm_cache, "-o", str(out))
    assert code == 0, err
    assert f"({(out / 'interface.html').as_uri()})" in stdout and "/my%20output%20%C3%A9/interface.html" in stdout


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_with_a_bad_port_is_one_line(tmp_path, port):
    (tmp_path / "interface.html").write_text("<!doctype html>")
    code, _, err = finish(cli("serve", str(tmp_path), "--port", port))
    assert code == 2
    one_error(err, "is not a port number (0 to 65535)")


def test_an_unknown_flag_is_one_line():
    code, _, err = finish(cli("run", "x.safetensors", "--num-stepz", "3"))
    assert code == 2
    one_error(err, "unrecognized arguments: --num-stepz 3")


def test_leftovers_of_a_killed_run_are_removed_by_the_next(warm_cache, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".out.partial-{dead.pid}-abc").mkdir()
    (tmp_path / f".out.partial-{dead.pid}-abc" / "interface.html").write_text("half")
    digest_dir = next(warm_cache.iterdir())
    claims = digest_dir / f".claims-{dead.pid}-0123456789ab"
    claims.mkdir()
    (claims / "failed-0").write_text("rank 0 failed")
    temporary = digest_dir / f".fit-x.npz.{dead.pid}.abcd.tmp"
    temporary.write_bytes(b"half")
    code, _, err = run_from(warm_cache, "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not claims.exists() and not temporary.exists()
    assert os.path.isdir(digest_dir)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--num-envs", "100000000"], "lower --num-envs (at most ~"),
        (["train", "--num-steps", "1000000000000"], "lower --num-steps (at most ~"),
        (["evaluate", "bundled", "--num-envs", "100000000000"], "lower --num-envs (at most ~"),
    ],
)
def test_training_and_evaluation_sizes_that_cannot_fit_are_refused_up_front(tmp_path, args, expected):
    save = ["--save-dir", str(tmp_path / "run")] if args[0] == "train" else []
    started = time.monotonic()
    code, _, err = finish(cli(*args, *save))
    assert code == 2 and time.monotonic() - started < 60  # refused before any environment is made
    one_error(err, expected)
    assert not (tmp_path / "run").exists()


def test_a_save_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = finish(cli("train", "--save-dir", str(tmp_path / "file")))
    assert code == 2
    one_error(err, "exists and is not a folder")
    code, _, err = finish(cli("train", "--save-dir", str(tmp_path / "file" / "run")))
    assert code == 2
    one_error(err, "Not a directory")
    assert (tmp_path / "file").read_text() == "x"


def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    """A real write failure (a file-size limit, as a full disk fails a write): one line that names
    the product being written, no "Exception ignored" traceback from a half-closed zip file."""
    import resource

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    code, _, err = finish(
        cli("run", str(bundled_agent_path()), "-o", str(tmp_path / "out"), *TINY, preexec_fn=small_files)
    )
    assert code == 2
    one_error(err, "File too large")
    assert f"cannot write {tmp_path / 'out.cache'}/" in err[0] and ".npz: File too large" in err[0]
    assert not (tmp_path / "out").exists()
    cache = tmp_path / "out.cache"
    assert not list(cache.rglob("*.tmp"))  # nothing half-written; what was finished loads
    for product in cache.rglob("*.npz"):
        with np.load(product) as arrays:
            assert arrays.files
