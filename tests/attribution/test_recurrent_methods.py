"""Every method explains a recurrent agent's frame given the state stored for it; integrated gradients
also attribute to that memory, and completeness then covers frame and memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from understanding_rl_vision.attribution import attribute, completeness_error, explain_agent, hook_count
from understanding_rl_vision.attribution.methods import REGISTRY
from understanding_rl_vision.attribution.methods.perturbation import Perturbation
from understanding_rl_vision.config import TrajectoryConfig
from understanding_rl_vision.errors import ConfigError
from understanding_rl_vision.rollout import collect_trajectories

LAYER = "elu3"  # 3a, 10x10


@pytest.fixture(scope="module")
def frames(lstm_agent):
    """8 frames from the middle of a real episode, with their stored states."""
    played = collect_trajectories(lstm_agent, TrajectoryConfig(num_envs=1, num_steps=40), seed=1, progress=False)
    assert not played.firsts[0, 32:40].any()
    return played.observations[0, 32:40], played.states[0, 32:40], played.actions[0, 32:40]


def _outputs(method):
    return ["value", "actor"] if not method.info.scalar_outputs else ["value", "action"]


def _site(method):
    return None if method.info.attaches == "input" else LAYER


# every method of outputs; the attention methods need an attention agent, and none is recurrent
@pytest.mark.parametrize("name", [name for name, cls in REGISTRY.items() if cls.info.explains == "outputs"])
def test_each_frame_is_explained_given_its_own_state(lstm_agent, frames, name):
    observations, states, actions = frames
    cls = REGISTRY[name]
    method = cls()
    kwargs = {"method": method, "actions": actions}
    batch = attribute(lstm_agent, observations, _site(method), _outputs(method), states=states, **kwargs).values
    scale = batch.abs().max()
    assert scale > 0
    forgotten = attribute(lstm_agent, observations, _site(method), _outputs(method), **kwargs).values
    assert (forgotten - batch).abs().max() > 1e-3 * scale, f"{name} ignores the stored state"
    if "noise_level" in cls.__dataclass_fields__:
        # The noise tunnel draws noise for the whole batch at once, so one frame alone gets other
        # draws; without noise, SmoothGrad's copies still each read their own frame's state.
        if name != "smoothgrad":
            return
        method = cls(noise_level=0.0)
        kwargs = {"method": method, "actions": actions}
        batch = attribute(lstm_agent, observations, _site(method), _outputs(method), states=states, **kwargs).values
        scale = batch.abs().max()
    for t in (0, 7):
        alone = attribute(
            lstm_agent,
            observations[t : t + 1],
            _site(method),
            _outputs(method),
            method=method,
            actions=actions[t : t + 1],
            states=states[t : t + 1],
        ).values
        assert (alone[:, 0] - batch[:, t]).abs().max() <= 1e-4 * scale, name
    assert hook_count(lstm_agent.model) == 0


def test_integrated_gradients_complete_over_frame_and_memory(lstm_agent, frames):
    observations, states, _ = frames
    outputs = ["value", "logits"]
    found = attribute(lstm_agent, observations, LAYER, outputs, states=states, steps=64, rule="gauss-legendre")
    assert found.memory is not None and found.memory.shape == (5, 8)
    explained = explain_agent(lstm_agent, states)
    chosen = explained.outputs(outputs)
    inputs = lstm_agent.preprocess(observations)
    error = completeness_error(explained, inputs, found, chosen)
    assert error.max() < 1e-3, error.max()
    # Without the memory entry the layer alone does not add up: the memory carries a real share.
    from dataclasses import replace

    assert completeness_error(explained, inputs, replace(found, memory=None), chosen).median() > 1e-2
    share = found.memory.abs() / (found.memory.abs() + found.values.flatten(2).sum(-1).abs())
    assert 0.01 < float(share.median()) < 0.99


def test_feed_forward_integrated_gradients_have_no_memory(breakout_agent):
    observations = np.random.default_rng(0).integers(0, 255, (2, 84, 84, 4), dtype=np.uint8)
    assert attribute(breakout_agent, observations, "relu2", ["value"]).memory is None


def test_perturbation_can_shrink_the_memory(lstm_agent, frames):
    observations, states, _ = frames
    maps = {
        shrink: attribute(
            lstm_agent,
            observations[:3],
            None,
            ["value", "actor"],
            states=states[:3],
            method=Perturbation(perturbation_memory=shrink),
        ).values
        for shrink in (0.0, 0.5, 1.0)
    }
    assert (maps[0.5] - maps[0.0]).abs().max() > 1e-3 * maps[0.0].abs().max()
    # Shrinking the whole cell state is forgetting c but keeping h: not the zero state either.
    assert hook_count(lstm_agent.model) == 0
    # The cell state alone is shrunk: with the cell zeroed, outputs equal a forward pass with c = 0.
    explained = explain_agent(lstm_agent, states[:3])
    reference = explained.forward(lstm_agent.preprocess(observations[:3]))
    cut = states[:3].copy()
    cut[:, 256:] = 0
    assert not torch.allclose(
        reference, explain_agent(lstm_agent, cut).forward(lstm_agent.preprocess(observations[:3]))
    )
    with pytest.raises(ConfigError, match="perturbation_memory"):
        Perturbation(perturbation_memory=1.5)
