"""PFRL's Atari-example networks, built with PFRL itself (a test dependency), for the tests that
read PFRL files: tests/agents/test_pfrl.py, tests/envs/test_mario.py, tests/render/test_video.py."""

from __future__ import annotations

from pathlib import Path

import pfrl
import torch
from nature_cnn import nature_trunk
from pfrl.policies import SoftmaxCategoricalHead
from torch import nn


def softmax_policy_and_value(num_actions: int, hidden: int = 512) -> nn.Module:
    return pfrl.nn.Branched(
        nn.Sequential(nn.Linear(hidden, num_actions), SoftmaxCategoricalHead()), nn.Linear(hidden, 1)
    )


def save_ppo(directory: Path, num_actions: int) -> nn.Module:
    """train_ppo_ale.py's network (the Nature CNN's trunk, whose lecun_init changes only the weights)
    with ``num_actions`` outputs, saved by a real PFRL PPO agent."""
    model = nn.Sequential(*nature_trunk(), softmax_policy_and_value(num_actions))
    pfrl.agents.PPO(model, torch.optim.Adam(model.parameters(), lr=1e-4)).save(str(directory))
    return model
