"""The networks the tree tests share: the hand-built one whose tree is computed by hand, and the
tree's layers per built-in attention agent."""

from __future__ import annotations

import torch
from torch import nn

ACTIONS = ["NOOP", "FIRE", "RIGHT", "LEFT"]
NATURE_LAYERS = ("attention.mask", "relu3", "relu2", "relu1")
LAYERS = {"attention": ("attention.mask", "normalize", "relu2", "relu1"), "fls": NATURE_LAYERS}
"""The tree's layers per agent. Under the attention agent's mask, relu3 is L2-normalised per location
first, so the mask is blind to its scale and activation x gradient there is 0: the normalised
features are the level below the mask (see test_scale_invariant_layers_have_no_children)."""


class HandBuilt(nn.Module):
    """10x10x1 -> conv 2x2/2 (ones) -> relu1 5x5 -> conv 3x3 (corners 1, 2, 3, 1) -> relu2 3x3 ->
    1x1 score (weight 1) -> softmax over the 9 locations -> mask."""

    attention_layer = "mask"

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 2, stride=2, bias=False)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(1, 1, 3, bias=False)
        self.relu2 = nn.ReLU()
        self.score = nn.Conv2d(1, 1, 1, bias=False)
        self.mask = nn.Identity()
        with torch.no_grad():
            self.conv1.weight.fill_(1.0)
            self.conv2.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 1.0]]).view(1, 1, 3, 3))
            self.score.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        scores = self.score(features)
        mask = self.mask(scores.flatten(2).softmax(dim=-1).reshape(scores.shape))
        return (features * mask).sum(dim=(1, 2, 3))


def hand_built_input() -> torch.Tensor:
    """Bright pixels making relu1 = 1 at (0, 0), (0, 2), (2, 0) and 5 at (4, 4), so that
    relu2 = [[6, 0, 1], [0, 0, 0], [1, 0, 5]]."""
    frame = torch.zeros(1, 1, 10, 10)
    frame[0, 0, 0, 0] = 1.0  # relu1 (0, 0)
    frame[0, 0, 1, 5] = 1.0  # relu1 (0, 2)
    frame[0, 0, 4, 1] = 1.0  # relu1 (2, 0)
    frame[0, 0, 9, 9] = 5.0  # relu1 (4, 4)
    return frame
