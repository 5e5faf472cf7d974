"""rl_clarity.run end to end on the bundled agent with tiny settings: the output agrees with its
manifest, reruns and --no-resample reuse the cache, an interruption resumes without redoing
finished jobs, and faults end in one clear error with nothing half-written that looks complete."""

import errno
import gc
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_checkpoint, save_checkpoint
from understanding_rl_vision.contract import (
    attribution_key,
    check_against_manifest,
    feature_key,
    read_manifest,
    read_payload,
    trajectory_key,
)
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.pipeline import jobs


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def count_jobs(monkeypatch) -> dict[str, int]:
    """Count the jobs that actually compute (patched wrappers around the real functions)."""
    calls = {"trajectories": 0, "observations": 0, "fit": 0, "attribution": 0}
    for kind, name in [
        ("trajectories", "run_trajectories"),
        ("observations", "run_observations"),
        ("fit", "run_fit"),
        ("attribution", "run_attribution"),
    ]:
        real = getattr(jobs, name)

        def counted(*args, _real=real, _kind=kind, **kwargs):
            calls[_kind] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(jobs, name, counted)
    return calls


@pytest.fixture(scope="module")
def first_run(checkpoint, tmp_path_factory, small):
    out = tmp_path_factory.mktemp("run") / "out"
    result = rl_clarity.run(checkpoint, out, progress=False, **small)
    return out, result


def test_the_output_agrees_with_its_manifest(first_run):
    out, result = first_run
    assert result.path == out / "interface.html" and result.path.is_file()
    data = out / "data"
    manifest = read_manifest(data)
    assert manifest.outputs == ("value",)
    assert [layer.label for layer in manifest.layers] == ["2b", "3c"] and manifest.default_layer == 1
    assert manifest.trajectory_lengths == (12, 12)
    keys = [trajectory_key(t) for t in range(2)]
    keys += [feature_key(i, f) for i in range(2) for f in range(len(manifest.layers[i].features))]
    keys += [attribution_key(i, t, 0) for i in range(2) for t in range(2)]
    for key in keys:
        check_against_manifest(manifest, read_payload(data, key))
    assert manifest.agent == "agent.safetensors" and manifest.fps == 12.0
    assert all(b.advantage > 0 for b in manifest.bookmarks if b.kind == "high")
    cache = out.parent / "out.cache"
    assert len(list(cache.glob("*/*.npz"))) == 2 + 2 + 4  # rollouts, fits, attribution jobs
    assert not list(cache.glob("*/.claims-*"))  # claim files are removed after a run
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "out.cache"]


def test_a_rerun_computes_nothing_and_writes_the_same_bytes(first_run, checkpoint, tmp_path, monkeypatch, small):
    out, _ = first_run
    calls = count_jobs(monkeypatch)
    again = tmp_path / "again"
    rl_clarity.run(checkpoint, again, cache_dir=out.parent / "out.cache", progress=False, **small)
    assert calls == {"trajectories": 0, "observations": 0, "fit": 0, "attribution": 0}
    assert tree_digest(again) == tree_digest(out)


def test_no_resample_rebuilds_from_the_cache_and_takes_new_page_settings(first_run, checkpoint, monkeypatch, small):
    out, _ = first_run
    calls = count_jobs(monkeypatch)
    rl_clarity.run(checkpoint, out, resample=False, overwrite=True, progress=False, fps=5.0, **small)
    assert sum(calls.values()) == 0
    assert read_manifest(out / "data").fps == 5.0
    with pytest.raises(UserError, match=r"--no-resample: 6 of 8 products .* not in the cache"):
        rl_clarity.run(checkpoint, out, resample=False, overwrite=True, progress=False, **{**small, "nmf_features": 2})
    assert read_manifest(out / "data").fps == 5.0  # the failed run left the output alone


