"""The generator: a convolutional VAE over the agent's own observations (seed 003, section 4.1).

Four encoder stages (a stride-2 convolution, batch norm, ReLU; the width doubling each time), a
linear layer to the posterior's mean and log-variance, and a decoder mirroring them with transposed
convolutions. Frames are padded up to a multiple of 16 going in and the decoder's output is cropped
back to the agent's size (the seed upsamples and centre-crops the same way), so any observation
size works: CoinRun's 64x64x3, Atari's 84x84 stacks of four grey frames.

Images are (N, C, H, W) floats in [0, 1], i.e. the uint8 observation / 255, channels first.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

STAGES = 4
STRIDE = 2**STAGES


class Posterior(NamedTuple):
    mean: torch.Tensor  # (N, Z)
    log_var: torch.Tensor  # (N, Z)


class StateVAE(nn.Module):
    """``encode`` -> :class:`Posterior`, ``decode`` -> images; ``forward`` samples between them."""

    def __init__(self, shape: tuple[int, int, int], latent_size: int = 64, width: int = 32) -> None:
        """``shape`` is the observation's (H, W, C), as the environment yields it."""
        super().__init__()
        height, wide, channels = shape
        self.shape = (height, wide, channels)
        self.latent_size = latent_size
        self.width = width
        self.padded = (-(-height // STRIDE) * STRIDE, -(-wide // STRIDE) * STRIDE)
        self.grid = (self.padded[0] // STRIDE, self.padded[1] // STRIDE)
        widths = [width * 2**i for i in range(STAGES)]
        encoder: list[nn.Module] = []
        for into, out in zip([channels, *widths[:-1]], widths):
            encoder += [nn.Conv2d(into, out, 4, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        self.encoder = nn.Sequential(*encoder)
        flat = widths[-1] * self.grid[0] * self.grid[1]
        self.to_posterior = nn.Linear(flat, 2 * latent_size)
        self.from_latent = nn.Linear(latent_size, flat)
        decoder: list[nn.Module] = []
        for into, out in zip(widths[::-1], [*widths[::-1][1:], channels]):
            decoder.append(nn.ConvTranspose2d(into, out, 4, stride=2, padding=1))
            if out != channels:
                decoder += [nn.BatchNorm2d(out), nn.ReLU()]
        self.decoder = nn.Sequential(*decoder)

    def encode(self, images: torch.Tensor) -> Posterior:
        top, left = self._offsets()
        height, wide, _ = self.shape
        pad = (left, self.padded[1] - wide - left, top, self.padded[0] - height - top)
        hidden = self.encoder(F.pad(images, pad, mode="replicate"))
        mean, log_var = self.to_posterior(hidden.flatten(1)).chunk(2, dim=1)
        return Posterior(mean, log_var.clamp(-12.0, 8.0))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        hidden = self.from_latent(latents).view(len(latents), -1, *self.grid)
        full = torch.sigmoid(self.decoder(torch.relu(hidden)))
        top, left = self._offsets()
        return full[:, :, top : top + self.shape[0], left : left + self.shape[1]]

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Posterior]:
        """A reconstruction through one latent sample (the reparameterisation trick) and the posterior."""
        posterior = self.encode(images)
        noise = torch.randn(posterior.mean.shape, generator=generator, device=images.device)
        return self.decode(posterior.mean + noise * (0.5 * posterior.log_var).exp()), posterior

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The decoding of the posterior's mean: what "generator goggles" show the agent."""
        return self.decode(self.encode(images).mean)

    def _offsets(self) -> tuple[int, int]:
        return (self.padded[0] - self.shape[0]) // 2, (self.padded[1] - self.shape[1]) // 2


def kl_to_prior(posterior: Posterior) -> torch.Tensor:
    """(N,) KL divergence of each diagonal Gaussian posterior to N(0, I)."""
    mean, log_var = posterior
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=1)


def to_images(observations: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) observations -> (N, C, H, W) floats in [0, 1]."""
    return observations.permute(0, 3, 1, 2).float().div(255.0)


def to_observations(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) floats in [0, 1] -> uint8 (N, H, W, C), rounded."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
