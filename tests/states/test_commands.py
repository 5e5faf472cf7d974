"""``states train`` and ``states measure`` through the CLI, on the bundled CoinRun agent with tiny
settings (64 frames, one or two epochs, one or two episodes), trained once for the module."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import pytest

from understanding_rl_vision.cli import main
from understanding_rl_vision.states import read_header

TINY = ["--num-frames", "64", "--num-envs", "4", "--epochs", "1", "--batch-size", "16", "--quiet"]


def exit_code(argv: list[str]) -> int:
    """``main``'s status, parser errors (which exit through SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def fails_with_one_line(capsys, argv: list[str], *words: str) -> str:
    capsys.readouterr()
    assert exit_code(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
    for word in words:
        assert word in lines[0]
    assert captured.out == ""
    return lines[0]


def test_every_generator_field_is_a_flag_of_the_same_name(capsys):
    from dataclasses import fields

    from understanding_rl_vision.common.flags import field_docs
    from understanding_rl_vision.states import GeneratorConfig

    assert exit_code(["states", "train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for f in fields(GeneratorConfig):
        assert f"--{f.name.replace('_', '-')}" in help_text, f.name
        assert field_docs(GeneratorConfig)[f.name], f"{f.name} has no docstring for its help"
        assert f"(default: {f.default})" in help_text, f.name
    for flag in ("--save-dir", "--resume", "--quiet", "--env", "--no-guided"):
        assert flag in help_text


def test_generator_flags_become_typed_settings():
    from understanding_rl_vision.cli import build_parser
    from understanding_rl_vision.common.flags import settings_from_args

    args = build_parser().parse_args(
        ["states", "train", "x", "--save-dir", "d", "--epochs", "3", "--learning-rate", "1e-4", "--no-guided"]
    )
    assert settings_from_args(args) == {"epochs": 3, "learning_rate": 1e-4, "guided": False}


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory) -> tuple[Path, list[str]]:
    """A generator trained one epoch, then resumed to two; with what each command printed."""
    save_dir = tmp_path_factory.mktemp("states") / "generator"
    printed = []
    for argv in (
        ["states", "train", "bundled:coinrun", "--save-dir", str(save_dir), *TINY],
        ["states", "train", "bundled:coinrun", "--save-dir", str(save_dir), "--resume", "--epochs", "2", "--quiet"],
    ):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0
        printed.append(out.getvalue())
    return save_dir, printed


def test_train_then_resume_keeps_the_saved_settings(generator_dir):
    save_dir, printed = generator_dir
    assert printed == [f"generator: {save_dir / 'generator.safetensors'}\n"] * 2
    with open(save_dir / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    header = read_header(save_dir)
    assert header["extra"]["epochs"] == 2
    # the resumed run kept its saved settings, changed only by the flag given
    assert header["config"]["num_frames"] == 64 and header["config"]["batch_size"] == 16
    assert header["config"]["epochs"] == 2


def test_measure_json_reports_goggles_and_real(generator_dir, capsys):
    save_dir, _ = generator_dir
    argv = ["states", "measure", "bundled:coinrun", "--generator", str(save_dir)]
    assert main([*argv, "--episodes", "2", "--num-envs", "2", "--json", "--real", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)  # exactly one object
    assert report["generator"] == str(save_dir / "generator.safetensors")
    assert report["epochs"] == 2 and report["episodes"] == 2
    header = read_header(save_dir)["extra"]
    for key in ("heldout_psnr", "heldout_saliency_psnr", "heldout_action_agreement"):
        assert report[key] == pytest.approx(header[key])
    numbers = (
        "heldout_psnr",
        "goggles_mean_return",
        "goggles_std_return",
        "real_mean_return",
        "real_std_return",
        "random_mean_return",
    )
    for key in numbers:
        assert isinstance(report[key], float) and math.isfinite(report[key]), key
    if report["real_mean_return"]:
        assert report["ratio"] == pytest.approx(report["goggles_mean_return"] / report["real_mean_return"])
    else:
        assert report["ratio"] is None


def test_measure_table_without_real(generator_dir, capsys):
    save_dir, _ = generator_dir
    argv = ["states", "measure", "bundled:coinrun", "--generator", str(save_dir)]
    assert main([*argv, "--episodes", "1", "--num-envs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained           2 epochs" in out and "held-out PSNR" in out
    columns = next(line for line in out.splitlines() if "goggles" in line and "random" in line)
    assert columns.split() == ["goggles", "random"]
    assert "mean return" in out and "goggles / real" not in out


def test_measure_refuses_a_generator_of_another_agent(generator_dir, capsys):
    save_dir, _ = generator_dir
    argv = ["states", "measure", "bundled:breakout-attention", "--generator", str(save_dir), "--quiet"]
    fails_with_one_line(capsys, argv, "another agent")


def test_measure_needs_a_generator(tmp_path, capsys):
    argv = ["states", "measure", "bundled:coinrun", "--generator", str(tmp_path / "none"), "--quiet"]
    fails_with_one_line(capsys, argv, "no generator at")


def test_train_refuses_a_folder_that_holds_one(generator_dir, capsys):
    save_dir, _ = generator_dir
    before = snapshot(save_dir)
    fails_with_one_line(capsys, ["states", "train", "bundled:coinrun", "--save-dir", str(save_dir), *TINY], "--resume")
    assert snapshot(save_dir) == before


def test_resume_refuses_another_agent_and_new_settings(generator_dir, capsys):
    save_dir, _ = generator_dir
    before = snapshot(save_dir)
    resume = ["states", "train", "--save-dir", str(save_dir), "--resume", "--quiet"]
    fails_with_one_line(capsys, [*resume, "bundled:breakout-attention"], "another agent")
    fails_with_one_line(capsys, [*resume, "bundled:coinrun", "--latent-size", "8"], "latent_size")
    assert snapshot(save_dir) == before


def test_resume_needs_a_saved_training(tmp_path, capsys):
    argv = ["states", "train", "bundled:coinrun", "--save-dir", str(tmp_path), "--resume", "--quiet"]
    fails_with_one_line(capsys, argv, "nothing to resume")


def test_train_refuses_a_recurrent_agent(tmp_path, capsys):
    save_dir = tmp_path / "generator"
    argv = ["states", "train", "bundled:breakout-lstm", "--save-dir", str(save_dir), *TINY]
    fails_with_one_line(capsys, argv, "recurrent")
    assert not save_dir.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["states"],
        ["states", "sample"],
        ["states", "train", "bundled:coinrun", "--save-dir", "d", "--no-such-flag"],
        ["states", "train", "bundled:coinrun"],
        ["states", "train", "bundled:coinrun", "--save-dir", "d", "--epochs", "many"],
        ["states", "train", "bundled:coinrun", "--save-dir", "d", "--epochs", "0"],
        ["states", "measure", "bundled:coinrun"],
        ["states", "measure", "bundled:coinrun", "--generator", "g", "--episodes", "two"],
    ],
)
def test_bad_flags_exit_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fails_with_one_line(capsys, argv)
    assert not any(tmp_path.iterdir())
