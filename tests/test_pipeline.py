"""write_interface on a real small run: every payload the manifest promises exists and agrees
with it, and a failure leaves neither a half-written output nor temporary directories."""

import pytest

from understanding_rl_vision.attribution import discover_layers
from understanding_rl_vision.config import ObservationSetConfig, ReductionConfig, TrajectoryConfig
from understanding_rl_vision.export import (
    attribution_key,
    check_against_manifest,
    feature_key,
    read_manifest,
    read_payload,
    trajectory_key,
)
from understanding_rl_vision.pipeline import write_interface
from understanding_rl_vision.rollout import collect_observation_set, collect_trajectories


@pytest.fixture(scope="module")
def run_inputs(coinrun_agent):
    trajectories = collect_trajectories(coinrun_agent, TrajectoryConfig(num_envs=2, num_steps=6), seed=0, progress=False)
    observation_set = collect_observation_set(coinrun_agent, ObservationSetConfig(num_envs=2, num_obs=4, obs_every=2),
                                              seed=1, progress=False)  # fmt: skip
    layers = discover_layers(coinrun_agent.model, coinrun_agent.preprocess(observation_set[:1]))
    return {"trajectories": trajectories, "observation_set": observation_set, "layers": [layers[3], layers[6]],
            "default_layer": 0, "reduction": ReductionConfig(num_features=3), "num_bookmarks": 2}  # fmt: skip


def test_every_promised_payload_exists_and_agrees_with_the_manifest(coinrun_agent, run_inputs, tmp_path):
    html = write_interface(coinrun_agent, tmp_path / "out", outputs=["value", "logit:RIGHT", "group:LEFT"],
                           env_id="coinrun", title="test", **run_inputs)  # fmt: skip
    data = html.parent / "data"
    manifest = read_manifest(data)
    assert manifest.outputs == ("value", "logit:RIGHT", "group:LEFT")
    assert [layer.label for layer in manifest.layers] == ["2b", "3c"]
    assert manifest.trajectory_lengths == (6, 6) and len(manifest.layers[0].features) == 3
    keys = [trajectory_key(t) for t in range(2)]
    keys += [feature_key(l, f) for l in range(2) for f in range(3)]
    keys += [attribution_key(l, t, o) for l in range(2) for t in range(2) for o in range(3)]
    for key in keys:
        check_against_manifest(manifest, read_payload(data, key))
    assert "<script>" in html.read_text() and html.stat().st_mode & 0o044  # readable by a web server
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failure_midway_leaves_the_previous_output_and_no_partial_directory(coinrun_agent, run_inputs, tmp_path,
                                                                                monkeypatch):  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    (out / "interface.html").write_text("previous run")
    from understanding_rl_vision import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "write_manifest", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_interface(coinrun_agent, out, outputs="value", **run_inputs)
    assert (out / "interface.html").read_text() == "previous run"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
