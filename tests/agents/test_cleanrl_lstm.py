"""CleanRL ``ppo_atari_lstm.py`` state dicts: the script's Agent (written out here from its published
layout: the Nature CNN on one 84x84 frame, ``nn.LSTM(512, 128)``, actor and critic on the LSTM's
output, and its ``get_states`` reset logic) is randomised and saved; our loader must compute the same
logits, values and states over a sequence of real Breakout frames with episode resets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from cleanrl_nets import randomise
from nature_cnn import nature_trunk
from torch import nn

from understanding_rl_vision.agents import Agent, describe_file, load_agent, load_checkpoint, save_checkpoint
from understanding_rl_vision.attribution import attribute, methods
from understanding_rl_vision.attribution.layers import discover_layers
from understanding_rl_vision.attribution.outputs import explain_agent
from understanding_rl_vision.envs import make_vec_env, parse_env_id
from understanding_rl_vision.errors import CheckpointError

STEPS, ENVS = 12, 3
COARSE = methods.method_class("perturbation")(perturbation_stride=12)  # 7 x 7 discs: the test checks plumbing, not maps


class CleanRLAtariLSTM(nn.Module):
    """CleanRL's ppo_atari_lstm Agent: same module names, shapes and forward pass."""

    def __init__(self, actions: int = 4, layers: int = 1):
        super().__init__()
        self.network = nn.Sequential(*nature_trunk(channels=1))
        self.lstm = nn.LSTM(512, 128, num_layers=layers)
        self.actor = nn.Linear(128, actions)
        self.critic = nn.Linear(128, 1)

    def get_states(self, x, lstm_state, done):
        hidden = self.network(x / 255.0)
        batch_size = lstm_state[0].shape[1]
        hidden = hidden.reshape((-1, batch_size, self.lstm.input_size))
        done = done.reshape((-1, batch_size))
        new_hidden = []
        for h, d in zip(hidden, done):
            h, lstm_state = self.lstm(
                h.unsqueeze(0),
                ((1.0 - d).view(1, -1, 1) * lstm_state[0], (1.0 - d).view(1, -1, 1) * lstm_state[1]),
            )
            new_hidden += [h]
        return torch.flatten(torch.cat(new_hidden), 0, 1), lstm_state


@pytest.fixture(scope="module")
def sequence():
    """Observations (T, N, 84, 84, 1) from our Breakout with one frame, and where episodes start,
    with resets forced in some rows on top of the environment's own."""
    spec = dataclasses.replace(parse_env_id("ALE/Breakout-v5"), frame_stack=1)
    rng = np.random.default_rng(0)
    observations, starts = [], []
    with make_vec_env(spec, num_envs=ENVS, seed=1) as env:
        step = env.reset()
        first = np.ones(ENVS, bool)
        for t in range(STEPS):
            forced = np.zeros(ENVS, bool)
            forced[t % ENVS] = t in (5, 9)
            observations.append(step.obs)
            starts.append(first | forced)
            first = np.zeros(ENVS, bool)
            for _ in range(2):  # an episode that starts within these steps starts before the next frame kept
                step = env.step(rng.integers(0, env.num_actions, ENVS))
                first |= np.asarray(step.first, bool)
    return np.stack(observations), np.stack(starts)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    theirs = randomise(CleanRLAtariLSTM())
    path = tmp_path_factory.mktemp("cleanrl_lstm") / "ppo_atari_lstm.cleanrl_model"
    torch.save(theirs.state_dict(), path)
    return theirs, path


@pytest.fixture(scope="module")
def agent(saved):
    return load_agent(saved[1], env="ALE/Breakout-v5")


def theirs_over(theirs: CleanRLAtariLSTM, observations: np.ndarray, starts: np.ndarray):
    """CleanRL's own rollout: one get_states call per step, its state carried, ``done`` resetting it."""
    state = (torch.zeros(1, observations.shape[1], 128), torch.zeros(1, observations.shape[1], 128))
    logits, values, states = [], [], []
    with torch.no_grad():
        for frames, first in zip(observations, starts):
            x = torch.as_tensor(frames).permute(0, 3, 1, 2).float()  # FrameStack(1): (N, 1, 84, 84)
            hidden, state = theirs.get_states(x, state, torch.as_tensor(first, dtype=torch.float32))
            logits.append(theirs.actor(hidden).numpy())
            values.append(theirs.critic(hidden).numpy().reshape(-1))
            states.append(torch.cat([state[0][0], state[1][0]], dim=1).numpy())
    return np.stack(logits), np.stack(values), np.stack(states)


