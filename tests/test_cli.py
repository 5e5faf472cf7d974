"""The command line: flags from the config, run and serve for real, bad input and Ctrl-C as one
line and an exit status, never a traceback."""

import subprocess
import sys

import pytest

from understanding_rl_vision.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "understanding_rl_vision.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "run", "train", "evaluate", "serve"):
        assert command in result.stdout


def test_every_config_field_is_a_flag_of_the_same_name():
    from understanding_rl_vision.common.flags import field_docs, flat_fields
    from understanding_rl_vision.config import RunConfig, flat_field_owners

    result = run_cli("run", "--help")
    assert result.returncode == 0
    for name in flat_field_owners():
        assert f"--{name.replace('_', '-')}" in result.stdout, name
        assert field_docs(RunConfig)[name], f"{name} has no docstring for its help"
    groups = {name: group for name, (group, _) in flat_fields(RunConfig).items()}
    assert groups == flat_field_owners()
    for flag in (
        "--num-envs",
        "--num-steps",
        "--layers",
        "--attr-policy",
        "--nmf-features",
        "--seed",
        "--device",
        "--obs-num-envs",
        "--num-obs",
        "--obs-every",
        "--discard-first-n",
        "--include-input",
        "--ig-steps",
        "--ig-rule",
        "--gamma",
        "--lam",
        "--num-bookmarks",
        "--no-resample",
        "--cache-dir",
        "--overwrite",
        "--quiet",
        "-o",
    ):
        assert flag in result.stdout


def test_every_training_field_is_a_flag_of_the_same_name():
    from dataclasses import fields

    from understanding_rl_vision.common.flags import field_docs
    from understanding_rl_vision.training import PPOConfig

    result = run_cli("train", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for f in fields(PPOConfig):
        assert f"--{f.name.replace('_', '-')}" in result.stdout, f.name
        assert field_docs(PPOConfig)[f.name], f"{f.name} has no docstring for its help"
        assert f"(default: {f.default})" in help_text, f.name
    for flag in ("--save-dir", "--resume", "--quiet", "--no-bf16", "--total-steps"):
        assert flag in result.stdout
    assert "--no-progress" not in result.stdout


def test_training_flags_become_typed_settings():
    from understanding_rl_vision.cli import build_parser
    from understanding_rl_vision.common.flags import settings_from_args

    args = build_parser().parse_args(
        [
            "train",
            "--save-dir",
            "d",
            "--total-steps",
            "512",
            "--learning-rate",
            "1e-3",
            "--no-normalize-rewards",
            "--device",
            "cuda:1",
            "--quiet",
        ]
    )
    assert settings_from_args(args) == {
        "total_steps": 512,
        "learning_rate": 1e-3,
        "normalize_rewards": False,
        "device": "cuda:1",
    }
    assert args.quiet and not args.resume


def test_flags_become_typed_settings():
    from understanding_rl_vision.cli import build_parser
    from understanding_rl_vision.common.flags import settings_from_args
    from understanding_rl_vision.config import RunConfig

    args = build_parser().parse_args(
        [
            "run",
            "x.safetensors",
            "--layers",
            "2b,3a",
            "--attr-policy",
            "--num-steps",
            "64",
            "--gamma",
            "0.99",
            "--ig-rule",
            "gauss-legendre",
            "--subdiv-mults",
            "0.5,1",
            "--no-overlay",
        ]
    )
    settings = settings_from_args(args)
    assert settings == {
        "layers": ("2b", "3a"),
        "attr_policy": True,
        "num_steps": 64,
        "gamma": 0.99,
        "ig_rule": "gauss-legendre",
        "subdiv_mults": (0.5, 1.0),
        "overlay": False,
    }
    config = RunConfig().replace(**settings)
    assert config.trajectories.num_steps == 64 and config.interface.overlay is False
    assert config.trajectories.num_envs == 8  # untouched settings keep the config's defaults


def bad_checkpoints(tmp_path):
    import torch

    pickle_path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2), "code": print}, pickle_path)  # unpickling would import a callable
    unknown = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, unknown)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x13\x00\x00\x00\x00\x00\x00\x00{not json at all}   ")
    return {
        "missing": (tmp_path / "nope.safetensors", "not found"),
        "corrupt": (corrupt, ""),
        "pickle": (pickle_path, "without unpickling code"),
        "unknown layout": (unknown, "matches no layout we know"),
    }


