"""The generator's training settings (seed 003's equation 1): one frozen dataclass, every field a
flag of ``states train`` with the same name.

The seed's text lost its numbers (the loss weights, the latent size, the epochs); the defaults here
are ours, chosen to train a 64x64 CoinRun generator in tens of minutes on two CPU cores, and
``docs/seeds.md`` (seed 003) records what each setting measured.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class GeneratorConfig:
    """How a generator of the agent's states is trained, and on what."""

    latent_size: int = 64
    """Dimensions of the latent space the states of interest are optimised in."""
    width: int = 32
    """Channels of the encoder's first stage; each of its four stages doubles them."""
    num_frames: int = 8192
    """Observations collected from the agent's own rollouts to train on (a tenth is held out)."""
    epsilon: float = 0.1
    """Chance of a uniformly random action at each step of those rollouts, so the generator also
    sees states just off the agent's usual path."""
    num_envs: int = 16
    """Parallel environments of those rollouts."""
    keep_every: int = 4
    """Steps between two kept observations, so consecutive, near-identical frames do not dominate."""
    epochs: int = 20
    """Passes over the training frames."""
    batch_size: int = 64
    """Frames per optimiser step."""
    learning_rate: float = 1e-3
    """Adam's step size."""
    saliency_weight: float = 4.0
    """How much more a fully salient pixel's reconstruction error counts than an ignored one's: the
    weight is 1 + saliency_weight x the agent's blurred, normalised saliency (0: a plain VAE)."""
    saliency_blur: int = 5
    """Side of the box filter the saliency is blurred with, in pixels."""
    guided: bool = True
    """Saliency by guided backpropagation (the seed's choice); otherwise the plain gradient."""
    perception_weight: float = 0.003
    """Weight of the agent-perception term: the policy's KL divergence and the value's squared
    error (the Q-values' squared error for a Q-network) between the original and its
    reconstruction (0: off)."""
    kl_weight: float = 0.05
    """Weight of the KL divergence of the encoder's posterior to N(0, I), per latent dimension and
    pixel, as the reconstruction error is a mean over pixels."""
    seed: int = 0
    """Seeds the rollouts, the held-out split, the initial weights and the batches."""
    save_every: int = 1
    """Epochs between two saves of the generator and its resume state."""
    snapshot_every: int = 0
    """Epochs between two kept copies of the generator (``generator-epoch-N.safetensors``), e.g. to
    measure it against training time; 0 keeps none."""
    device: str = "cpu"
    """Torch device: cpu or cuda."""

    def __post_init__(self) -> None:
        for name in ("latent_size", "width", "num_frames", "num_envs", "keep_every", "epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.saliency_blur < 1 or self.saliency_blur % 2 == 0:
            raise ConfigError(f"saliency_blur must be an odd positive integer, got {self.saliency_blur}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {self.epsilon}")
        for name in ("saliency_weight", "perception_weight", "kl_weight", "learning_rate"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.num_frames < 20:
            raise ConfigError(f"num_frames must be at least 20 (a tenth is held out), got {self.num_frames}")
        if self.save_every < 1:
            raise ConfigError(f"save_every must be a positive integer, got {self.save_every}")
        if self.snapshot_every < 0:
            raise ConfigError(f"snapshot_every must not be negative, got {self.snapshot_every}")


RESUMABLE_CHANGES = ("epochs", "save_every", "snapshot_every", "device")
"""Settings a resumed training may change: how long and where, not what is learned."""


def make_generator_config(**options: Any) -> GeneratorConfig:
    """A :class:`GeneratorConfig` from keyword options; unknown names fail listing the valid ones."""
    names = [f.name for f in fields(GeneratorConfig)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(f"unknown generator option(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    return GeneratorConfig(**options)
