"""The frames a generator learns from: the agent's own rollouts, made slightly off-policy.

Frames are kept every ``keep_every`` steps, as the run's observation set keeps them, from rollouts
where each action is uniformly random with chance ``epsilon`` and the agent's own otherwise (seed
003, section 4.1), on a seed stream of their own so that they never repeat the run's trajectories.
Each frame's saliency (:func:`~.perception.saliency`) is computed once, since the agent is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..agents.base import Agent
from ..envs.spec import EnvSpec
from ..rollout import open_env
from .config import GeneratorConfig
from .model import to_images
from .perception import saliency

GENERATOR_STREAM = 3
"""Spawn key that keeps the generator's rollouts apart from the run's and from evaluation's."""
CHUNK = 256
"""Frames per saliency pass."""


@dataclass(frozen=True)
class Frames:
    observations: np.ndarray  # (N, H, W, C) uint8
    saliency: np.ndarray  # (N, H, W) uint8, the saliency x 255
    value_scale: float = 1.0
    """The spread (standard deviation) of the agent's value, or Q-values, over these frames: the
    perception term measures value errors in it, so its weight means the same for any reward scale."""


def collect_frames(agent: Agent, config: GeneratorConfig, env_spec: EnvSpec | None, progress: bool) -> Frames:
    env_seed, action_seed = (
        int(s) % (1 << 30) for s in np.random.SeedSequence(config.seed, spawn_key=(GENERATOR_STREAM,)).generate_state(2)
    )
    generator = torch.Generator().manual_seed(action_seed)
    rng = np.random.default_rng(action_seed)
    rounds = -(-config.num_frames // config.num_envs)
    with open_env(agent, env_spec, config.num_envs, env_seed) as env:
        kept = np.empty((rounds, config.num_envs, *env.observation_shape), np.uint8)
        step = env.reset()
        with tqdm(total=rounds * config.keep_every, desc="frames", unit="step", disable=not progress) as bar:
            for k in range(rounds):
                for _ in range(config.keep_every):
                    actions = agent.act(step.obs, generator).actions
                    explore = rng.random(config.num_envs) < config.epsilon
                    actions = np.where(explore, rng.integers(agent.num_actions, size=config.num_envs), actions)
                    step = env.step(actions)
                    bar.update()
                kept[k] = step.obs
    observations = kept.swapaxes(0, 1).reshape(-1, *kept.shape[2:])[: config.num_frames]
    return Frames(observations, frame_saliency(agent, observations, config, progress), value_scale(agent, observations))


@torch.no_grad()
def value_scale(agent: Agent, observations: np.ndarray) -> float:
    """The standard deviation of the value (a Q-network: of its Q-values) over ``observations``."""
    parts = []
    for start in range(0, len(observations), CHUNK):
        out = agent(observations[start : start + CHUNK])
        parts.append((out.logits if agent.action_outputs == "q_values" else out.value).float().flatten().cpu())
    spread = float(torch.cat(parts).std()) if sum(len(p) for p in parts) > 1 else 0.0
    return spread if spread > 1e-6 else 1.0


def frame_saliency(agent: Agent, observations: np.ndarray, config: GeneratorConfig, progress: bool) -> np.ndarray:
    out = np.empty(observations.shape[:3], np.uint8)
    for start in tqdm(range(0, len(observations), CHUNK), desc="saliency", unit="chunk", disable=not progress):
        images = to_images(torch.as_tensor(observations[start : start + CHUNK], device=agent.device))
        found = saliency(agent, images, guided=config.guided, blur=config.saliency_blur)
        out[start : start + CHUNK] = found.mul(255).round().to(torch.uint8).cpu().numpy()
    return out
