"""Seed 003's equation 1, the generator's loss, as three separately weighted terms.

* **reconstruction**, weighted by the agent's saliency: the squared error of each pixel times
  1 + ``saliency_weight`` x its saliency, so the few pixels the agent decides by (a ball, a saw)
  are reconstructed instead of blurred away;
* **perception**: the agent's outputs on the reconstruction match those on the original (the
  policy's KL divergence plus the value's squared error for an actor-critic, the Q-values' squared
  error for a Q-network; value errors in units of the value's spread over the training frames);
* **KL** of the encoder's posterior to N(0, I), so that latents near the origin decode to states.

Each term is a mean over the batch; the reconstruction error is also a mean over pixels, so the KL
weight is per latent dimension and pixel. A term at weight 0 contributes no gradient at all.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..agents.base import Agent
from .config import GeneratorConfig
from .model import StateVAE, kl_to_prior
from .perception import agent_outputs


class LossTerms(NamedTuple):
    reconstruction: torch.Tensor
    perception: torch.Tensor
    kl: torch.Tensor
    total: torch.Tensor


def perception_error(
    agent: Agent, original: torch.Tensor, reconstruction: torch.Tensor, value_scale: float = 1.0
) -> torch.Tensor:
    """(N,) how differently the agent sees ``reconstruction`` from ``original`` (no gradient to the
    original: it is the target); value and Q-value errors are in units of ``value_scale``."""
    with torch.no_grad():
        target = agent_outputs(agent, original)
    seen = agent_outputs(agent, reconstruction)
    if agent.action_outputs == "q_values":
        return ((seen.logits - target.logits) / value_scale).square().mean(dim=1)
    policy = F.kl_div(F.log_softmax(seen.logits, 1), F.log_softmax(target.logits, 1), log_target=True, reduction="none")
    return policy.sum(dim=1) + ((seen.value - target.value) / value_scale).square()


def generator_loss(
    vae: StateVAE,
    agent: Agent,
    images: torch.Tensor,
    weights: torch.Tensor,
    config: GeneratorConfig,
    generator: torch.Generator | None = None,
    value_scale: float = 1.0,
) -> LossTerms:
    """The loss of a batch of (N, C, H, W) ``images`` in [0, 1]; ``weights`` (N, H, W) is each
    pixel's saliency (:func:`~.perception.saliency`), ignored at ``saliency_weight`` 0."""
    reconstruction, posterior = vae(images, generator)
    per_pixel = (reconstruction - images).square().mean(dim=1)
    if config.saliency_weight > 0:
        per_pixel = per_pixel * (1.0 + config.saliency_weight * weights)
    recon = per_pixel.mean()
    zero = recon.new_zeros(())
    perception = (
        perception_error(agent, images, reconstruction, value_scale).mean() if config.perception_weight > 0 else zero
    )
    kl = kl_to_prior(posterior).mean() / per_pixel[0].numel() if config.kl_weight > 0 else zero
    total = recon + config.perception_weight * perception + config.kl_weight * kl
    return LossTerms(recon, perception, kl, total)
