"""sb3-contrib RecurrentPPO (CnnLstmPolicy) zips: real sb3-contrib trains them on ALE Breakout and
records its own logits, values and LSTM states over a sequence with episode resets, in a subprocess
(sb3_recurrent_reference.py); this process, with sb3-contrib never imported, must compute the same
through our state protocol."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from understanding_rl_vision.agents import Agent, describe_file, load_agent
from understanding_rl_vision.agents.formats.recurrent_imports import NatureLSTM
from understanding_rl_vision.attribution import attribute, methods
from understanding_rl_vision.attribution.layers import discover_layers
from understanding_rl_vision.attribution.outputs import explain_agent
from understanding_rl_vision.errors import CheckpointError

COARSE = methods.method_class("perturbation")(perturbation_stride=12)  # 7 x 7 discs: the test checks plumbing, not maps
KINDS = {  # our state's parts, and the critic
    "separate": (["h_actor", "c_actor", "h_critic", "c_critic"], "lstm"),
    "shared": (["h", "c"], "shared"),
    "linear": (["h", "c"], "linear"),
}


@pytest.fixture(scope="module")
def recurrent_zips(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sb3_recurrent")
    script = Path(__file__).parent / "sb3_recurrent_reference.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True, timeout=600)
    return out


def run_sequence(agent: Agent, observations: np.ndarray, starts: np.ndarray):
    """Logits, values and states leaving each step, resetting rows where episodes start."""
    state = agent.initial_state(observations.shape[1])
    logits, values, states = [], [], []
    for frames, first in zip(observations, starts):
        state = Agent.reset_state(state, first)
        with torch.no_grad():
            out = agent(frames, state)
        state = out.state.numpy()
        logits.append(out.logits.numpy())
        values.append(out.value.numpy())
        states.append(state)
    return np.stack(logits), np.stack(values), np.stack(states)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recurrent_zip_matches_sb3_contrib_over_a_sequence_with_resets(recurrent_zips, kind):
    assert "sb3_contrib" not in sys.modules
    reference = np.load(recurrent_zips / "reference.npz")
    agent = load_agent(recurrent_zips / f"{kind}.zip", env="ALE/Breakout-v5")
    assert "sb3_contrib" not in sys.modules  # loading never needed it
    parts, critic = KINDS[kind]
    size = 16 if kind == "linear" else 32
    assert isinstance(agent.model, NatureLSTM) and agent.model.critic_kind == critic
    assert agent.recurrent and agent.state_size == len(parts) * size
    assert [name for name, _ in agent.model.state_parts] == parts
    assert agent.observation_shape == (84, 84, 4) and agent.env_spec.frame_stack == 4
    assert agent.gamma == 0.99 and agent.lam == 0.95

    observations, starts = reference["observations"], reference["starts"]
    logits, values, states = run_sequence(agent, observations, starts)
    log_probs = torch.log_softmax(torch.from_numpy(logits), -1).numpy()  # SB3 reports normalised logits
    np.testing.assert_allclose(log_probs, reference[f"{kind}_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(values, reference[f"{kind}_values"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(states, reference[f"{kind}_states"], atol=1e-5, rtol=0)

    # the state matters: a step fed a zero state (as if the episode started there) computes otherwise
    with torch.no_grad():
        fresh = agent(observations[3]).logits.numpy()
    assert np.abs(fresh - logits[3]).max() > 1e-4
    # where an episode starts, the reset state gives exactly what a fresh start gives
    with torch.no_grad():
        restarted = agent(observations[4, 1:]).logits.numpy()
    np.testing.assert_allclose(restarted, logits[4, 1:], atol=1e-6, rtol=0)

    acted = agent.act(observations[1], torch.Generator().manual_seed(0), states[0])
    np.testing.assert_allclose(acted.state, states[1], atol=1e-6, rtol=0)
    assert acted.actions.shape == (2,) and set(acted.actions) <= {0, 1, 2, 3}


def test_linear_critic_reads_net_arch_and_activation(recurrent_zips):
    agent = load_agent(recurrent_zips / "linear.zip", env="ALE/Breakout-v5")
    kwargs = agent.architecture.kwargs
    assert kwargs["policy_layers"] == [16] and kwargs["value_layers"] == [24, 8] and kwargs["activation"] == "ReLU"
    layers = agent.named_layers()
    assert isinstance(layers["policy_net.1"], torch.nn.ReLU) and isinstance(layers["value_net.3"], torch.nn.ReLU)
    assert "critic_fc" in layers and "lstm_critic" not in layers


def test_inspect_notes_the_separate_actor_and_critic_lstms(recurrent_zips):
    report = describe_file(recurrent_zips / "separate.zip")
    assert report["format"] == "stable-baselines3" and report["policy"] == "RecurrentActorCriticCnnPolicy"
    assert (
        report["layout"] == "stable-baselines3 RecurrentPPO CnnLstmPolicy (NatureCNN, separate actor and critic LSTMs)"
    )
    assert report["renamed"]["lstm"] == "lstm_actor" and report["renamed"]["lstm_critic"] == "lstm_critic"
    assert report["recurrent"]["state_size"] == 128
    assert [part["name"] for part in report["recurrent"]["state_parts"]] == [
        "h_actor",
        "c_actor",
        "h_critic",
        "c_critic",
    ]
    assert "separate actor and critic LSTMs" in report["recurrent"]["note"]
    shapes = {layer["name"]: layer["shape"] for layer in report["layers"]}
    assert shapes["conv3"] == [64, 7, 7] and shapes["fc"] == [512] and shapes["memory"] == [128]
    shared = describe_file(recurrent_zips / "shared.zip", env="ALE/Breakout-v5")
    assert "one LSTM shared by the actor and the critic" in shared["layout"]
    assert [part["name"] for part in shared["recurrent"]["state_parts"]] == ["h", "c"]


def test_refuses_stacked_lstms_and_vector_policies(recurrent_zips):
    with pytest.raises(CheckpointError, match=r"lstm_actor has 2 layers; only one-layer LSTMs"):
        load_agent(recurrent_zips / "stacked.zip", env="ALE/Breakout-v5")
    with pytest.raises(CheckpointError, match=r"RecurrentActorCriticPolicy .*not a pixel policy"):
        load_agent(recurrent_zips / "mlp.zip", env="ALE/Breakout-v5")


def test_attribution_reads_the_bound_states(recurrent_zips):
    reference = np.load(recurrent_zips / "reference.npz")
    agent = load_agent(recurrent_zips / "separate.zip", env="ALE/Breakout-v5")
    observations, starts = reference["observations"], reference["starts"]
    _, _, states = run_sequence(agent, observations, starts)
    frames, entering = observations[6], states[5]  # the states entering step 6, mid-episode
    inputs = agent.preprocess(frames)
    layers = discover_layers(agent.model, inputs)
    assert [(layer.name, layer.label) for layer in layers] == [("relu1", "1a"), ("relu2", "2a"), ("relu3", "3a")]
    results = {}
    for name, bound in (("carried", entering), ("zero", None)):
        explained = explain_agent(agent, bound)  # attribute() binds its states= over the model's own
        ig = attribute(explained, inputs, layers[1], ("value", "logit:LEFT"), method="ig", steps=8, states=bound)
        saliency = attribute(explained, inputs, "input", ("value",), method=COARSE, states=bound)
        assert ig.values.shape == (2, 2, 64, 9, 9) and saliency.values.shape == (1, 2, 84, 84)
        assert torch.isfinite(ig.values).all() and torch.isfinite(saliency.values).all()
        assert ig.memory is not None and ig.memory.shape == (2, 2) and torch.isfinite(ig.memory).all()
        results[name] = (ig, saliency)
    for carried, zero in zip(*results.values()):
        assert (carried.values - zero.values).abs().max() > 0.01 * zero.values.abs().max() > 0
    assert results["carried"][0].memory.abs().max() > 0
    assert results["zero"][0].memory.abs().max() == 0  # a zero state contributes nothing

    # perturbation_memory shrinks the cell states only: c_actor and c_critic, not the h parts
    index = torch.arange(agent.state_size, dtype=torch.float32)
    assert index[agent.model.cell_state].tolist() == [*range(32, 64), *range(96, 128)]
    shrunk = attribute(
        explain_agent(agent, entering),
        inputs,
        "input",
        ("value",),
        method=methods.method_class("perturbation")(perturbation_stride=12, perturbation_memory=0.5),
        states=entering,
    )
    assert torch.isfinite(shrunk.values).all() and not torch.equal(shrunk.values, results["carried"][1].values)


def test_bare_policy_state_dicts(recurrent_zips, tmp_path):
    """``torch.save(model.policy.state_dict())``: recognised by its tensor names; hidden layers after
    the LSTM are refused there, since only the zip records their activation."""
    for kind in ("separate", "linear"):
        with zipfile.ZipFile(recurrent_zips / f"{kind}.zip") as archive:
            (tmp_path / f"{kind}.pth").write_bytes(archive.read("policy.pth"))
    report = describe_file(tmp_path / "separate.pth")
    assert report["format"] == "state-dict" and "separate actor and critic LSTMs" in report["layout"]
    assert report["architecture"]["kwargs"]["critic"] == "lstm" and report["recurrent"]["state_size"] == 128
    with pytest.raises(CheckpointError, match=r"hidden layers after the LSTM \(net_arch\) whose activation is unknown"):
        load_agent(tmp_path / "linear.pth", env="ALE/Breakout-v5")
