"""The built-in recurrent architecture (seed 001's A3C LSTM), its checkpoints, and rollouts that carry its state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from understanding_rl_vision.agents import load_checkpoint, save_checkpoint
from understanding_rl_vision.agents.recurrent import MEMORY, match_rows
from understanding_rl_vision.attribution import discover_layers
from understanding_rl_vision.config import ObservationSetConfig, TrajectoryConfig
from understanding_rl_vision.envs.atari import greydanus_frame
from understanding_rl_vision.rollout import collect_observation_set, collect_trajectories


@pytest.fixture(scope="module")
def played(lstm_agent):
    """Two real Breakout trajectories long enough to hold a reset (a lost life does not reset; the
    short episodes of a random agent do)."""
    return collect_trajectories(lstm_agent, TrajectoryConfig(num_envs=2, num_steps=300), seed=3, progress=False)


def test_network_is_seed_001s(lstm_agent):
    model = lstm_agent.model
    assert lstm_agent.observation_shape == (80, 80, 1) and lstm_agent.state_size == 512
    assert model.lstm.input_size == 32 * 5 * 5 and model.lstm.hidden_size == 256
    convs = [model.conv1, model.conv2, model.conv3, model.conv4]
    assert [(c.kernel_size, c.stride, c.padding, c.out_channels) for c in convs] == [((3, 3), (2, 2), (1, 1), 32)] * 4
    x = lstm_agent.preprocess(np.zeros((1, 80, 80, 1), np.uint8))
    layers = discover_layers(model, x)
    assert [(layer.label, layer.shape) for layer in layers] == [
        ("1a", (32, 40, 40)),
        ("2a", (32, 20, 20)),
        ("3a", (32, 10, 10)),
        ("4a", (32, 5, 5)),
    ]
    assert MEMORY not in {layer.name for layer in layers}  # the state is not a spatial layer


def test_greydanus_preprocessing_matches_the_seed():
    """cv2.resize(img[35:195].mean(2), (80, 80)) / 255 as seed 001 writes it, within uint8 rounding."""
    import cv2

    screen = np.random.default_rng(0).integers(0, 256, (210, 160, 3), dtype=np.uint8)
    seed = cv2.resize(src=screen[35:195].mean(2), dsize=(80, 80)).astype(np.float32) / 255.0
    ours = greydanus_frame(screen).astype(np.float32) / 255.0
    assert ours.shape == (80, 80) and np.abs(ours - seed).max() <= 0.5 / 255 + 1e-6


def test_match_rows_repeats_copy_major():
    state = torch.arange(6.0).view(3, 2)
    assert torch.equal(match_rows(state, 3), state)
    assert torch.equal(match_rows(state, 6), torch.cat([state, state]))
    with pytest.raises(ValueError, match="3 recurrent states cannot serve a batch of 4 rows"):
        match_rows(state, 4)


def test_rollout_stores_the_incoming_state_and_resets_it(lstm_agent, played):
    states, firsts = played.states, played.firsts
    assert states.shape == (2, 300, 512) and states.dtype == np.float32
    assert firsts[:, 1:].any(), "the rollout should contain an episode start after the first step"
    assert np.all(states[firsts] == 0)  # zeros where an episode starts
    assert np.abs(states[~firsts]).max() > 1e-3  # and a memory elsewhere
    # Replaying every frame with its stored state gives the logits and values the agent acted on,
    # and the state it handed to the next step.
    for e in range(2):
        out = lstm_agent(played.observations[e], states[e])
        np.testing.assert_allclose(out.logits.detach().numpy(), played.logits[e], atol=1e-5)
        np.testing.assert_allclose(out.value.detach().numpy(), played.values[e], atol=1e-5)
        following = out.state.detach().numpy()[:-1]
        carried = ~firsts[e, 1:]
        np.testing.assert_allclose(following[carried], states[e, 1:][carried], atol=1e-5)


def test_state_changes_the_outputs(lstm_agent, played):
    e, t = np.argwhere(~played.firsts)[-1]
    frame = played.observations[e, t : t + 1]
    with torch.no_grad():
        remembered = lstm_agent(frame, played.states[e, t : t + 1]).logits
        forgotten = lstm_agent(frame).logits
    assert (remembered - forgotten).abs().max() > 1e-4


def test_observation_set_keeps_states(lstm_agent):
    found = collect_observation_set(
        lstm_agent, ObservationSetConfig(obs_num_envs=2, num_obs=4, obs_every=8), seed=0, progress=False
    )
    assert found.observations.shape == (8, 80, 80, 1) and found.states.shape == (8, 512)
    assert np.abs(found.states).max() > 1e-3


def test_native_checkpoint_round_trips_over_a_sequence_with_resets(lstm_agent, played, tmp_path):
    path = save_checkpoint(lstm_agent, tmp_path / "lstm.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.architecture == lstm_agent.architecture and loaded.state_size == 512
    assert loaded.env_spec == lstm_agent.env_spec
    e = 0
    state_ours, state_loaded = lstm_agent.initial_state(1), loaded.initial_state(1)
    with torch.no_grad():
        for t in range(300):
            first = played.firsts[e, t : t + 1]
            obs = played.observations[e, t : t + 1]
            a = lstm_agent(obs, lstm_agent.reset_state(state_ours, first))
            b = loaded(obs, loaded.reset_state(state_loaded, first))
            assert torch.allclose(a.logits, b.logits, atol=1e-6) and torch.allclose(a.value, b.value, atol=1e-6)
            state_ours, state_loaded = a.state.numpy(), b.state.numpy()
    np.testing.assert_allclose(state_ours, state_loaded, atol=1e-6)


def test_feed_forward_agents_take_no_state(breakout_agent):
    assert not breakout_agent.recurrent and breakout_agent.initial_state(3).shape == (3, 0)
    obs = np.zeros((2, 84, 84, 4), np.uint8)
    assert breakout_agent.act(obs).state.shape == (2, 0)
    from understanding_rl_vision.errors import UserError

    with pytest.raises(UserError, match="not recurrent"):
        breakout_agent(obs, np.zeros((2, 4), np.float32))


def test_impala_lstm_for_procgen(make_random_agent, tmp_path):
    agent = make_random_agent("coinrun", "impala-lstm", distribution_mode="easy")
    assert agent.recurrent and agent.state_size == 512
    played = collect_trajectories(agent, TrajectoryConfig(num_envs=2, num_steps=20), seed=0, progress=False)
    assert np.all(played.states[played.firsts] == 0) and np.abs(played.states[:, 1:]).max() > 1e-3
    loaded = load_checkpoint(save_checkpoint(agent, tmp_path / "impala-lstm.safetensors"))
    with torch.no_grad():
        a = agent(played.observations[0], played.states[0])
        b = loaded(played.observations[0], played.states[0])
    np.testing.assert_allclose(a.logits.numpy(), played.logits[0], atol=1e-5)
    assert torch.allclose(a.logits, b.logits, atol=1e-6) and torch.allclose(a.state, b.state, atol=1e-6)
    layers = discover_layers(agent.model, agent.preprocess(played.observations[0, :1]))
    assert [layer.label for layer in layers] == ["1a", "1b", "2a", "2b", "3a", "3b", "3c"]


def test_bundled_breakout_lstm_agent():
    from understanding_rl_vision import demo
    from understanding_rl_vision.agents import read_checkpoint_metadata
    from understanding_rl_vision.errors import UserError

    path = demo.resolve_checkpoint("bundled:breakout-lstm")
    assert path.stat().st_size < 6 << 20  # the limit for shipping it
    agent = load_checkpoint(path)
    assert agent.architecture.name == "lstm" and agent.state_size == 512
    assert agent.env_spec.observation == "greydanus" and agent.observation_shape == (80, 80, 1)
    assert read_checkpoint_metadata(path)["extra"]["steps_trained"] >= 500_000
    assert demo.resolve_checkpoint("bundled") == demo.resolve_checkpoint("bundled:coinrun")
    with pytest.raises(UserError, match="no bundled agent 'nope'"):
        demo.resolve_checkpoint("bundled:nope")