def ours_over(agent: Agent, observations: np.ndarray, starts: np.ndarray):
    state = agent.initial_state(observations.shape[1])
    logits, values, states = [], [], []
    for frames, first in zip(observations, starts):
        with torch.no_grad():
            out = agent(frames, Agent.reset_state(state, first))
        state = out.state.numpy()
        logits.append(out.logits.numpy())
        values.append(out.value.numpy())
        states.append(state)
    return np.stack(logits), np.stack(values), np.stack(states)


def test_cleanrl_lstm_matches_over_a_sequence_with_resets(saved, agent, sequence):
    theirs, _ = saved
    observations, starts = sequence
    assert agent.env_spec.frame_stack == 1 and agent.observation_shape == (84, 84, 1)  # from conv1's in_channels
    assert agent.state_size == 256 and agent.model.state_parts == (("h", 128), ("c", 128))
    assert agent.architecture.kwargs["critic"] == "shared"
    expected = theirs_over(theirs, observations, starts)
    for got, want in zip(ours_over(agent, observations, starts), expected):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert starts[1:].any() and not starts[1:].all()  # resets happen mid-sequence, in some rows only

    # CleanRL's training pass: the whole sequence in one get_states call, dones resetting inside it
    x = torch.as_tensor(observations.reshape(-1, 84, 84, 1)).permute(0, 3, 1, 2).float()
    zeros = torch.zeros(1, ENVS, 128)
    with torch.no_grad():
        hidden, _ = theirs.get_states(x, (zeros, zeros), torch.as_tensor(starts.reshape(-1), dtype=torch.float32))
    np.testing.assert_allclose(theirs.actor(hidden).detach().numpy(), expected[0].reshape(-1, 4), atol=1e-5, rtol=0)

    # the carried state matters: the same frames from a zero state compute otherwise
    with torch.no_grad():
        fresh = agent(observations[STEPS - 1]).logits.numpy()
    assert np.abs(fresh - expected[0][STEPS - 1]).max() > 1e-4


def test_inspect_names_the_layout_and_state(saved):
    _, path = saved
    report = describe_file(path, env="ALE/Breakout-v5")
    assert report["format"] == "state-dict" and report["layout"] == "cleanrl ppo_atari_lstm Agent"
    assert report["renamed"]["fc"] == "network.7" and report["renamed"]["lstm"] == "lstm"
    assert report["env"]["frame_stack"] == 1
    assert report["recurrent"]["state_size"] == 256 and "shared by the critic" in report["recurrent"]["note"]
    shapes = {layer["name"]: layer["shape"] for layer in report["layers"]}
    assert shapes["conv1"] == [32, 20, 20] and shapes["relu_fc"] == [512] and shapes["memory"] == [256]


def test_refuses_a_two_layer_lstm(tmp_path):
    torch.save(randomise(CleanRLAtariLSTM(layers=2)).state_dict(), tmp_path / "stacked.pt")
    with pytest.raises(CheckpointError, match=r"its LSTM lstm has 2 layers; only one-layer LSTMs"):
        load_agent(tmp_path / "stacked.pt", env="ALE/Breakout-v5")


def test_attribution_reads_the_bound_states(agent, sequence):
    observations, starts = sequence
    _, _, states = ours_over(agent, observations, starts)
    entering = Agent.reset_state(states[6], starts[7])  # the states entering step 7
    inputs = agent.preprocess(observations[7])
    layers = discover_layers(agent.model, inputs)
    assert [layer.label for layer in layers] == ["1a", "2a", "3a"]
    results = {}
    for name, bound in (("carried", entering), ("zero", None)):
        explained = explain_agent(agent, bound)  # attribute() binds its states= over the model's own
        ig = attribute(explained, inputs, layers[-1], ("value",), method="ig", steps=8, states=bound)
        saliency = attribute(explained, inputs, "input", ("logit:FIRE",), method=COARSE, states=bound)
        assert ig.values.shape == (1, ENVS, 64, 7, 7) and saliency.values.shape == (1, ENVS, 84, 84)
        assert torch.isfinite(ig.values).all() and torch.isfinite(saliency.values).all()
        results[name] = (ig, saliency)
    for carried, zero in zip(*results.values()):  # random weights: small maps, each changed by the state
        assert (carried.values - zero.values).abs().max() > 0.01 * zero.values.abs().max() > 0
    assert results["carried"][0].memory.abs().max() > 0


def test_saved_as_our_checkpoint_it_carries_the_state_the_same_way(agent, sequence, tmp_path):
    observations, starts = sequence
    save_checkpoint(agent, tmp_path / "lstm.safetensors")
    again = load_checkpoint(tmp_path / "lstm.safetensors")
    assert again.architecture == agent.architecture and again.env_spec == agent.env_spec
    for got, want in zip(
        ours_over(again, observations[:4], starts[:4]), ours_over(agent, observations[:4], starts[:4])
    ):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
