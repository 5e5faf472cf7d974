"""Explanation methods through the whole pipeline on the bundled agent: the plan, cache, output
and manifest dispatch on each method's declaration; integrated gradients alone keeps format 1's
job names and files; a rerun with one more method computes only that method."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_agent
from understanding_rl_vision.attribution import explain_agent
from understanding_rl_vision.attribution.methods import method_class
from understanding_rl_vision.config import RunConfig
from understanding_rl_vision.contract import check_against_manifest, read_manifest, read_payload
from understanding_rl_vision.contract.codec import display_step
from understanding_rl_vision.errors import ConfigError, UserError
from understanding_rl_vision.pipeline import jobs
from understanding_rl_vision.pipeline.plan import make_plan
from understanding_rl_vision.rollout import Trajectories

METHODS = ("ig", "gradcam", "gradcam-channels", "smoothgrad")
EXPLAIN = ("value", "action")


def job_digest(checkpoint: Path, config: RunConfig, attribution: bool = True) -> tuple[int, str]:
    plan = make_plan(load_agent(checkpoint), config, "0" * 64)
    names = [job.name for job in plan.jobs if attribution or not job.name.startswith("attribution-")]
    return len(names), hashlib.sha256(",".join(names).encode()).hexdigest()[:16]


def test_integrated_gradients_alone_keeps_the_rollout_and_fit_names_of_format_1(checkpoint):
    """Digests of every job name, in order: rollouts and fits as the code before the method registry
    planned them (measured with that code), so an existing cache's are reused; attribution jobs as
    since their product became payload scripts (ATTRIBUTION_FORMAT 2, measured with that code)."""
    assert job_digest(checkpoint, RunConfig(), attribution=False) == (12, "3858bc33e08cfadd")
    assert job_digest(checkpoint, RunConfig()) == (68, "886b1b98d5188b41")
    settings = dict(layers=("2b",), include_input=True, attr_policy=True, ig_steps=3, ig_rule="gauss-legendre")
    assert job_digest(checkpoint, RunConfig().replace(**settings), attribution=False) == (7, "6e1cc0416f779316")
    assert job_digest(checkpoint, RunConfig().replace(**settings)) == (23, "0b193aac568fd7e6")


def test_a_default_run_writes_the_files_and_fields_of_format_1(checkpoint, tmp_path, small):
    out = rl_clarity.run(checkpoint, tmp_path / "out", progress=False, **small).directory / "data"
    manifest_text = (out / "manifest.js").read_text()
    assert '"methods"' not in manifest_text and read_manifest(out).methods == ()
    payloads = sorted(p.name for p in out.glob("attr*.js"))
    assert payloads == [f"attr-{layer}-{t}-0.js" for layer in range(2) for t in range(2)]
    assert all('"key_prefix"' not in (out / name).read_text() for name in payloads)


@pytest.fixture(scope="module")
def methods_run(checkpoint, tmp_path_factory, small):
    out = tmp_path_factory.mktemp("methods") / "out"
    rl_clarity.run(checkpoint, out, progress=False, methods=METHODS, explain=EXPLAIN, noise_samples=2, **small)
    return out


def test_the_manifest_declares_each_method_and_every_payload_agrees(methods_run):
    data = methods_run / "data"
    manifest = read_manifest(data)
    assert manifest.outputs == EXPLAIN
    entries = {m.name: m for m in manifest.methods}
    assert list(entries) == list(METHODS)
    assert [(m.produces, m.layers, m.key_prefix) for m in manifest.methods] == [
        ("channels", (0, 1), "attr"),
        ("map", (0, 1), "m1"),
        ("channels", (0, 1), "m2"),
        ("map", (), "m3"),
    ]
    assert entries["gradcam"].signed is False and entries["smoothgrad"].signed is True
    assert entries["gradcam"].title == "Grad-CAM" and "Selvaraju" in entries["gradcam"].citation
    keys = [
        f"{p}-{layer}-{t}-{o}" for p in ("attr", "m1", "m2") for layer in range(2) for t in range(2) for o in range(2)
    ]
    keys += [f"m3-in-{t}-{o}" for t in range(2) for o in range(2)]
    assert sorted(p.stem for p in data.glob("attr-*.js")) + sorted(p.stem for p in data.glob("m*-*.js")) == sorted(keys)
    for key in keys:
        check_against_manifest(manifest, read_payload(data, key))


def test_maps_are_the_methods_own_results_on_the_trajectory(methods_run, checkpoint):
    """The stored heat maps equal each method's attribute() on the same frames (within the uint8
    quantisation on the display scale), and the ``action`` output is the logit of the action taken at each frame."""
    data = methods_run / "data"
    manifest = read_manifest(data)
    agent = load_agent(checkpoint)
    explained = explain_agent(agent)
    cache = next((methods_run.parent / "out.cache").glob("*"))
    trajectories = next(
        Trajectories(**{k: v for k, v in np.load(p).items() if k != "made_by_rank"})
        for p in cache.glob("trajectories-*.npz")
    )
    inputs = agent.preprocess(trajectories.observations[1])
    actions = torch.as_tensor(trajectories.actions[1])
    layer = manifest.layers[0].name
    cam = method_class("gradcam")()
    expected = cam.attribute(explained, inputs, explained.outputs(EXPLAIN), layer, actions=actions).numpy()
    for o in range(2):
        payload = read_payload(data, f"m1-0-1-{o}")
        stored = payload.positive - payload.negative
        step = display_step(np.maximum(expected[o], 0), np.maximum(-expected[o], 0))
        kept = np.abs(expected[o]) <= 255 * step  # beyond, clipped (display_step)
        assert np.abs(stored - expected[o])[kept].max() <= step / 2 * 1.001 + 1e-12
        assert kept.mean() > 0.999 and expected[o].max() > 0
    logits = [f"logit:{name}" for name in agent.action_names]
    per_logit = cam.attribute(explained, inputs, explained.outputs(logits), layer).numpy()
    taken = per_logit[trajectories.actions[1], np.arange(len(actions))]
    np.testing.assert_allclose(expected[1], taken, rtol=1e-5, atol=1e-6 * np.abs(taken).max())


def test_one_more_method_computes_only_that_method(methods_run, checkpoint, small, monkeypatch):
    calls = {"fit": 0, "attribution": 0, "trajectories": 0}
    for kind, name in [("fit", "run_fit"), ("attribution", "run_attribution"), ("trajectories", "run_trajectories")]:
        real = getattr(jobs, name)

        def counted(*args, _real=real, _kind=kind, **kwargs):
            calls[_kind] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(jobs, name, counted)
    out = methods_run.parent / "more"
    rl_clarity.run(
        checkpoint,
        out,
        progress=False,
        cache_dir=methods_run.parent / "out.cache",
        methods=(*METHODS, "hirescam"),
        explain=EXPLAIN,
        noise_samples=2,
        **small,
    )
    assert calls == {"fit": 0, "attribution": 2 * 2, "trajectories": 0}  # hirescam at 2 layers x 2 trajectories
    manifest = read_manifest(out / "data")
    assert manifest.methods[-1].name == "hirescam" and manifest.methods[-1].key_prefix == "m4"
    before = json.loads((methods_run / "data" / "m1-0-0-0.js").read_text().split(",", 1)[1].rsplit(")", 1)[0])
    after = json.loads((out / "data" / "m1-0-0-0.js").read_text().split(",", 1)[1].rsplit(")", 1)[0])
    assert before == after


def test_method_choices_fail_in_one_line(checkpoint, tmp_path, small):
    with pytest.raises(
        UserError, match="unknown method 'gradcamm'; valid: attention, attention-tree, gradcam, gradcam"
    ):
        rl_clarity.run(checkpoint, tmp_path / "a", progress=False, methods=("gradcamm",), **small)
    with pytest.raises(ConfigError, match="noise_samples is a setting of smoothgrad, smoothgrad-sq, vargrad"):
        rl_clarity.run(checkpoint, tmp_path / "b", progress=False, noise_samples=4, **small)
    with pytest.raises(UserError, match="Integrated gradients explains none of the chosen outputs"):
        rl_clarity.run(checkpoint, tmp_path / "c", progress=False, explain=("actor",), **small)
    with pytest.raises(UserError, match="unknown output 'acton'"):
        rl_clarity.run(checkpoint, tmp_path / "d", progress=False, explain=("acton",), **small)
    assert not any((tmp_path / name).exists() for name in "abcd")
