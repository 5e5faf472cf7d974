"""A run with a report card: the job is planned and cached like the others, the manifest carries
the card, evaluate-methods prints it back, and a rerun computes nothing again."""

import json

import pytest

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_agent
from understanding_rl_vision.cli import main
from understanding_rl_vision.config import RunConfig
from understanding_rl_vision.contract import read_manifest
from understanding_rl_vision.pipeline.plan import make_plan


def test_a_run_with_a_report_card(checkpoint, tmp_path, small, capsys):
    settings = dict(small, methods=("ig", "gradient"), report_frames=3, report_steps=4)
    plan = make_plan(load_agent(checkpoint), RunConfig().replace(**settings), "0" * 64)
    assert plan.report is not None and plan.report.needs == (plan.trajectories.name,)
    assert make_plan(load_agent(checkpoint), RunConfig().replace(**small), "0" * 64).report is None

    result = rl_clarity.run(checkpoint, tmp_path / "out", progress=False, **settings)
    card = read_manifest(result.directory / "data").report
    assert card is not None and card.frames == ((0, 0), (1, 0), (1, 11))  # 3 frames spread over 2 x 12
    assert [(row.method, row.site) for row in card.rows] == [
        ("ig", "3c"),
        ("gradient", "input"),
    ]  # the default layer of 2b, 3c
    assert all(len(row.frame_deletion) == 3 and len(row.sanity_spearman) == 18 for row in card.rows)
    layer = read_manifest(result.directory / "data").layers[0]
    assert len(layer.features) == 3 and all(len(f.direction) == layer.shape[0] for f in layer.features)
    assert all(sum(f.direction) == pytest.approx(1.0, abs=1e-4) for f in layer.features)  # NMF components sum to 1

    assert main(["evaluate-methods", str(result.directory), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["frames"] == [[0, 0], [1, 0], [1, 11]] and printed["rows"][0]["method"] == "ig"
    assert main(["evaluate-methods", str(result.directory)]) == 0
    assert "Integrated gradients" in capsys.readouterr().out

    again = rl_clarity.run(checkpoint, tmp_path / "out", progress=False, overwrite=True, resample=False, **settings)
    assert read_manifest(again.directory / "data").report == card  # from the cache: nothing recomputed


def test_evaluate_methods_refuses_a_run_without_a_card(checkpoint, tmp_path, small, capsys):
    result = rl_clarity.run(checkpoint, tmp_path / "plain", progress=False, **small)
    assert main(["evaluate-methods", str(result.directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run in") and "--report-frames" in err and len(err.splitlines()) == 1


def test_feature_names_from_the_pages_file_reach_the_legend(checkpoint, tmp_path, small):
    from understanding_rl_vision.editing.names import write_feature_names

    names = write_feature_names(tmp_path / "names.json", {"3c": {2: "coin"}, "stacks.1.res1": {1: "wall"}})
    result = rl_clarity.run(checkpoint, tmp_path / "out", progress=False, feature_names=str(names), **small)
    layers = {layer.label: layer for layer in read_manifest(result.directory / "data").layers}
    assert [f.name for f in layers["3c"].features] == ["feature 1", "coin", "feature 3"]
    assert [f.name for f in layers["2b"].features] == ["wall", "feature 2", "feature 3"]  # keyed by module name


@pytest.mark.parametrize(
    "names, message",
    [({"1a": {1: "x"}}, r"which this run does not show \(2b, 3c\)"), ({"2b": {4: "x"}}, "the run fits 3 features")],
)
def test_feature_names_that_do_not_fit_the_run_are_refused_before_any_work(checkpoint, tmp_path, small, names, message):
    from understanding_rl_vision.editing.names import write_feature_names
    from understanding_rl_vision.errors import UserError

    path = write_feature_names(tmp_path / "names.json", names)
    with pytest.raises(UserError, match=message):
        rl_clarity.run(checkpoint, tmp_path / "out", progress=False, feature_names=str(path), **small)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.cache").exists()


def test_a_run_with_an_ablation_table(checkpoint, tmp_path, small):
    settings = dict(small, ablation_episodes=4)
    plan = make_plan(load_agent(checkpoint), RunConfig().replace(**settings), "0" * 64)
    assert plan.ablation is not None and plan.ablation.needs == (plan.fit(plan.default_layer).name,)
    result = rl_clarity.run(checkpoint, tmp_path / "out", progress=False, **settings)
    manifest = read_manifest(result.directory / "data")
    ablation = manifest.ablation
    assert ablation is not None and ablation.layer == manifest.default_layer
    assert len(ablation.features) == len(manifest.layers[ablation.layer].features) == 3
    for stats in (ablation.original, *ablation.features):
        assert stats.episodes == 4 and stats.timeouts + stats.deaths + (stats.completion or 0) == pytest.approx(1)
    assert "1000 steps" in ablation.ends
