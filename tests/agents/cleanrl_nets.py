"""Networks written from the layouts of CleanRL's ``ppo_atari.py``, ``dqn_atari.py`` and
``ppo_procgen.py`` (same module names, shapes and forward passes), for the loader tests.

The ``cleanrl`` package on PyPI (0.4.8) predates the scripts' current form and cannot be imported
(its modules read command-line arguments at import), so these stand in for its Agent classes.
"""

from __future__ import annotations

import numpy as np
import torch
from nature_cnn import nature_trunk
from torch import nn

from understanding_rl_vision.envs import make_vec_env


class CleanRLAtariPPO(nn.Module):
    def __init__(self, actions: int = 4):
        super().__init__()
        self.network = nn.Sequential(*nature_trunk())
        self.actor = nn.Linear(512, actions)
        self.critic = nn.Linear(512, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # obs (N, 4, 84, 84) 0..255
        hidden = self.network(obs / 255.0)
        return self.actor(hidden), self.critic(hidden)


class CleanRLAtariDQN(nn.Module):
    def __init__(self, actions: int = 4):
        super().__init__()
        self.network = nn.Sequential(*nature_trunk(), nn.Linear(512, actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network(obs / 255.0)


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class Stack(nn.Module):
    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, 3, padding=1)
        self.res_block0 = Residual(outputs)
        self.res_block1 = Residual(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.conv(x), kernel_size=3, stride=2, padding=1)
        return self.res_block1(self.res_block0(x))


class CleanRLProcgenPPO(nn.Module):
    def __init__(self, actions: int = 15):
        super().__init__()
        self.network = nn.Sequential(
            Stack(3, 16), Stack(16, 32), Stack(32, 32), nn.Flatten(), nn.ReLU(), nn.Linear(32 * 8 * 8, 256), nn.ReLU()
        )
        self.actor = nn.Linear(256, actions)
        self.critic = nn.Linear(256, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # obs (N, 64, 64, 3) 0..255
        hidden = self.network(obs.permute(0, 3, 1, 2) / 255.0)
        return self.actor(hidden), self.critic(hidden)


def randomise(module: nn.Module) -> nn.Module:
    """Non-zero biases too, so a wrongly mapped tensor cannot hide."""
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.05)
    return module.eval()


def real_observations(env: str, count: int = 12) -> np.ndarray:
    with make_vec_env(env, num_envs=count, seed=3) as vec:
        step = vec.reset()
        for _ in range(6):
            step = vec.step(np.random.default_rng(0).integers(0, vec.num_actions, count))
        return step.obs