def test_an_interrupted_run_leaves_no_output_and_resumes_without_redoing_jobs(checkpoint, tmp_path, monkeypatch, small):
    out = tmp_path / "out"
    calls = count_jobs(monkeypatch)
    real = jobs.run_attribution

    def interrupted(*args, **kwargs):
        if calls["attribution"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "run_attribution", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rl_clarity.run(checkpoint, out, progress=False, **small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.cache"]  # no output, no partial folder
    finished = dict(calls)
    assert finished == {"trajectories": 1, "observations": 1, "fit": 2, "attribution": 3}

    calls = count_jobs(monkeypatch)
    rl_clarity.run(checkpoint, out, progress=False, **small)
    assert calls == {"trajectories": 0, "observations": 0, "fit": 0, "attribution": 1}  # only the unfinished
    assert (out / "interface.html").is_file()


def test_an_existing_output_is_refused_unless_overwrite(first_run, checkpoint, tmp_path, small):
    out, cache = tmp_path / "out", first_run[0].parent / "out.cache"
    rl_clarity.run(checkpoint, out, cache_dir=cache, progress=False, **small)
    before = tree_digest(out)
    with pytest.raises(UserError, match="exists; pass --overwrite to replace an earlier output"):
        rl_clarity.run(checkpoint, out, cache_dir=cache, progress=False, **{**small, "fps": 3.0})
    assert tree_digest(out) == before
    rl_clarity.run(checkpoint, out, cache_dir=cache, overwrite=True, progress=False, **{**small, "fps": 3.0})
    assert read_manifest(out / "data").fps == 3.0
    (out / "notes.txt").write_text("mine")  # a file of the user's makes it no longer ours alone
    with pytest.raises(UserError, match=r"holds 1 file\(s\) \(notes.txt\) that this tool did not write"):
        rl_clarity.run(checkpoint, out, cache_dir=cache, overwrite=True, progress=False, **small)
    assert (out / "notes.txt").read_text() == "mine" and read_manifest(out / "data").fps == 3.0


def test_disk_full_while_exporting_keeps_the_previous_output(first_run, checkpoint, tmp_path, monkeypatch, small):
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    before = tree_digest(out)
    from understanding_rl_vision.pipeline import output

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "data/attr-1-0-0.js")

    monkeypatch.setattr(output, "write_script", full)  # the attribution payloads
    with pytest.raises(UserError, match="cannot write data/attr-1-0-0.js: No space left on device"):
        rl_clarity.run(
            checkpoint, out, cache_dir=first_run[0].parent / "out.cache", overwrite=True, progress=False, **small
        )
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_disk_full_while_caching_leaves_no_damaged_product(checkpoint, tmp_path, monkeypatch, small):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    unraisable = []
    monkeypatch.setattr(np.lib.format, "write_array", full)
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)
    with pytest.raises(
        UserError, match=r"cannot write .*out\.cache/\w+/(trajectories|observations)-\w+\.npz: No space left"
    ):
        rl_clarity.run(checkpoint, tmp_path / "out", progress=False, **small)
    gc.collect()
    assert unraisable == []  # no half-open zip file whose late close prints "Exception ignored"
    assert not list((tmp_path / "out.cache").rglob("*.npz")) and not (tmp_path / "out").exists()
    assert not [p for p in (tmp_path / "out.cache").rglob("*") if p.is_file()]  # no temporary left


def test_nan_in_the_model_is_one_clear_error(checkpoint, tmp_path, small):
    agent = load_checkpoint(checkpoint)
    with torch.no_grad():
        for parameter in agent.model.parameters():
            parameter.fill_(float("nan"))
    broken = save_checkpoint(agent, tmp_path / "nan.safetensors")
    with pytest.raises(UserError, match="NaN or infinite"):
        rl_clarity.run(broken, tmp_path / "out", progress=False, **small)
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "out.cache").glob("*/.claims-*"))  # a failed run leaves no claims folder


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"layers": ("9z",)}, r"9z.*(2b|stacks)"),
        ({"env": "starpilot"}, "trained on procgen:coinrun, not procgen:starpilot"),
        ({"env": "nosuchgame"}, "nosuchgame"),
        ({"row_outputs": ("logit:LEFT",)}, "add --attr-policy"),
        ({"device": "cuda:7"}, "cuda:7"),
        ({"default_layer": "1a"}, "not among the chosen layers"),
        ({"nmf_featurez": 3}, "unknown setting nmf_featurez; valid: num_envs"),
    ],
)
def test_bad_settings_are_one_clear_error(checkpoint, tmp_path, settings, message, small):
    with pytest.raises(UserError, match=message):
        rl_clarity.run(checkpoint, tmp_path / "out", progress=False, **{**small, **settings})
    assert list(tmp_path.iterdir()) == []


def test_the_result_displays_the_page_in_a_notebook(first_run):
    import urllib.request

    _, result = first_run
    html = result._repr_html_()
    url = html.split('src="')[1].split('"')[0]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/interface.html")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200 and b"agent.safetensors" in response.read()
    with urllib.request.urlopen(url.replace("interface.html", "data/manifest.js"), timeout=10) as response:
        assert response.read().startswith(b"window.__rlv_receive(")


def test_jobs_compute_on_one_thread_in_one_lane_per_core(checkpoint, tmp_path, monkeypatch, small):
    """Products must be the same bytes from one process or N ranks, and torch's CPU results depend
    on the thread count; so every job runs on one thread, the process's cores run one lane each,
    and the caller's thread setting comes back."""
    import os
    import threading

    seen = []
    for name in ("run_trajectories", "run_observations", "run_fit", "run_attribution"):
        real = getattr(jobs, name)

        def spy(*args, _real=real, **kwargs):
            seen.append((threading.get_ident(), torch.get_num_threads()))
            return _real(*args, **kwargs)

        monkeypatch.setattr(jobs, name, spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rl_clarity.run(checkpoint, tmp_path / "out", progress=False, **small)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(seen) == 1 + 1 + 2 + 4 and {threads for _, threads in seen} == {1}
    lanes, cores = len({lane for lane, _ in seen}), len(os.sched_getaffinity(0))
    assert lanes == 1 if cores == 1 else 2 <= lanes <= cores  # two lanes start at once: both get work
