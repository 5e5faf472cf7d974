"""``edit`` and ``ablate`` end to end on the bundled agent with a tiny run's features, and every
refusal: one ``error:`` line, exit status 2, and no file written over."""

from __future__ import annotations

import copy
import json

import numpy as np
import torch

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.agents.edits import FeatureEdit, apply_edits, model_edits
from understanding_rl_vision.cli import main
from understanding_rl_vision.config import RunConfig
from understanding_rl_vision.contract import read_manifest, read_payload, trajectory_key
from understanding_rl_vision.editing import write_feature_names
from understanding_rl_vision.pipeline import basis as pipeline_basis


def one_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_edit_removes_the_runs_features(checkpoint, tiny_run, tmp_path, capsys):
    out = tmp_path / "edited.safetensors"
    argv = ["edit", str(checkpoint), "--run", str(tiny_run), "--layer", "2b", "--remove-feature", "2"]
    assert main([*argv, "--remove-feature", "feature 3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "removed feature 2, feature 3 of layer 2b (stacks.1.res1)" in printed and f"wrote {out}" in printed
    features = read_manifest(tiny_run / "data").layers[0].features
    loaded = load_checkpoint(out)
    expected = (
        FeatureEdit("stacks.1.res1", features[1].direction, "feature 2"),
        FeatureEdit("stacks.1.res1", features[2].direction, "feature 3"),
    )
    assert model_edits(loaded.model) == expected
    memory = load_checkpoint(checkpoint)
    apply_edits(memory.model, expected)
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        a, b, original = memory(frames), loaded(frames), load_checkpoint(checkpoint)(frames)
    assert torch.allclose(a.value, b.value, atol=1e-5) and torch.allclose(a.logits, b.logits, atol=1e-5)
    assert not torch.allclose(a.value, original.value, atol=1e-3)

    again = tmp_path / "again.safetensors"  # edits compose: the new one joins those already there
    assert main(["edit", str(out), "--run", str(tiny_run), "--remove-feature", "1", "-o", str(again)]) == 0
    assert "kept the 2 edit(s) edited.safetensors already had" in capsys.readouterr().out
    assert model_edits(load_checkpoint(again).model)[:2] == expected
    assert model_edits(load_checkpoint(again).model)[2].layer == "relu"  # the run's default layer, 3c

    assert main(["inspect", str(again)]) == 0
    assert "edit:          stacks.1.res1 without feature 2 (projected out)" in capsys.readouterr().out
    assert main([*argv, "-o", str(out), "--overwrite"]) == 0  # over a checkpoint this tool wrote
    assert len(model_edits(load_checkpoint(out).model)) == 1


def test_feature_names_name_features(checkpoint, tiny_run, tmp_path, capsys):
    names = write_feature_names(tmp_path / "names.json", {"2b": {1: "coin"}})
    out = tmp_path / "no-coin.safetensors"
    argv = ["edit", str(checkpoint), "--run", str(tiny_run), "--layer", "2b", "--feature-names", str(names)]
    assert main([*argv, "--remove-feature", "coin", "-o", str(out)]) == 0
    assert "removed feature 1 (coin) of layer 2b" in capsys.readouterr().out
    assert model_edits(load_checkpoint(out).model)[0].name == "coin"
    (tmp_path / "bad.json").write_text(
        '{"format": "understanding-rl-vision-feature-names", "version": 1, "layers": []}'
    )
    assert "must be an object" in one_error(
        capsys, *argv[:-1], str(tmp_path / "bad.json"), "--remove-feature", "1", "-o", str(tmp_path / "x.safetensors")
    )


def test_edit_refuses_bad_requests(checkpoint, tiny_run, tmp_path, capsys):
    base = ["edit", str(checkpoint), "--run", str(tiny_run), "--remove-feature", "1"]
    foreign = tmp_path / "notes.safetensors"
    foreign.write_text("not a checkpoint")
    assert "is not a checkpoint this tool wrote" in one_error(capsys, *base, "-o", str(foreign), "--overwrite")
    assert foreign.read_text() == "not a checkpoint"
    assert "is the input checkpoint" in one_error(capsys, *base, "-o", str(checkpoint), "--overwrite")
    ours = tmp_path / "ours.safetensors"
    assert main([*base, "-o", str(ours)]) == 0
    assert "exists; --overwrite replaces" in one_error(capsys, *base, "-o", str(ours))
    assert "must be a .safetensors file" in one_error(capsys, *base, "-o", str(tmp_path / "edited.pt"))
    out = str(tmp_path / "new.safetensors")
    assert "'coin' is not a feature of layer 3c" in one_error(
        capsys, "edit", str(checkpoint), "--run", str(tiny_run), "--remove-feature", "coin", "-o", out
    )
    assert "has no layer '1a'" in one_error(capsys, *base, "--layer", "1a", "-o", out)
    assert "is not a finished run" in one_error(
        capsys, "edit", str(checkpoint), "--run", str(tmp_path), "--remove-feature", "1", "-o", out
    )
    assert "no feature-names file" in one_error(
        capsys, *base, "--feature-names", str(tmp_path / "none.json"), "-o", out
    )
    assert not (tmp_path / "new.safetensors").exists()


def test_edit_without_a_run_fits_as_a_run_would(checkpoint, tiny_run, tiny_settings, tmp_path, capsys, monkeypatch):
    """The fit uses a run's settings (here the tiny run's, as it would use the defaults), so
    feature 1 is the run's feature 1."""
    real = pipeline_basis.fit_basis
    small = RunConfig().replace(**tiny_settings)
    monkeypatch.setattr(
        pipeline_basis, "fit_basis", lambda agent, layer, config=None, **kw: real(agent, layer, small, **kw)
    )
    out = tmp_path / "fitted.safetensors"
    assert main(["edit", "bundled", "--layer", "2b", "--remove-feature", "1", "-o", str(out), "--quiet"]) == 0
    assert "features from fitted as a run with the default settings would" in capsys.readouterr().out
    stored = read_manifest(tiny_run / "data").layers[0].features[0].direction
    assert np.allclose(model_edits(load_checkpoint(out).model)[0].direction, stored, atol=1e-6)


def test_ablate_prints_one_json_object(checkpoint, tiny_run, capsys):
    argv = ["ablate", str(checkpoint), "--run", str(tiny_run), "--layer", "2b", "--episodes", "2", "--num-envs", "2"]
    assert main([*argv, "--seed", "1", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["label"] == "2b" and result["layer"] == "stacks.1.res1" and len(result["features"]) == 3
    assert result["original"]["episodes"] == 2 and result["names"] == ["feature 1", "feature 2", "feature 3"]
    assert result["ends"].startswith("level completed")
    assert "at least 2 episodes" in one_error(capsys, *argv[:-4], "--episodes", "1", "--quiet")


def test_an_edited_checkpoint_runs(checkpoint, tiny_run, tiny_settings, tmp_path):
    """`run` takes an edited checkpoint as it is: the page shows the edited agent."""
    out = tmp_path / "edited.safetensors"
    assert main(["edit", str(checkpoint), "--run", str(tiny_run), "--remove-feature", "1", "-o", str(out)]) == 0
    agent = load_checkpoint(out)
    assert len(model_edits(copy.deepcopy(agent).model)) == 1  # a lane's copy keeps the hook's edit
    settings = {**tiny_settings, "layers": ("3c",)}
    rl_clarity.run(out, tmp_path / "page", progress=False, **settings)
    edited_values = read_payload(tmp_path / "page" / "data", trajectory_key(0)).values
    original_values = read_payload(tiny_run / "data", trajectory_key(0)).values
    assert abs(edited_values[0] - original_values[0]) > 1e-3  # the same first frame, another value