@pytest.mark.parametrize("case", ["missing", "corrupt", "pickle", "unknown layout"])
def test_run_with_bad_checkpoint_is_one_line_exit_2(tmp_path, case):
    path, expected = bad_checkpoints(tmp_path)[case]
    result = run_cli("run", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert expected in lines[0].lower()


SMALL_FLAGS = (
    "--num-envs 2 --num-steps 12 --obs-num-envs 2 --num-obs 6 --obs-every 2 --layers 2b,3c --nmf-features 3 --quiet"
).split()


def test_run_writes_the_interface_and_says_how_to_open_it(tmp_path):
    from understanding_rl_vision.demo import bundled_agent_path

    result = run_cli("run", str(bundled_agent_path()), "-o", str(tmp_path / "out"), *SMALL_FLAGS)
    assert result.returncode == 0, result.stderr
    html = tmp_path / "out" / "interface.html"
    assert html.is_file() and f"wrote {html}" in result.stdout
    assert "understanding-rl-vision serve" in result.stdout and result.stderr == ""
    again = run_cli("run", str(bundled_agent_path()), "-o", str(tmp_path / "out"), *SMALL_FLAGS)
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"error: output folder {tmp_path / 'out'} exists; pass --overwrite to replace an earlier output of this tool"
    ]


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--layers", "9z"], "9z"),
        (["--env", "ALE/Breakout-v5"], "not ale/breakout-v5"),
        (["--num-steps", "0"], "num_steps must be a positive integer"),
        (["--gamma", "2"], "gamma must lie in [0, 1]"),
    ],
)
def test_bad_settings_are_one_line_exit_2(tmp_path, flags, expected):
    from understanding_rl_vision.demo import bundled_agent_path

    result = run_cli("run", str(bundled_agent_path()), "-o", str(tmp_path / "out"), *SMALL_FLAGS, *flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0].lower(), lines
    assert not (tmp_path / "out").exists()


def test_ctrl_c_mid_run_then_rerun_resumes(tmp_path):
    """A real SIGINT while attribution jobs run: exit 130, no interface.html, and the rerun
    reuses the finished products (it is faster and prints the same success)."""
    import signal
    import time

    from understanding_rl_vision.demo import bundled_agent_path

    out, cache = tmp_path / "out", tmp_path / "out.cache"
    flags = [*SMALL_FLAGS, "--num-envs", "4", "--num-steps", "320"]  # attribution jobs of seconds each
    # A shell that starts a job in the background (nohup, `&`) makes it ignore SIGINT, and children
    # inherit that; give the child the default disposition, so Python turns SIGINT into Ctrl-C.
    process = subprocess.Popen(
        [sys.executable, "-m", "understanding_rl_vision.cli", "run", str(bundled_agent_path()), "-o", str(out), *flags],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # wait (however slow the machine) until some but not all attribution jobs are done
    while not list(cache.glob("*/attribution-*.npz")) and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    assert len(list(cache.glob("*/attribution-*.npz"))) < 8, "too late: every attribution job had finished"
    _, err = process.communicate(timeout=120)
    # Ctrl-C does not wait for the other lane's job (seconds here, minutes at default sizes): it
    # waits 0.5 s for it, then the process exits; 5 s leaves room for a loaded machine.
    assert time.monotonic() - signalled < 5.0
    assert process.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    finished = {p.name for p in cache.glob("*/*.npz")}
    assert len(finished) >= 5 and len(finished) < 2 + 2 + 8  # rollouts, fits, some attribution
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("*/*.npz")}
    result = run_cli("run", str(bundled_agent_path()), "-o", str(out), *flags)
    assert result.returncode == 0, result.stderr
    assert (out / "interface.html").is_file()
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("*/*.npz")}
    assert len(after) == 12 and all(after[name] == stamps[name] for name in finished)  # not recomputed


def test_serve_serves_an_output_folder(tmp_path):
    import urllib.request

    (tmp_path / "interface.html").write_text("<!doctype html><title>t</title>")
    process = subprocess.Popen(
        [sys.executable, "-m", "understanding_rl_vision.cli", "serve", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split(" at ")[1].split(" ")[0]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"<!doctype html><title>t</title>"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_refuses_a_folder_without_an_interface(tmp_path):
    result = run_cli("serve", str(tmp_path))
    assert result.returncode == 2 and "has no interface.html" in result.stderr


def test_demo_without_bundled_agent_says_so(capsys, monkeypatch):
    from understanding_rl_vision import demo

    monkeypatch.setattr(demo, "bundled_agent_path", lambda: None)
    assert main(["demo"]) == 2
    assert "lacks the bundled demo agent" in capsys.readouterr().err
