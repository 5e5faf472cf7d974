"""Tiny agents, generators and frames for the states-of-interest tests (seed 003); the fixtures
in conftest.py are made from these, and tests import them directly to build variants.

The agent is a hand-made CNN of distinct ``nn.ReLU`` modules (so Captum's guided backpropagation
sees the same ReLUs ours does) on the DotGrid test env's 24x24x3 frames; it is untrained, which is
all the generator's code paths need.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from understanding_rl_vision.agents.base import Agent, Preprocessing
from understanding_rl_vision.envs import GymnasiumSpec, make_vec_env
from understanding_rl_vision.envs.testing import DOTGRID_ID
from understanding_rl_vision.states import StateVAE

DOTGRID = GymnasiumSpec(env_id=DOTGRID_ID)
SHAPE = (24, 24, 3)
ACTIONS = ("0", "1", "2", "3", "4")


class TinyNet(nn.Module):
    """Two stride-2 convolutions and a hidden layer, then a policy (or Q) head and a value head.
    ``nhwc``: the net takes channels-last input and permutes it itself."""

    def __init__(self, q_values: bool = False, nhwc: bool = False, channels: int = 3) -> None:
        super().__init__()
        self.q_values, self.nhwc = q_values, nhwc
        self.conv1 = nn.Conv2d(channels, 8, 4, stride=2, padding=1)  # 24 -> 12
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 4, stride=2, padding=1)  # 12 -> 6
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.hidden = nn.Linear(8 * 6 * 6, 32)
        self.relu3 = nn.ReLU()
        self.pi = nn.Linear(32, len(ACTIONS))
        self.v = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        h = self.relu3(self.hidden(self.flatten(self.relu2(self.conv2(self.relu1(self.conv1(x)))))))
        scores = self.pi(h)
        value = scores.max(dim=1).values if self.q_values else self.v(h)[:, 0]
        return scores, value


def tiny_agent(seed: int = 0, *, q_values: bool = False, layout: str = "NCHW") -> Agent:
    """A freshly initialised tiny agent for DotGrid (seeded, without touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyNet(q_values=q_values, nhwc=layout == "NHWC")
    return Agent(
        model=model,
        observation_shape=SHAPE,
        action_names=ACTIONS,
        preprocessing=Preprocessing(layout=layout),
        env_spec=DOTGRID,
        action_outputs="q_values" if q_values else "logits",
    )


def tiny_vae(seed: int = 0, shape: tuple[int, int, int] = SHAPE, latent_size: int = 8, width: int = 4) -> StateVAE:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return StateVAE(shape, latent_size=latent_size, width=width)


def dotgrid_frames(count: int, seed: int = 0) -> np.ndarray:
    """``count`` real DotGrid observations (N, 24, 24, 3) uint8 from random play."""
    rng = np.random.default_rng(seed)
    frames = []
    with make_vec_env(DOTGRID, num_envs=4, seed=seed) as env:
        step = env.reset()
        while len(frames) * 4 < count:
            frames.append(step.obs)
            step = env.step(rng.integers(env.num_actions, size=4))
    return np.concatenate(frames)[:count]
