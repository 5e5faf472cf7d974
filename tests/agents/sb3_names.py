"""Stable-Baselines3's names for the Nature CNN's modules, for tests that fake SB3 files without
importing stable_baselines3 (the real library is exercised in test_sb3.py)."""

from __future__ import annotations

import torch

SB3_NAMES = {
    "conv1": "features_extractor.cnn.0",
    "conv2": "features_extractor.cnn.2",
    "conv3": "features_extractor.cnn.4",
    "fc": "features_extractor.linear.0",
    "policy": "action_net",
    "value": "value_net",
}


def as_sb3_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our Nature module's state dict under SB3's names."""
    return {SB3_NAMES[k.split(".")[0]] + "." + k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
