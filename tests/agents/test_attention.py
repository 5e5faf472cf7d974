"""Attention agents (seed 002): the two designs, their masks, checkpoints, the entropy and the hooks."""

from __future__ import annotations

import math

import pytest
import torch

from understanding_rl_vision.agents import load_checkpoint, make_agent, save_checkpoint
from understanding_rl_vision.agents.attention import attention_entropy, attention_layer, capture_attention
from understanding_rl_vision.attribution import discover_layers, hook_count
from understanding_rl_vision.errors import ObservationShapeError, UserError

ACTIONS = ("NOOP", "FIRE", "RIGHT", "LEFT")
ATARI = (84, 84, 4)


def frames(count: int, shape=ATARI, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, *shape), dtype=torch.uint8, generator=generator)


def attention_of(agent, obs) -> torch.Tensor:
    with capture_attention(agent.model) as seen, torch.no_grad():
        agent(obs)
    return seen[-1]


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_masks_are_distributions_over_locations(heads):
    agent = make_agent("attention", None, ATARI, ACTIONS, seed=0, heads=heads)
    obs = frames(5)
    out = agent(obs)
    assert out.logits.shape == (5, 4) and out.value.shape == (5,)
    mask = attention_of(agent, obs)
    assert mask.shape == (5, heads, 7, 7)
    assert torch.allclose(mask.sum(dim=(2, 3)), torch.ones(5, heads), atol=1e-5)
    assert (mask > 0).all()
    # what passes on is the normalised features weighted by the masks' sum: check it by hand
    model = agent.model
    with torch.no_grad():
        features = model.normalize(model.trunk_features(agent.preprocess(obs)))
        attended = model.attention(features)
    assert torch.allclose(attended, features * mask.sum(dim=1, keepdim=True), atol=1e-6)


def test_free_lunch_saliency_gate_is_a_softplus_of_the_features():
    agent = make_agent("fls", None, ATARI, ACTIONS, seed=0)
    obs = frames(3)
    gate = attention_of(agent, obs)
    assert gate.shape == (3, 1, 7, 7) and (gate > 0).all()
    model = agent.model
    with torch.no_grad():
        x = model.trunk_features(agent.preprocess(obs))
        expected = torch.nn.functional.softplus(model.attention.conv2(torch.relu(model.attention.conv1(x))))
    assert torch.allclose(gate, expected, atol=1e-6)


@pytest.mark.parametrize("name,options", [("attention", {"heads": 2}), ("fls", {}), ("attention", {"trunk": "impala"})])
def test_checkpoint_round_trip_gives_equal_outputs(tmp_path, name, options):
    shape = (64, 64, 3) if options.get("trunk") == "impala" else ATARI
    agent = make_agent(name, None, shape, ACTIONS, seed=3, **options)
    loaded = load_checkpoint(save_checkpoint(agent, tmp_path / "agent.safetensors"))
    assert loaded.architecture == agent.architecture
    obs = frames(4, shape)
    before, after = agent(obs), loaded(obs)
    assert torch.allclose(before.logits, after.logits, atol=1e-6) and torch.allclose(
        before.value, after.value, atol=1e-6
    )
    assert torch.allclose(attention_of(agent, obs), attention_of(loaded, obs), atol=1e-6)


def test_layer_discovery_and_the_declared_attention_layer():
    agent = make_agent("attention", None, ATARI, ACTIONS, seed=0, heads=2)
    layers = discover_layers(agent.model, agent.preprocess(frames(1)))
    assert [(layer.name, layer.label, layer.shape) for layer in layers] == [
        ("relu1", "1a", (32, 20, 20)),
        ("relu2", "2a", (64, 9, 9)),
        ("relu3", "3a", (64, 7, 7)),
    ]  # the attention's own modules sit on a side branch, so no skip-free attribution reaches them
    assert attention_layer(agent.model) == "attention.mask"
    assert attention_layer(make_agent("nature", None, ATARI, ACTIONS, seed=0).model) is None


def test_inspect_names_the_attention_layer(tmp_path, capsys):
    from understanding_rl_vision.cli import main

    path = save_checkpoint(make_agent("attention", None, ATARI, ACTIONS, seed=0), tmp_path / "a.safetensors")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "attention:     attention.mask" in out
    assert "attention.mask               Identity     (1, 7, 7)  <- attention" in out

    assert main(["inspect", "bundled:breakout-attention"]) == 0  # a bundled agent by its name, as run takes it
    out = capsys.readouterr().out
    assert "architecture:  attention {'heads': 2}" in out
    assert "attention.mask               Identity     (2, 7, 7)" in out


def test_attention_entropy():
    uniform = torch.full((2, 1, 7, 7), 1 / 49)
    assert torch.allclose(attention_entropy(uniform), torch.full((2,), math.log(49)), atol=1e-5)
    one_hot = torch.zeros(1, 2, 7, 7)
    one_hot[0, :, 3, 4] = 1.0
    assert float(attention_entropy(one_hot)) == pytest.approx(0.0, abs=1e-6)
    # an unnormalised gate (FLS) is normalised first: scaling it changes nothing; two heads add up
    two = torch.rand(3, 2, 5, 5, generator=torch.Generator().manual_seed(0)) + 0.1
    assert torch.allclose(attention_entropy(two), attention_entropy(7.0 * two), atol=1e-5)
    assert torch.allclose(attention_entropy(two), attention_entropy(two[:, :1]) + attention_entropy(two[:, 1:]))


def test_capture_attention_removes_its_hook_even_on_error():
    agent = make_agent("attention", None, ATARI, ACTIONS, seed=0)
    with pytest.raises(RuntimeError, match="boom"), capture_attention(agent.model):
        assert hook_count(agent.model) == 1
        raise RuntimeError("boom")
    assert hook_count(agent.model) == 0
    with (
        pytest.raises(UserError, match="declares no attention_layer"),
        capture_attention(make_agent("nature", None, ATARI, ACTIONS, seed=0).model),
    ):
        pass


def test_trunk_sizes_and_bad_options():
    with pytest.raises(ObservationShapeError, match="too small for the nature trunk"):
        make_agent("attention", None, (24, 24, 3), ACTIONS, seed=0)
    small = make_agent("attention", None, (24, 24, 3), ACTIONS, seed=0, trunk="impala")
    assert attention_of(small, frames(2, (24, 24, 3))).shape == (2, 1, 3, 3)
    with pytest.raises(UserError, match="unknown trunk"):
        make_agent("attention", None, ATARI, ACTIONS, seed=0, trunk="resnet")
    with pytest.raises(UserError, match="at least one head"):
        make_agent("attention", None, ATARI, ACTIONS, seed=0, heads=0)
