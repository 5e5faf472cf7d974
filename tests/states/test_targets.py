"""The target functions (seed 003, section 2.3) as energies, on hand-made outputs with known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from understanding_rl_vision.agents.base import Agent, AgentOutput
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.states.targets import Target, parse_targets

NAMES = ("NOOP", "LEFT", "RIGHT")
Q = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0], [-3.0, 5.0, 1.0]])
VALUE = np.array([0.5, -1.0, 2.0])


def make_agent(action_outputs: str) -> Agent:
    return Agent(model=nn.Identity(), observation_shape=(8, 8, 3), action_names=NAMES, action_outputs=action_outputs)


def output() -> AgentOutput:
    return AgentOutput(logits=torch.tensor(Q, dtype=torch.float64), value=torch.tensor(VALUE))


def soft(q: np.ndarray, w: float) -> np.ndarray:
    """softmax(w q) . q, row by row, written out."""
    e = np.exp(w * q - (w * q).max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True) * q).sum(axis=1)


def energy(name: str, action_outputs: str, sharpness: float = 1.0) -> np.ndarray:
    return Target(name, sharpness).energy(make_agent(action_outputs), output()).numpy()


@pytest.mark.parametrize("w", [1.0, 0.3, 2.5])
def test_q_value_energies_are_the_seeds_formulas(w):
    soft_max, soft_min = soft(Q, w), soft(Q, -w)
    assert soft_max[1] == soft_min[1] == 0.0
    assert np.all(soft_min[[0, 2]] < soft_max[[0, 2]] - 0.5)
    np.testing.assert_allclose(energy("high-value", "q_values", w), -soft_min, rtol=1e-12)  # T+
    np.testing.assert_allclose(energy("low-value", "q_values", w), soft_max, rtol=1e-12)  # T-, equation 6
    np.testing.assert_allclose(energy("decisive", "q_values", w), soft_min - soft_max, rtol=1e-12)  # T+-
    np.testing.assert_allclose(energy("action:RIGHT", "q_values", w), -Q[:, 2], rtol=0)  # S_a
    np.testing.assert_allclose(energy("action:left", "q_values", w), -Q[:, 1], rtol=0)  # any case


def test_hand_computed_soft_maximum():
    # row 0 at w = 1: weights e^1, e^2, e^4 over their sum
    weights = np.exp([1.0, 2.0, 4.0]) / np.exp([1.0, 2.0, 4.0]).sum()
    assert energy("low-value", "q_values")[0] == pytest.approx(weights @ [1.0, 2.0, 4.0], rel=1e-12)
    assert energy("low-value", "q_values")[0] == pytest.approx(3.6456, abs=1e-4)


def test_a_sharp_soft_maximum_approaches_the_maximum():
    loose, sharp = energy("low-value", "q_values", 1.0), energy("low-value", "q_values", 50.0)
    np.testing.assert_allclose(sharp, Q.max(axis=1), atol=1e-6)
    assert np.abs(loose - Q.max(axis=1)).max() > 0.3
    np.testing.assert_allclose(energy("high-value", "q_values", 50.0), -Q.min(axis=1), atol=1e-6)
    np.testing.assert_allclose(energy("decisive", "q_values", 50.0), Q.min(axis=1) - Q.max(axis=1), atol=1e-6)


def test_policy_energies_use_the_value_and_the_log_probabilities():
    log_p = Q - np.log(np.exp(Q).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(energy("high-value", "logits"), -VALUE, rtol=0)
    np.testing.assert_allclose(energy("low-value", "logits"), VALUE, rtol=0)
    np.testing.assert_allclose(energy("action:LEFT", "logits"), -log_p[:, 1], rtol=1e-12)
    np.testing.assert_allclose(energy("decisive", "logits", 2.0), soft(log_p, -2.0) - soft(log_p, 2.0), rtol=1e-12)
    assert np.all(energy("action:LEFT", "logits") > 0)  # minus a log-probability
    # logits shifted by a constant are the same policy: the same energy
    shifted = AgentOutput(logits=torch.tensor(Q + 7.0), value=torch.tensor(VALUE))
    np.testing.assert_allclose(
        Target("action:LEFT").energy(make_agent("logits"), shifted).numpy(), -log_p[:, 1], rtol=1e-12
    )


def test_parse_targets_checks_names_against_the_agent():
    agent = make_agent("q_values")
    targets = parse_targets(agent, ["high-value", "decisive", "action:right"], 3.0)
    assert [t.name for t in targets] == ["high-value", "decisive", "action:RIGHT"]  # the agent's spelling
    assert all(t.sharpness == 3.0 for t in targets)
    assert [t.title for t in targets] == ["T+ high value", "T+- one action good, another bad", "S_a RIGHT"]
    with pytest.raises(UserError, match="unknown target 'best'"):
        parse_targets(agent, ["high-value", "best"], 1.0)
    with pytest.raises(
        UserError, match=r"target action:JUMP: no action 'JUMP'; this agent's actions: NOOP, LEFT, RIGHT"
    ):
        parse_targets(agent, ["action:JUMP"], 1.0)
    with pytest.raises(UserError, match="named twice"):
        parse_targets(agent, ["low-value", "action:LEFT", "low-value"], 1.0)
    with pytest.raises(UserError, match="named twice"):
        parse_targets(agent, ["action:LEFT", "action:left"], 1.0)
    with pytest.raises(UserError, match="at least one target"):
        parse_targets(agent, [], 1.0)
