"""Native checkpoints: exact round trips, atomic writes, and one-line errors for bad files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import understanding_rl_vision
from understanding_rl_vision.agents import (
    ArchitectureSpec,
    load_checkpoint,
    make_agent,
    read_checkpoint_metadata,
    save_checkpoint,
)
from understanding_rl_vision.agents import checkpoint as checkpoint_module
from understanding_rl_vision.envs.spec import AtariSpec, ProcgenSpec
from understanding_rl_vision.errors import CheckpointError, UserError

PROCGEN_ACTIONS = (
    "LEFT+DOWN",
    "LEFT",
    "LEFT+UP",
    "DOWN",
    "NOOP",
    "UP",
    "RIGHT+DOWN",
    "RIGHT",
    "RIGHT+UP",
    "D",
    "A",
    "W",
    "S",
    "Q",
    "E",
)
ATARI_ACTIONS = ("NOOP", "FIRE", "RIGHT", "LEFT")
CASES = {
    "impala": (ProcgenSpec(game="coinrun", distribution_mode="easy"), (64, 64, 3), PROCGEN_ACTIONS),
    "clear": (ProcgenSpec(game="bigfish", num_levels=200), (64, 64, 3), PROCGEN_ACTIONS),
    "nature": (AtariSpec(game="Breakout"), (84, 84, 4), ATARI_ACTIONS),
}


def _agent(name: str = "impala", seed: int = 0):
    env, shape, actions = CASES[name]
    return make_agent(name, env, shape, actions, gamma=0.99, lam=0.9, seed=seed)


def _saved(tmp_path: Path, name: str = "impala") -> Path:
    return save_checkpoint(_agent(name), tmp_path / f"{name}.safetensors")


def _rewrite(path: Path, mutate_config=None, mutate_tensors=None, **meta_overrides) -> Path:
    """Re-save a checkpoint with edited metadata or tensors (to build bad files)."""
    tensors = load_file(path)
    meta = read_checkpoint_metadata(path)
    meta.pop("format_version")
    if mutate_config:
        mutate_config(meta)
    if mutate_tensors:
        mutate_tensors(tensors)
    metadata = {
        "format": "understanding-rl-vision",
        "format_version": "1",
        "config": json.dumps(meta),
        **meta_overrides,
    }
    save_file(tensors, path, metadata=metadata)
    return path


def _error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message and "\n" not in message, message
    assert isinstance(info.value, UserError)
    return message


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    agent = _agent(name)
    path = save_checkpoint(agent, tmp_path / "agent.safetensors", extra={"step": 12345})
    assert path == tmp_path / "agent.safetensors"
    loaded = load_checkpoint(path)
    rng = np.random.default_rng(1)
    obs = rng.integers(0, 256, size=(4, *agent.observation_shape), dtype=np.uint8)
    before, after = agent(obs), loaded(obs)
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.value, after.value)
    original = agent.model.state_dict()
    assert all(torch.equal(original[k], v) for k, v in loaded.model.state_dict().items())
    assert type(loaded.model) is type(agent.model) and not loaded.model.training

    env, shape, actions = CASES[name]
    assert loaded.action_names == actions and loaded.observation_shape == shape
    assert loaded.gamma == 0.99 and loaded.lam == 0.9
    assert loaded.env_spec == env
    assert loaded.architecture == agent.architecture == ArchitectureSpec(name, {})
    assert loaded.preprocessing == agent.preprocessing

    meta = read_checkpoint_metadata(path)
    assert meta["architecture"] == {"name": name, "kwargs": {}}
    assert meta["observation_shape"] == list(shape)
    assert meta["action_names"] == list(actions)
    assert meta["env_spec"]["family"] == env.family
    assert meta["gamma"] == 0.99 and meta["lam"] == 0.9
    assert meta["preprocessing"] == {"scale": 1 / 255, "layout": "NCHW"}
    assert meta["library_version"] == understanding_rl_vision.__version__
    assert meta["extra"] == {"step": 12345}
    assert meta["format_version"] == 1


def test_round_trip_keeps_architecture_kwargs_and_null_env(tmp_path: Path) -> None:
    agent = make_agent("impala", None, (32, 48, 3), ["A", "B"], seed=3, channels=(4, 8), hidden_size=32)
    loaded = load_checkpoint(save_checkpoint(agent, tmp_path / "small.safetensors"))
    assert loaded.env_spec is None
    assert loaded.architecture == agent.architecture
    assert loaded.model.fc.in_features == agent.model.fc.in_features
    x = torch.rand(2, 3, 32, 48)
    assert torch.equal(agent.model(x)[0], loaded.model(x)[0])


def test_checkpoint_sizes_are_the_weights(tmp_path: Path) -> None:
    for name in CASES:
        path = _saved(tmp_path, name)
        weights = sum(p.numel() * 4 for p in _agent(name).model.state_dict().values())
        assert weights < path.stat().st_size < weights + 8192


def test_atomic_write_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _saved(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["impala.safetensors"]
    good = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # e.g. the user hits Ctrl-C mid-write

    monkeypatch.setattr(checkpoint_module, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_agent(seed=1), path)
    assert sorted(os.listdir(tmp_path)) == ["impala.safetensors"]
    assert path.read_bytes() == good  # the old checkpoint is untouched


def test_save_creates_parents_and_handles_shared_and_strided_tensors(tmp_path: Path) -> None:
    agent = _agent("nature")
    model = agent.model
    model.value.weight = nn.Parameter(model.policy.weight.detach()[:1])  # shares policy's storage
    model.fc.weight = nn.Parameter(model.fc.weight.detach().t().contiguous().t())  # transposed
    assert not model.fc.weight.is_contiguous()
    assert model.value.weight.data_ptr() == model.policy.weight.data_ptr()
    path = save_checkpoint(agent, tmp_path / "deep" / "dir" / "agent.safetensors")
    loaded = load_checkpoint(path)
    obs = np.zeros((1, 84, 84, 4), dtype=np.uint8)
    assert torch.equal(agent(obs).logits, loaded(obs).logits)
    assert torch.equal(agent(obs).value, loaded(obs).value)


def test_save_refuses_bad_input(tmp_path: Path) -> None:
    agent = _agent()
    with pytest.raises(UserError, match="JSON"):
        save_checkpoint(agent, tmp_path / "a.safetensors", extra={"bad": object()})
    with pytest.raises(UserError, match="directory"):
        save_checkpoint(agent, tmp_path)
    agent.architecture = None
    with pytest.raises(UserError, match="Bring your own agent"):
        save_checkpoint(agent, tmp_path / "b.safetensors")
    assert os.listdir(tmp_path) == []


def test_missing_directory_empty(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    assert _error(missing) == f"checkpoint not found: {missing}"
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint_metadata(missing)
    _saved(tmp_path)
    message = _error(tmp_path)
    assert "is a directory" in message and "impala.safetensors" in message
    empty = tmp_path / "empty.safetensors"
    empty.touch()
    assert "empty" in _error(empty)


def test_truncated_and_random_files(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = path.read_bytes()
    half = tmp_path / "half.safetensors"
    half.write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(half)
    header_cut = tmp_path / "header_cut.safetensors"
    header_cut.write_bytes(data[:100])
    assert "truncated" in _error(header_cut)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    assert "not a safetensors file" in _error(tiny)
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "not a safetensors file" in _error(noise)
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(data[:8] + b"{" + b"\xff" * (len(data) - 9))
    assert "corrupt" in _error(garbled)


def test_foreign_safetensors_file(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, plain)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, other, metadata={"format": "pt"})
    for path in (plain, other):
        message = _error(path)
        assert "not an understanding-rl-vision checkpoint" in message
        assert "Bring your own agent" in message


class _Bait:
    """Unpickling this creates ``marker`` (a harmless stand-in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_refused_without_unpickling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _agent().model
    marker = tmp_path / "unpickled.marker"
    files = {
        "state_dict.pt": lambda p: torch.save(model.state_dict(), p),
        "bait.pt": lambda p: torch.save({"weights": model.state_dict(), "x": _Bait(marker)}, p),
        "legacy.pt": lambda p: torch.save(_Bait(marker), p, _use_new_zipfile_serialization=False),
        "bait.safetensors": lambda p: p.write_bytes(pickle.dumps(_Bait(marker), protocol=5)),
        "proto2.pkl": lambda p: p.write_bytes(pickle.dumps(_Bait(marker), protocol=2)),
    }
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    for name, write in files.items():
        write(tmp_path / name)
        message = _error(tmp_path / name)
        assert "pickled PyTorch file" in message and "never unpickle" in message, name
        assert "Bring your own agent" in message
        with pytest.raises(CheckpointError, match="pickled"):
            read_checkpoint_metadata(tmp_path / name)
    assert not marker.exists()
    # control: the bait is real, so the assertion above means something
    control = tmp_path / "control.marker"
    pickle.loads(pickle.dumps(_Bait(control))).close()
    assert control.exists()


def test_unknown_architecture(tmp_path: Path) -> None:
    path = _rewrite(_saved(tmp_path), lambda m: m["architecture"].update(name="resnet9000"))
    message = _error(path)
    assert "unknown architecture 'resnet9000'" in message and "impala" in message


def test_state_dict_mismatches(tmp_path: Path) -> None:
    path = _rewrite(_saved(tmp_path), lambda m: m.update(action_names=list(ATARI_ACTIONS)))
    message = _error(path)
    assert "do not fit the 'impala' architecture" in message
    assert "policy.weight (15, 256) vs (4, 256) expected" in message

    def drop_and_add(tensors):
        del tensors["fc.weight"], tensors["fc.bias"]
        tensors["extra.weight"] = torch.zeros(2)

    message = _error(_rewrite(_saved(tmp_path), mutate_tensors=drop_and_add))
    assert "2 missing (fc.bias, fc.weight)" in message and "1 unexpected (extra.weight)" in message

    def drop_many(tensors):
        for key in [k for k in tensors if k.startswith("stacks.0.")]:
            del tensors[key]

    message = _error(_rewrite(_saved(tmp_path), mutate_tensors=drop_many))
    assert "10 missing (" in message and "... (7 more)" in message


def test_newer_format_version_and_bad_metadata(tmp_path: Path) -> None:
    message = _error(_rewrite(_saved(tmp_path), format_version="2"))
    assert "format version 2" in message and "upgrade" in message
    with pytest.raises(CheckpointError, match="format version 2"):
        read_checkpoint_metadata(tmp_path / "impala.safetensors")
    assert "corrupt" in _error(_rewrite(_saved(tmp_path), config="{not json"))
    assert "missing gamma" in _error(_rewrite(_saved(tmp_path), lambda m: m.pop("gamma")))
    bad_env = _rewrite(_saved(tmp_path), lambda m: m.update(env_spec={"family": "nes"}))
    assert "unknown environment family" in _error(bad_env)


def test_saved_checkpoint_is_readable_by_others_not_private(tmp_path):
    import os
    import stat

    from understanding_rl_vision.agents import make_agent, save_checkpoint

    agent = make_agent("clear", None, (64, 64, 3), [str(i) for i in range(15)], seed=0)
    mask = os.umask(0o022)
    try:
        path = save_checkpoint(agent, tmp_path / "agent.safetensors")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
