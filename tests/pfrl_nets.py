"""PFRL's Atari-example networks, built with PFRL itself (a test dependency), for the tests that
read PFRL files: tests/agents/test_pfrl.py, tests/envs/test_mario.py, tests/render/test_video.py."""

from __future__ import annotations

from pathlib import Path

import pfrl
import torch
from pfrl.policies import SoftmaxCategoricalHead
from torch import nn


def nature_trunk() -> list[nn.Module]:
    """train_ppo_ale.py's convolutions and dense layer (its lecun_init changes only the weights)."""
    return [
        nn.Conv2d(4, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3136, 512),
        nn.ReLU(),
    ]


def softmax_policy_and_value(num_actions: int, hidden: int = 512) -> nn.Module:
    return pfrl.nn.Branched(
        nn.Sequential(nn.Linear(hidden, num_actions), SoftmaxCategoricalHead()), nn.Linear(hidden, 1)
    )


def save_ppo(directory: Path, num_actions: int) -> nn.Module:
    """train_ppo_ale.py's network with ``num_actions`` outputs, saved by a real PFRL PPO agent."""
    model = nn.Sequential(*nature_trunk(), softmax_policy_and_value(num_actions))
    pfrl.agents.PPO(model, torch.optim.Adam(model.parameters(), lr=1e-4)).save(str(directory))
    return model
