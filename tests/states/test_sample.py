"""Sampling states of interest (seed 003, equations 4 and 5): optimising latents raises what the
target asks for, from N(0, I) or from real frames, and leaves the generator and the agent as they were.

A freshly initialised generator decodes nearly the same grey frame from every latent, and a freshly
initialised agent barely tells frames apart, so neither would give the optimisation anything to
climb. The generator here has its batch norms calibrated on its own decodings and its last layer
scaled up, so that its frames vary with the latent as a trained one's do; the agent's heads are
scaled up so that its outputs vary with the frame. Nothing is trained: a few seconds in all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_states import tiny_agent, tiny_vae

from understanding_rl_vision.agents.base import Agent
from understanding_rl_vision.config import StatesConfig
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.states import StateVAE, Target, sample_states
from understanding_rl_vision.states.model import to_images, to_observations

SETTINGS = StatesConfig(state_count=6, state_steps=80, state_learning_rate=0.1, state_prior_weight=0.001)


def lively_vae() -> StateVAE:
    vae = tiny_vae()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        vae.train()
        for _ in range(20):
            vae.decode(torch.randn(64, vae.latent_size, generator=generator))
        vae.decoder[-1].weight.mul_(30.0)
    return vae.eval()


def lively_agent(q_values: bool = False) -> Agent:
    agent = tiny_agent(q_values=q_values)
    with torch.no_grad():
        agent.model.pi.weight.mul_(10.0)
        agent.model.v.weight.mul_(10.0)
    return agent


def snapshot(*modules: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for m in modules for t in m.state_dict().values()]


def check_consistent(sampled, agent: Agent, target: Target, vae: StateVAE) -> None:
    """The arrays describe the same states: the agent's outputs and the energy on the observations
    returned, which are the decodings of the latents returned."""
    assert sampled.observations.shape == (6, 24, 24, 3) and sampled.observations.dtype == np.uint8
    assert sampled.latents.shape == (6, vae.latent_size) and sampled.latents.dtype == np.float32
    assert sampled.logits.shape == (6, 5) and sampled.values.shape == sampled.energy.shape == (6,)
    with torch.no_grad():
        out = agent(sampled.observations)
        decoded = vae.decode(torch.as_tensor(sampled.latents))
    np.testing.assert_allclose(sampled.logits, out.logits.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(sampled.values, out.value.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(sampled.energy, target.energy(agent, out).numpy(), rtol=0, atol=1e-6)
    assert np.abs(to_images(torch.as_tensor(sampled.observations)) - decoded).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize(
    ("q_values", "name", "margin"),
    [(False, "high-value", 0.05), (False, "action:2", 0.04), (True, "high-value", 0.05), (True, "action:2", 0.04)],
)
def test_optimisation_lowers_every_states_energy(q_values, name, margin):
    vae, agent, target = lively_vae(), lively_agent(q_values), Target(name)
    sampled = sample_states(vae, agent, target, SETTINGS)
    gained = sampled.start_energy - sampled.energy
    assert np.all(gained > margin), (sampled.start_energy, sampled.energy)
    check_consistent(sampled, agent, target, vae)
    if name == "high-value" and not q_values:  # the energy is minus the value: the value went up
        np.testing.assert_allclose(sampled.values, -sampled.energy, rtol=0, atol=1e-6)


def test_the_opposite_target_moves_the_other_way():
    vae, agent = lively_vae(), lively_agent()
    high = sample_states(vae, agent, Target("high-value"), SETTINGS)
    low = sample_states(vae, agent, Target("low-value"), SETTINGS)
    np.testing.assert_allclose(high.start_energy, -low.start_energy, rtol=1e-6)  # same starts: minus the value
    assert np.all(high.values > -high.start_energy + 0.05)  # raised from the value at the start
    assert np.all(low.values < low.start_energy - 0.05)  # lowered from it
    assert high.values.min() > low.values.max() + 0.1


def test_starting_from_real_frames(frames):
    vae, agent, target = lively_vae(), lively_agent(), Target("high-value")
    sampled = sample_states(vae, agent, target, SETTINGS, starts=frames[10:20])
    assert np.all(sampled.start_energy - sampled.energy > 0.05), (sampled.start_energy, sampled.energy)
    check_consistent(sampled, agent, target, vae)
    with torch.no_grad():  # the start was the encodings of the first six frames given
        start = vae.encode(to_images(torch.as_tensor(frames[10:16]))).mean
        expected = target.energy(agent, agent(to_observations(vae.decode(start))))
    np.testing.assert_allclose(sampled.start_energy, expected.numpy(), rtol=0, atol=1e-5)
    unmoved = sample_states(vae, agent, target, StatesConfig(state_count=6, state_steps=0), starts=frames[10:20])
    np.testing.assert_allclose(unmoved.latents, start.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(unmoved.start_energy, unmoved.energy)  # no step: the energy as saved


def test_the_same_seed_gives_the_same_states_and_another_seed_others():
    vae, agent, target = lively_vae(), lively_agent(), Target("decisive")
    settings = StatesConfig(state_count=6, state_steps=10, state_learning_rate=0.1)
    first, again = (sample_states(vae, agent, target, settings, seed=3) for _ in range(2))
    other = sample_states(vae, agent, target, settings, seed=4)
    np.testing.assert_allclose(first.latents, again.latents, rtol=0, atol=1e-6)
    assert np.abs(first.observations.astype(int) - again.observations.astype(int)).max() <= 1
    assert np.abs(first.latents - other.latents).min() > 1e-3


def test_the_generator_and_the_agent_are_left_as_they_were():
    vae, agent = lively_vae(), lively_agent()
    agent.model.conv1.weight.requires_grad_(False)  # frozen by the caller: stays frozen
    before = snapshot(vae, agent.model)
    sample_states(vae, agent, Target("action:1"), StatesConfig(state_count=4, state_steps=5))
    assert [p.requires_grad for p in vae.parameters()] == [True] * len(list(vae.parameters()))
    assert [n for n, p in agent.model.named_parameters() if not p.requires_grad] == ["conv1.weight"]
    assert all(p.grad is None for p in (*vae.parameters(), *agent.model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(vae, agent.model)))
    assert all(len(m._backward_hooks) == len(m._forward_hooks) == 0 for m in (*vae.modules(), *agent.model.modules()))
    with pytest.raises(UserError, match="no action 'JUMP'"):  # fails inside the loop
        sample_states(vae, agent, Target("action:JUMP"), StatesConfig(state_count=2, state_steps=3))
    assert all(p.requires_grad for p in vae.parameters())
    assert [n for n, p in agent.model.named_parameters() if not p.requires_grad] == ["conv1.weight"]
