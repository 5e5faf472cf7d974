"""Feature edits on the bundled agent: the projection removes exactly its directions, edits are
saved and loaded with the checkpoint, and the value changes only where the removed direction matters."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from understanding_rl_vision.agents import agent_digest, load_checkpoint, read_checkpoint_metadata, save_checkpoint
from understanding_rl_vision.agents.edits import FeatureEdit, apply_edits, check_edits, model_edits
from understanding_rl_vision.agents.safetensors_header import read_header, regular_file_size
from understanding_rl_vision.attribution import capture, hook_count
from understanding_rl_vision.config import ObservationSetConfig
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.errors import CheckpointError, UserError
from understanding_rl_vision.rollout import collect_observation_set

LAYER = "stacks.1.res1"  # 2b, the default layer: (32, 16, 16)
UNEDITED_KEYS = {
    "architecture",
    "observation_shape",
    "action_names",
    "env_spec",
    "gamma",
    "lam",
    "preprocessing",
    "library_version",
    "extra",
}


@pytest.fixture(scope="module")
def agent():
    return load_checkpoint(bundled_agent_path())


@pytest.fixture(scope="module")
def frames(agent):
    """16 real CoinRun observations the agent played into."""
    config = ObservationSetConfig(obs_num_envs=2, num_obs=8, obs_every=4)
    return collect_observation_set(agent, config, seed=0, progress=False).observations


def edited(agent, *edits):
    copied = copy.deepcopy(agent)
    apply_edits(copied.model, list(edits))
    return copied


def activation(agent, frames, layer=LAYER):
    with capture(agent.model, [layer]) as captured, torch.no_grad():
        out = agent(frames)
    return captured[layer], out


def test_the_projection_removes_exactly_that_direction(agent, frames):
    rng = np.random.default_rng(1)
    d = rng.random(32) * 3  # unnormalised, as an NMF component is stored
    before, _ = activation(agent, frames)
    after, _ = activation(edited(agent, FeatureEdit(LAYER, tuple(d), "x")), frames)
    u = torch.tensor(d / np.linalg.norm(d), dtype=torch.float32)
    along = torch.einsum("nchw,c->nhw", after, u)
    assert float(torch.einsum("nchw,c->nhw", before, u).abs().max()) > 1  # there was something to remove
    assert float(along.abs().max()) < 1e-5  # at every location
    orthogonal = before - torch.einsum("nhw,c->nchw", torch.einsum("nchw,c->nhw", before, u), u)
    assert torch.allclose(after, orthogonal, atol=1e-5)


def test_several_directions_are_removed_jointly(agent, frames):
    rng = np.random.default_rng(2)
    d1, d2 = rng.random(32), rng.random(32)  # overlapping (non-negative) directions
    first = edited(agent, FeatureEdit(LAYER, tuple(d1)))
    both = edited(first, FeatureEdit(LAYER, tuple(d2)))  # composes with the edit already there
    assert model_edits(both.model) == (FeatureEdit(LAYER, tuple(d1)), FeatureEdit(LAYER, tuple(d2)))
    assert hook_count(both.model) == hook_count(agent.model) + 1  # one hook per edited layer
    after, _ = activation(both, frames)
    for d in (d1, d2):
        u = torch.tensor(d / np.linalg.norm(d), dtype=torch.float32)
        assert float(torch.einsum("nchw,c->nhw", after, u).abs().max()) < 1e-5
    again = edited(agent, FeatureEdit(LAYER, tuple(d1)), FeatureEdit(LAYER, tuple(d1)))  # a repeat removes nothing more
    assert torch.allclose(activation(again, frames)[0], activation(first, frames)[0], atol=1e-5)


def test_a_dense_layer_edit_is_analytic(agent, frames):
    """At relu_fc (N, 256) the value is w . h + b: removing w's direction leaves exactly b, and
    removing a direction orthogonal to w leaves the value alone while the policy changes."""
    w = agent.model.value.weight.detach()[0].double().numpy()
    b = float(agent.model.value.bias.detach()[0])
    hidden, out = activation(agent, frames, "relu_fc")
    used = edited(agent, FeatureEdit("relu_fc", tuple(w), "value"))
    with torch.no_grad():
        assert torch.allclose(used(frames).value, torch.full((len(frames),), b), atol=1e-4)
    mean = hidden.double().mean(0).numpy()
    unused_direction = mean - (mean @ w) / (w @ w) * w  # orthogonal to w, yet large in the activations
    unused = edited(agent, FeatureEdit("relu_fc", tuple(unused_direction), "not value"))
    with torch.no_grad():
        result = unused(frames)
    assert torch.allclose(result.value, out.value, atol=1e-4)
    assert float((result.logits - out.logits).abs().max()) > 0.1  # a real edit, just not of the value


def test_removing_what_the_value_uses_changes_it_and_an_unused_channel_does_not(agent, frames):
    """At 3c, the channel with the most value attribution (gradient x activation) against the least."""
    x = agent.preprocess(frames)
    with capture(agent.model, ["relu"]) as captured:
        value = agent.forward_preprocessed(x).value
        act = captured["relu"]
        (grad,) = torch.autograd.grad(value.sum(), act)
    importance = (grad * act).sum((0, 2, 3)).abs()
    changes = []
    for channel in (int(importance.argmax()), int(importance.argmin())):
        direction = np.eye(32)[channel]
        with torch.no_grad():
            changed = edited(agent, FeatureEdit("relu", tuple(direction)))(frames).value
        changes.append(float((changed - value.detach()).abs().mean()))
    spread = float(value.detach().std())
    assert changes[0] > 0.5 * spread  # measured: 1.36 against a spread of 0.91
    assert changes[1] < 0.1 * spread  # measured: 0.07
    assert changes[0] > 10 * changes[1]


def test_an_edited_checkpoint_round_trips(agent, frames, tmp_path):
    d = tuple(np.random.default_rng(3).random(32))
    memory = edited(agent, FeatureEdit(LAYER, d, "coin"), FeatureEdit("relu", tuple(np.eye(32)[5]), "five"))
    path = save_checkpoint(memory, tmp_path / "edited.safetensors")
    stored = read_checkpoint_metadata(path)["edits"]
    assert stored == [{"layer": LAYER, "direction": list(d), "name": "coin"}, {**stored[1], "name": "five"}]
    loaded = load_checkpoint(path)
    assert model_edits(loaded.model) == model_edits(memory.model)
    assert agent_digest(loaded) == agent_digest(memory) != agent_digest(agent)
    with torch.no_grad():
        a, b = memory(frames), loaded(frames)
    assert torch.allclose(a.logits, b.logits, atol=1e-5) and torch.allclose(a.value, b.value, atol=1e-5)
    again = save_checkpoint(loaded, tmp_path / "again.safetensors")
    assert same_contents(again, path)


def test_an_unedited_checkpoint_is_unchanged(agent, tmp_path):
    digest = agent_digest(agent)
    edited(agent, FeatureEdit(LAYER, tuple(np.ones(32))))  # editing a copy leaves the agent as it was
    assert agent_digest(agent) == digest and not model_edits(agent.model)
    first = save_checkpoint(agent, tmp_path / "a.safetensors")
    second = save_checkpoint(load_checkpoint(first), tmp_path / "b.safetensors")
    config = json.loads(metadata(first)["config"])
    assert set(config) == UNEDITED_KEYS  # no "edits" key: the config's bytes are those of before
    assert same_contents(first, second)


def metadata(path):
    return read_header(path, regular_file_size(path), "checkpoint").metadata


def same_contents(a, b) -> bool:
    """The same metadata strings and tensor bytes (safetensors writes its metadata keys in a
    random order, so two saves of one agent differ in their bytes, before edits as after)."""
    ta, tb = load_file(a), load_file(b)
    tensors = ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    return metadata(a) == metadata(b) and tensors


def test_a_direction_of_the_wrong_length_is_refused(agent, frames):
    with pytest.raises(UserError, match="over 31 channels, but layer stacks.1.conv has 32"):
        apply_edits(copy.deepcopy(agent).model, [FeatureEdit("stacks.1.conv", tuple(np.ones(31)))])
    block = copy.deepcopy(agent)  # a residual block says its channels only when it runs
    apply_edits(block.model, [FeatureEdit(LAYER, tuple(np.ones(31)))])
    with pytest.raises(UserError, match="over 31 channels, but the layer has 32"):
        check_edits(block)
    with pytest.raises(UserError, match="no layer 'stacks.9'"):
        apply_edits(copy.deepcopy(agent).model, [FeatureEdit("stacks.9", (1.0,))])
    for bad in [(), (0.0, 0.0), (1.0, float("nan"))]:
        with pytest.raises(UserError):
            FeatureEdit(LAYER, bad)


def rewrite_edits(source, target, edits):
    """``source`` saved again with its metadata's edits replaced (as a hand-edited file would be)."""
    header = read_header(source, regular_file_size(source), "checkpoint")
    config = json.loads(header.metadata["config"])
    config["edits"] = edits
    save_file(load_file(source), target, metadata={**header.metadata, "config": json.dumps(config)})
    return target


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ("x", "edits must be a list"),
        ([{"layer": LAYER}], "direction must be a list"),
        ([{"layer": 3, "direction": [1.0]}], "layer and name must be strings"),
        ([{"layer": LAYER, "direction": ["a"]}], "finite numbers only"),
        ([{"layer": LAYER, "direction": [0, 0]}], "all zeros"),
        ([{"layer": "stacks.9", "direction": [1.0]}], "no layer 'stacks.9'"),
        ([{"layer": "stacks.1.conv", "direction": [1.0] * 31}], "over 31 channels for layer stacks.1.conv"),
        ([{"layer": LAYER, "direction": [1.0] * 31}], "over 31 channels, but the layer has 32"),
        ([{"layer": LAYER, "direction": [1.0], "extra": 1}], "must be an object with layer, direction and name"),
    ],
)
def test_bad_stored_edits_are_one_line_errors(agent, tmp_path, edits, message):
    path = rewrite_edits(save_checkpoint(agent, tmp_path / "a.safetensors"), tmp_path / "bad.safetensors", edits)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)
