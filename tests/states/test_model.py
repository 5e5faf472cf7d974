"""The generator's VAE: shapes for any observation size, outputs in [0, 1], the KL to the prior,
and the conversions between uint8 observations and float images."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_states import tiny_vae

from understanding_rl_vision.states.model import Posterior, kl_to_prior, to_images, to_observations


@pytest.mark.parametrize(
    ("shape", "padded", "grid"),
    [((64, 64, 3), (64, 64), (4, 4)), ((84, 84, 4), (96, 96), (6, 6)), ((20, 36, 1), (32, 48), (2, 3))],
)
def test_round_trip_shapes(shape, padded, grid):
    vae = tiny_vae(shape=shape, latent_size=5, width=2)
    assert vae.padded == padded and vae.grid == grid
    height, width, channels = shape
    images = torch.rand(3, channels, height, width, generator=torch.Generator().manual_seed(0))
    posterior = vae.encode(images)
    assert posterior.mean.shape == posterior.log_var.shape == (3, 5)
    decoded = vae.decode(posterior.mean)
    assert decoded.shape == (3, channels, height, width)
    rebuilt, again = vae(images, torch.Generator().manual_seed(1))
    assert rebuilt.shape == (3, channels, height, width) and again.mean.shape == (3, 5)
    assert vae.reconstruct(images).shape == (3, channels, height, width)


def test_decoded_images_are_in_the_unit_interval():
    vae = tiny_vae().eval()
    latents = 20 * torch.randn(64, vae.latent_size, generator=torch.Generator().manual_seed(0))  # far from the prior
    with torch.no_grad():
        decoded = vae.decode(latents)
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0
    assert decoded.std() > 0.01  # not a constant image: the check above is not vacuous


def test_forward_noise_follows_the_generator():
    vae = tiny_vae().eval()
    images = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, _ = vae(images, torch.Generator().manual_seed(5))
        b, _ = vae(images, torch.Generator().manual_seed(5))
        c, _ = vae(images, torch.Generator().manual_seed(6))
    assert torch.allclose(a, b, rtol=0, atol=1e-7)
    assert (a - c).abs().max() > 1e-4


def test_the_posterior_log_variance_is_clamped():
    vae = tiny_vae()
    with torch.no_grad():
        vae.to_posterior.bias[vae.latent_size :] = 100.0
    log_var = vae.encode(torch.rand(2, 3, 24, 24)).log_var
    assert torch.all(log_var == 8.0)


def test_kl_to_the_prior_is_zero_at_the_prior():
    zero = torch.zeros(3, 7)
    assert torch.all(kl_to_prior(Posterior(zero, zero)) == 0.0)


def test_kl_to_the_prior_matches_the_closed_form():
    mean = torch.tensor([[1.0, -2.0], [0.0, 0.5]])
    log_var = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2, summed over dimensions
    expected = torch.tensor(
        [
            0.5 * (1.0 + 1.0 - 1.0 - 0.0) + 0.5 * (4.0 + 4.0 - 1.0 - math.log(4.0)),
            0.5 * (0.0 + 0.25 - 1.0 - math.log(0.25)) + 0.5 * (0.25 + 1.0 - 1.0 - 0.0),
        ]
    )
    assert torch.allclose(kl_to_prior(Posterior(mean, log_var)), expected, rtol=0, atol=1e-6)
    assert torch.allclose(expected, torch.tensor([0.5 + 3.5 - math.log(2.0), 0.125 + 0.5 * (math.log(4.0) - 0.75)]))


def test_images_and_observations_invert_each_other():
    observations = torch.randint(0, 256, (5, 7, 9, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    observations[0, 0, 0] = torch.tensor([0, 255, 128], dtype=torch.uint8)  # both ends of the range
    images = to_images(observations)
    assert images.shape == (5, 3, 7, 9) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert images[0, 1, 0, 0] == 1.0 and images[0, 0, 0, 0] == 0.0
    assert torch.allclose(images[2, :, 3, 4], observations[2, 3, 4].float() / 255)
    back = to_observations(images)
    assert back.dtype == torch.uint8 and back.is_contiguous()
    assert torch.equal(back, observations)


def test_to_observations_rounds_and_clamps():
    images = torch.tensor([-0.5, 0.0, 0.3 / 255, 0.6 / 255, 254.4 / 255, 1.0, 1.5]).view(1, 1, 1, 7)
    assert to_observations(images).flatten().tolist() == [0, 0, 0, 1, 254, 255, 255]
