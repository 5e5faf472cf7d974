"""A generator on disk: saved and loaded for the same agent only, and damaged files as one line."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file
from tiny_states import tiny_vae

from understanding_rl_vision.errors import CheckpointError, UserError
from understanding_rl_vision.states import GeneratorConfig, load_generator, read_header
from understanding_rl_vision.states.store import FORMAT, GENERATOR, save_generator

IDENTITY = hashlib.sha256(b"the agent").hexdigest()
OTHER = hashlib.sha256(b"another agent").hexdigest()
CONFIG = GeneratorConfig(latent_size=8, width=4, num_frames=64, epochs=2)


def trained_looking_vae():
    """A tiny generator whose batch-norm statistics are not the defaults, so they must be saved too."""
    vae = tiny_vae()
    with torch.no_grad():
        vae.train()
        vae(torch.rand(8, 3, 24, 24, generator=torch.Generator().manual_seed(0)))
    return vae.eval()


@pytest.fixture
def saved(tmp_path):
    vae = trained_looking_vae()
    path = save_generator(vae, tmp_path, IDENTITY, CONFIG, {"epochs": 2, "heldout_psnr": 12.5})
    return vae, path


def test_a_saved_generator_loads_with_equal_outputs(saved, tmp_path):
    vae, path = saved
    assert path == tmp_path / GENERATOR and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [GENERATOR]  # nothing temporary left behind
    for where in (tmp_path, path):  # its folder or the file itself
        loaded, header = load_generator(where, IDENTITY)
        assert not loaded.training
        assert loaded.shape == (24, 24, 3) and loaded.latent_size == 8 and loaded.width == 4
        images = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(1))
        latents = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            assert torch.allclose(loaded.reconstruct(images), vae.reconstruct(images), rtol=0, atol=1e-6)
            assert torch.allclose(loaded.decode(latents), vae.decode(latents), rtol=0, atol=1e-6)
        for name, tensor in vae.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name
    assert header["agent"] == IDENTITY and header["observation_shape"] == [24, 24, 3]
    assert header["config"]["latent_size"] == 8 and header["config"]["epochs"] == 2
    assert header["extra"] == {"epochs": 2, "heldout_psnr": 12.5}
    assert read_header(path) == header


def test_another_agents_generator_is_refused(saved):
    _, path = saved
    with pytest.raises(UserError, match="another agent") as info:
        load_generator(path, OTHER)
    assert not isinstance(info.value, CheckpointError)
    assert IDENTITY[:12] in str(info.value) and OTHER[:12] in str(info.value)


def test_a_missing_generator_says_to_train_one(tmp_path):
    with pytest.raises(UserError, match="no generator at .*states train"):
        load_generator(tmp_path, IDENTITY)
    with pytest.raises(UserError, match="no generator at"):
        read_header(tmp_path / "nothing.safetensors")


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_a_truncated_generator_is_a_checkpoint_error(saved, keep):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError) as info:
        load_generator(path, IDENTITY)
    assert str(path) in one_line(info)


@pytest.mark.parametrize(
    "content",
    [b"", b"short", b"\xff" * 64, (40).to_bytes(8, "little") + b"{not json" + b" " * 40, b"\x10\x00" + b"\x00" * 100],
)
def test_garbage_is_a_checkpoint_error(tmp_path, content):
    path = tmp_path / GENERATOR
    path.write_bytes(content)
    for read in (lambda: read_header(path), lambda: load_generator(tmp_path, IDENTITY)):
        with pytest.raises(CheckpointError) as info:
            read()
        assert "cannot read the generator" in one_line(info)


def test_a_header_that_is_not_an_object_is_a_checkpoint_error(tmp_path):
    path = tmp_path / GENERATOR
    body = json.dumps([1, 2, 3]).encode()
    path.write_bytes(len(body).to_bytes(8, "little") + body)
    with pytest.raises(CheckpointError, match="not a generator of states") as info:
        read_header(path)
    one_line(info)
    body = json.dumps({"__metadata__": "a string"}).encode()
    path.write_bytes(len(body).to_bytes(8, "little") + body)
    with pytest.raises(CheckpointError, match="not a generator of states"):
        read_header(path)
    body = json.dumps({"__metadata__": {"format": FORMAT, "format_version": "1", "header": 5}}).encode()
    path.write_bytes(len(body).to_bytes(8, "little") + body)
    with pytest.raises(CheckpointError, match="cannot read the generator"):
        read_header(path)


def test_another_safetensors_file_is_not_a_generator(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2, 2)}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a generator of states") as info:
        read_header(path)
    one_line(info)
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, bare)  # no metadata at all
    with pytest.raises(CheckpointError, match="not a generator of states"):
        read_header(bare)


def test_a_newer_format_version_is_refused(saved):
    _, path = saved
    data = path.read_bytes()
    assert data.count(b'"format_version":"1"') == 1
    path.write_bytes(data.replace(b'"format_version":"1"', b'"format_version":"2"'))  # same length: offsets hold
    with pytest.raises(CheckpointError, match="format version 2, this version reads 1"):
        read_header(path)


def test_weights_that_do_not_fit_the_header_are_a_checkpoint_error(tmp_path):
    vae = tiny_vae()
    save_generator(vae, tmp_path, IDENTITY, GeneratorConfig(latent_size=16, width=4), {})  # says 16, holds 8
    with pytest.raises(CheckpointError, match="corrupt generator") as info:
        load_generator(tmp_path, IDENTITY)
    one_line(info)
