"""The Nature CNN's trunk (Mnih et al. 2015) as plain torch layers: the convolutions and the dense
layer that CleanRL's and PFRL's Atari scripts both write out, for their loader tests."""

from __future__ import annotations

from torch import nn


def nature_trunk(channels: int = 4) -> list[nn.Module]:
    return [
        nn.Conv2d(channels, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 512),
        nn.ReLU(),
    ]
