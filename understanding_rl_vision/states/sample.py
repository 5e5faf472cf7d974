"""Sampling states of interest: optimise latents so that their decodings are what a target asks for
(seed 003, equations 4 and 5).

The energy of a latent z is ``target(agent(decode(z))) + prior_weight * |z|^2 / 2``: the target,
plus the negative log-density of N(0, I) (the KL regulariser of a point estimate), which keeps z
where the generator was trained to decode states. A batch of latents is optimised at once with Adam,
starting from the encodings of real states (``starts``) or from N(0, I).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..agents.base import Agent
from ..config import StatesConfig
from .model import StateVAE, to_images, to_observations
from .perception import agent_outputs
from .targets import Target


@dataclass(frozen=True)
class Sampled:
    """States optimised for one target, and the path there."""

    observations: np.ndarray  # (N, H, W, C) uint8
    latents: np.ndarray  # (N, Z) float32
    energy: np.ndarray  # (N,) the target's energy of the states as saved (uint8; without the regulariser)
    start_energy: np.ndarray  # (N,) the target's energy of the starting states (also as uint8)
    logits: np.ndarray  # (N, A) the agent's on the generated states (Q-values for a Q-network)
    values: np.ndarray  # (N,)


def sample_states(
    vae: StateVAE,
    agent: Agent,
    target: Target,
    settings: StatesConfig,
    starts: np.ndarray | None = None,
    seed: int = 0,
) -> Sampled:
    """``settings.state_count`` states for ``target``, optimised as ``settings`` says; ``starts``
    (uint8 (M, H, W, C), M >= count) are real observations whose encodings are the starting latents
    (the first ``count`` used), None to start from N(0, I) (drawn with ``seed``)."""
    was_training = vae.training
    vae.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(vae.parameters()).device
    if starts is not None:
        with torch.no_grad():
            start = vae.encode(to_images(torch.as_tensor(starts[: settings.state_count], device=device))).mean
    else:
        start = torch.randn((settings.state_count, vae.latent_size), generator=generator).to(device)
    latents = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latents], lr=settings.state_learning_rate)
    frozen = [p.requires_grad_(False) for p in (*vae.parameters(), *agent.model.parameters()) if p.requires_grad]
    try:
        with torch.no_grad():  # both energies are the agent's on states rounded to uint8, as the page shows
            first = target.energy(agent, agent(to_observations(vae.decode(start))))
        for _ in range(settings.state_steps):
            with torch.enable_grad():
                energy = target.energy(agent, agent_outputs(agent, vae.decode(latents)))
                loss = energy.sum() + settings.state_prior_weight * 0.5 * latents.square().sum()
                optimiser.zero_grad()
                loss.backward()
            optimiser.step()
        with torch.no_grad():
            observations = to_observations(vae.decode(latents))
            out = agent(observations)
            final = target.energy(agent, out)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        vae.train(was_training)
    return Sampled(
        observations=observations.cpu().numpy(),
        latents=latents.detach().cpu().numpy(),
        energy=final.cpu().numpy(),
        start_energy=first.cpu().numpy(),
        logits=out.logits.float().cpu().numpy(),
        values=out.value.float().cpu().numpy(),
    )
