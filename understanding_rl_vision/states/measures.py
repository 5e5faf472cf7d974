"""Seed 003's own measurements of a generator.

* **Generator goggles** (its table 1): the agent plays with every observation replaced by the
  generator's reconstruction of it. A generator that keeps what the agent decides by keeps its score.
* **Novelty** (its table 2): for each generated state, the share of pixels that differ from the
  nearest training frame (by mean squared error) by more than a quarter of the value range in some
  channel; reported as the fraction of states whose share exceeds each threshold.
* **Nearest real frames** (its figure 5): for each generated state, the real frame nearest in pixels
  and the real frame whose target energy is nearest to the state's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ..agents.base import Agent
from ..envs.spec import EnvSpec
from ..training.evaluate import EvaluationResult, evaluate
from .model import StateVAE, to_images, to_observations
from .perception import agent_input
from .targets import Target

NOVELTY_THRESHOLDS = (0.05, 0.10, 0.20, 0.30, 0.40, 0.50)
"""Shares of differing pixels the novelty table counts states above."""
PIXEL_DIFFERENCE = 0.25
"""A pixel differs when a channel's values differ by more than this share of the range (the seed's)."""
CHUNK = 256


def goggled(agent: Agent, vae: StateVAE) -> Agent:
    """``agent`` seeing only ``vae``'s reconstructions of its observations (the posterior mean decoded)."""
    vae.eval()  # batch norm with its running statistics: a frame's reconstruction never depends on its batch
    inner = agent.forward_preprocessed
    scale, nhwc = agent.preprocessing.scale, agent.preprocessing.layout == "NHWC"

    def through_generator(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = (x.permute(0, 3, 1, 2) if nhwc else x) / (scale * 255.0)
        out = inner(agent_input(agent, vae.reconstruct(images.clamp(0, 1))))
        return out.logits, out.value

    return dataclasses.replace(agent, forward=through_generator)


def goggles_score(
    agent: Agent,
    vae: StateVAE | None,
    episodes: int,
    *,
    env_spec: EnvSpec | None = None,
    num_envs: int = 16,
    seed: int = 0,
    progress: bool = False,
    baseline: bool = False,
) -> EvaluationResult:
    """The agent's evaluation on real frames (``vae`` None) or through the generator's goggles; the
    same envs and seeds either way, so the scores differ only by what the agent sees. With
    ``baseline``, a random policy plays them too."""
    player = agent if vae is None else goggled(agent, vae)
    return evaluate(
        player, episodes, num_envs=num_envs, env_spec=env_spec, seed=seed, progress=progress, baseline=baseline
    )


def nearest_by_pixels(generated: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each generated (N, H, W, C) uint8 state: the index of the real frame with the least mean
    squared error, and that error (in [0, 1] units)."""
    gen = torch.as_tensor(generated).flatten(1).float() / 255
    best = torch.full((len(gen),), float("inf"))
    index = torch.zeros(len(gen), dtype=torch.long)
    gen_sq = gen.square().sum(1)
    for start in range(0, len(real), CHUNK):
        chunk = torch.as_tensor(real[start : start + CHUNK]).flatten(1).float() / 255
        distance = (gen_sq[:, None] - 2 * gen @ chunk.T + chunk.square().sum(1)[None]) / gen.shape[1]
        value, where = distance.min(dim=1)
        better = value < best
        best = torch.where(better, value, best)
        index = torch.where(better, where + start, index)
    return index.numpy(), best.clamp_min(0).numpy()


def differing_share(generated: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """(N,) the share of each state's pixels where some channel differs from its nearest frame by
    more than :data:`PIXEL_DIFFERENCE` of the range."""
    difference = np.abs(generated.astype(np.int16) - nearest.astype(np.int16)) > PIXEL_DIFFERENCE * 255
    return difference.any(axis=-1).reshape(len(generated), -1).mean(axis=1)


def novelty_table(shares: np.ndarray, thresholds: Sequence[float] = NOVELTY_THRESHOLDS) -> dict[float, float]:
    """Threshold -> the fraction of generated states that differ from their nearest frame in more
    than that share of pixels."""
    return {t: float((np.asarray(shares) > t).mean()) for t in thresholds}


@torch.no_grad()
def target_energies(agent: Agent, target: Target, observations: np.ndarray) -> np.ndarray:
    """(N,) ``target``'s energy of real observations."""
    out = []
    for start in range(0, len(observations), CHUNK):
        outputs = agent(observations[start : start + CHUNK])
        out.append(target.energy(agent, outputs).float().cpu())
    return torch.cat(out).numpy()


def nearest_by_energy(generated_energy: np.ndarray, real_energy: np.ndarray) -> np.ndarray:
    """For each generated state, the index of the real frame whose energy is closest to its own."""
    return np.abs(real_energy[None, :] - generated_energy[:, None]).argmin(axis=1)


@torch.no_grad()
def reconstruct_observations(vae: StateVAE, observations: np.ndarray) -> np.ndarray:
    """uint8 reconstructions of uint8 observations, e.g. to look at or to measure."""
    device = next(vae.parameters()).device
    parts = [
        to_observations(vae.reconstruct(to_images(torch.as_tensor(observations[s : s + CHUNK], device=device)))).cpu()
        for s in range(0, len(observations), CHUNK)
    ]
    return torch.cat(parts).numpy()
