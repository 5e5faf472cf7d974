"""The command line: help, not-yet-landed commands, bad checkpoints. No tracebacks."""

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


@pytest.mark.parametrize("command", ["serve"])
def test_commands_not_landed_exit_2_and_say_so(command, capsys):
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("not implemented yet: see README")
    assert len(err.strip().splitlines()) == 1


def bad_checkpoints(tmp_path):
    import torch

    pickle_path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickle_path)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x13\x00\x00\x00\x00\x00\x00\x00{not json at all}   ")
    return {
        "missing": (tmp_path / "nope.safetensors", "not found"),
        "corrupt": (corrupt, ""),
        "pickle": (pickle_path, "pickle"),
    }


@pytest.mark.parametrize("case", ["missing", "corrupt", "pickle"])
def test_run_with_bad_checkpoint_is_one_line_exit_2(tmp_path, case):
    path, expected = bad_checkpoints(tmp_path)[case]
    result = run_cli("run", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert expected in lines[0].lower()


def test_run_with_valid_checkpoint_gets_past_loading(tmp_path, coinrun_agent, capsys):
    from understanding_rl_vision.agents import save_checkpoint

    path = save_checkpoint(coinrun_agent, tmp_path / "agent.safetensors")
    assert main(["run", str(path)]) == 2
    assert "interface is not implemented yet" in capsys.readouterr().err


def test_demo_without_bundled_agent_says_so(capsys, monkeypatch):
    from understanding_rl_vision import demo

    monkeypatch.setattr(demo, "bundled_agent_path", lambda: None)
    assert main(["demo"]) == 2
    assert "no bundled agent yet" in capsys.readouterr().err
