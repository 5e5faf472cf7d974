"""Checkpoints that cannot be read, hand-edited metadata, half-precision and integer weights,
refused pickles: each ends in one ``error:`` line and exit status 2 through the real command (or
one ``note:`` line and a load), never a traceback or a hang (issue 13)."""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sb3_names import as_sb3_state
from torch import nn

from understanding_rl_vision.agents import (
    ArchitectureSpec,
    build_model,
    describe_file,
    load_agent,
    load_checkpoint,
    make_agent,
    read_checkpoint_metadata,
    save_checkpoint,
)
from understanding_rl_vision.agents.formats import read_foreign
from understanding_rl_vision.agents.rebuild import planned_model
from understanding_rl_vision.cli import main
from understanding_rl_vision.errors import CheckpointError

sys.path.insert(0, str(Path(__file__).parent))
from loader_fuzz import _sb3_data, _torch_bytes

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")  # we make TorchScript files


def _agent():
    return make_agent(
        "impala", None, (8, 8, 3), ["a", "b", "c"], gamma=0.99, lam=0.9, seed=0, channels=[4], hidden_size=8
    )


def _native(tmp_path: Path, config=None, tensors=None) -> Path:
    """Our checkpoint, with the metadata config or the tensors edited as a user might."""
    path = save_checkpoint(_agent(), tmp_path / "agent.safetensors")
    stored, meta = load_file(path), read_checkpoint_metadata(path)
    meta.pop("format_version")
    if config is not None:
        config(meta)
    save_file(
        tensors(stored) if tensors else stored,
        path,
        metadata={"format": "understanding-rl-vision", "format_version": "1", "config": json.dumps(meta)},
    )
    return path


def _one_error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def test_unreadable_paths(tmp_path, capsys, monkeypatch):
    path = save_checkpoint(_agent(), tmp_path / "agent.safetensors")
    denied = f"error: cannot read checkpoint {path}: Permission denied"
    real_stat, real_open = Path.stat, builtins.open

    def stat(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    with monkeypatch.context() as patch:  # tests run as root, where chmod 000 would not stop a read
        patch.setattr(Path, "stat", stat)
        assert _one_error(capsys, "inspect", str(path)) == denied
        assert _one_error(capsys, "evaluate", str(path), "--episodes", "1") == denied

    def opener(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    with monkeypatch.context() as patch:  # the stat succeeds, the open fails
        patch.setattr(builtins, "open", opener)
        assert _one_error(capsys, "inspect", str(path)) == denied
    assert _one_error(capsys, "inspect", str(tmp_path / ("x" * 300))).endswith(": File name too long")
    assert "is a directory, not a file" in _one_error(capsys, "inspect", str(tmp_path))


def test_a_fifo_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "agent.safetensors"
    os.mkfifo(fifo)

    def hung(*_):
        raise TimeoutError("reading the FIFO blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # a regression fails the test instead of hanging it
    try:
        line = _one_error(capsys, "inspect", str(fifo))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert line == f"error: checkpoint is not a regular file (a pipe, socket or device): {fifo}"


EDITS = {
    "gamma": (lambda m: m.update(gamma="x"), "gamma must be a number from 0 to 1, not 'x'"),
    "lam": (lambda m: m.update(lam=None), "lam must be a number from 0 to 1, not None"),
    "lam range": (lambda m: m.update(lam=1.5), "lam must be a number from 0 to 1, not 1.5"),
    "shape": (lambda m: m.update(observation_shape=["8", "8", "3"]), "is not three integers (H, W, C)"),
    "huge shape": (lambda m: m.update(observation_shape=[100000, 100000, 3]), "implausibly large"),
    "names": (lambda m: m.update(action_names="abc"), "action_names must be a list of strings"),
    "preprocessing": (lambda m: m.update(preprocessing=[1]), "preprocessing must be an object"),
    "scale": (lambda m: m.update(preprocessing={"scale": float("inf"), "layout": "NCHW"}), "positive number"),
    "architecture": (lambda m: m.update(architecture="impala"), "bad 'architecture' entry"),
    "kwargs": (lambda m: m["architecture"].update(kwargs={"channels": ["a"]}), "bad 'impala' architecture arguments"),
    "huge kwargs": (lambda m: m["architecture"].update(kwargs={"channels": [100000]}), "parameters, over the"),
    "env field": (
        lambda m: m.update(env_spec={"family": "procgen", "num_levels": "all"}),
        "env_spec num_levels must be a int",
    ),
    "env type": (lambda m: m.update(env_spec=[1]), "env_spec must be an object or null"),
    "extra": (lambda m: m.update(extra=[]), "extra must be an object"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_hand_edited_metadata(tmp_path, edit):
    change, expected = EDITS[edit]
    path = _native(tmp_path, config=change)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_hand_edited_metadata_through_the_command(tmp_path, capsys):
    path = _native(tmp_path, config=EDITS["gamma"][0])
    line = _one_error(capsys, "inspect", str(path))
    assert line == f"error: corrupt checkpoint metadata in {path}: gamma must be a number from 0 to 1, not 'x'"
    with pytest.raises(CheckpointError, match="gamma"):
        read_checkpoint_metadata(path)  # what `demo` and `train --resume` read


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_loads_with_one_note(tmp_path, capsys, dtype):
    path = _native(tmp_path, tensors=lambda t: {k: v.to(dtype) for k, v in t.items()})
    assert main(["inspect", str(path)]) == 0
    name = str(dtype).removeprefix("torch.")
    assert capsys.readouterr().err.splitlines() == [f"note: {path} stores {name} weights; converted to float32"]
    loaded = load_checkpoint(path)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    obs = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    with torch.no_grad():
        ours, theirs = loaded(obs), _agent()(obs)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=0.05, rtol=0.05)  # half precision rounds
    assert (ours.logits - theirs.logits).abs().max() > 0  # it really was rounded: the file really was half


def test_integer_weights_are_refused(tmp_path, capsys):
    path = _native(tmp_path, tensors=lambda t: {k: (v * 100).to(torch.int8) for k, v in t.items()})
    line = _one_error(capsys, "inspect", str(path))
    assert f"error: {path} stores int8 weights" in line and "only floating-point weights" in line


def _sb3_zip(tmp_path: Path, edit=None, state=None) -> Path:
    model = build_model(ArchitectureSpec("nature", {"hidden_size": 8}), (36, 36, 1), 3)
    weights = state or as_sb3_state(model)
    data = _sb3_data()
    if edit:
        edit(data)
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("policy.pth", _torch_bytes(weights))
    return path


def test_sb3_data_with_bad_fields(tmp_path, capsys):
    assert describe_file(_sb3_zip(tmp_path))["num_actions"] == 3  # the unedited zip is read
    path = _sb3_zip(tmp_path, lambda d: d["observation_space"].update(_shape=["a", 36, 36]))
    line = _one_error(capsys, "inspect", str(path))
    assert line == (
        f"error: corrupt Stable-Baselines3 zip {path}: the observation space's _shape "
        "['a', 36, 36] is not a list of sizes"
    )
    path = _sb3_zip(tmp_path, lambda d: d["action_space"].update(n=float("inf")))
    assert "the action space's n inf is not a count" in _one_error(capsys, "inspect", str(path))
    path = _sb3_zip(tmp_path, lambda d: d.update(gamma="x"))
    assert "gamma must be a number from 0 to 1" in _one_error(capsys, "inspect", str(path))
    path = _sb3_zip(tmp_path, lambda d: d["observation_space"].update(_shape=[1, 100000, 100000]))
    assert "implausibly large" in _one_error(capsys, "inspect", str(path))


def test_refused_pickles_never_suggest_unpickling(tmp_path, capsys):
    torch.save({"conv.weight": torch.zeros(1), "head": nn.Linear(2, 2)}, tmp_path / "evil.pth")
    line = _one_error(capsys, "inspect", str(tmp_path / "evil.pth"))
    assert "pickled Python objects (torch.nn.modules.linear.Linear), which this tool never loads" in line
    assert "weights_only" not in line and "can still be loaded" not in line
    path = _sb3_zip(tmp_path, state={"action_net.weight": torch.zeros(3, 8), "code": nn.ReLU()})
    line = _one_error(capsys, "inspect", str(path))
    assert f"cannot read policy.pth in {path}: it holds pickled Python objects" in line
    assert "weights_only" not in line


def test_torchscript_sidecar_fields_are_checked(tmp_path):
    torch.jit.trace(nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 8, 8)).save(str(tmp_path / "model.pt"))
    for meta, expected in [
        ({"gamma": "x"}, "gamma must be a number"),
        ({"scale": 0}, "positive number"),
        ({"env": 5}, "env must be a string"),
        ("[" * 50_000, "nested too deeply"),
    ]:
        (tmp_path / "model.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
        with pytest.raises(CheckpointError, match=expected) as caught:
            read_foreign(tmp_path / "model.pt")
        assert "model.json" in str(caught.value)


class _LogitsOnly(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_a_torchscript_module_that_fails_is_refused_when_loaded(tmp_path):
    torch.jit.script(_LogitsOnly()).save(str(tmp_path / "odd.pt"))
    with pytest.raises(CheckpointError, match=r"odd.pt fails on observations of shape \(2, 64, 64, 3\)"):
        load_agent(tmp_path / "odd.pt", env="coinrun")


def test_a_legacy_pickle_declaring_huge_storages_is_refused_unread(tmp_path, monkeypatch):
    legacy = io.BytesIO()
    torch.save({"w": torch.zeros(10)}, legacy, _use_new_zipfile_serialization=False)
    (tmp_path / "ok.pth").write_bytes(legacy.getvalue())
    declared = legacy.getvalue().replace(b"K\nN", b"\x8a\x05" + (2**36).to_bytes(5, "little") + b"N")
    (tmp_path / "big.pth").write_bytes(declared)
    with pytest.raises(CheckpointError, match="matches no layout"):  # read (the control), then not recognised
        read_foreign(tmp_path / "ok.pth")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(CheckpointError, match=r"declares 274,877,906,944 bytes of tensors in a \d+-byte file"):
        read_foreign(tmp_path / "big.pth")


def test_our_own_state_dicts_are_recognised(tmp_path):
    agent = make_agent("impala", None, (64, 64, 3), [str(i) for i in range(15)], seed=0, hidden_size=32)
    torch.save(agent.model.state_dict(), tmp_path / "impala.pth")
    report = describe_file(tmp_path / "impala.pth")
    assert report["layout"] == "understanding-rl-vision impala"
    assert report["architecture"] == {"name": "impala", "kwargs": {"channels": [16, 32, 32], "hidden_size": 32}}


class _Wide(nn.Module):
    """The Nature CNN on 84x100 frames: no square input size fits its dense layer."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(4, 32, 8, 4), nn.Conv2d(32, 64, 4, 2), nn.Conv2d(64, 64, 3)
        self.fc, self.policy, self.value = nn.Linear(64 * 7 * 9, 16), nn.Linear(16, 4), nn.Linear(16, 1)


def test_non_square_frames_without_an_env_give_a_note(tmp_path):
    torch.save(_Wide().state_dict(), tmp_path / "wide.pth")
    report = describe_file(tmp_path / "wide.pth")
    assert report["layout"] == "understanding-rl-vision nature" and "layers" not in report
    assert "fc.weight (16, 4032) vs (16, 3136) expected" in report["note"] and "--env" in report["note"]


@pytest.mark.parametrize(
    ("name", "shape", "kwargs"),
    [
        ("nature", (84, 84, 4), {}),
        ("impala", (64, 64, 3), {}),
        ("impala", (512, 512, 3), {}),
        ("impala", (64, 64, 3), {"channels": [64, 128, 128]}),
    ],
)
def test_the_caps_admit_real_agents(name, shape, kwargs):
    with torch.device("meta"):
        plan = build_model(ArchitectureSpec(name, kwargs), shape, 18)
    shapes = {k: tuple(v.shape) for k, v in plan.state_dict().items()}
    model = planned_model(ArchitectureSpec(name, kwargs), shape, 18, shapes, "test", "misfit")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    assert next(model.parameters()).device.type == "cpu"
