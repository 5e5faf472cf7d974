"""Seed 003's equation 1: each term moves the generator's gradient as it should, and a term at
weight 0 has no effect at all. The sampling noise is the same in every compared call (a seeded
``generator``), so two calls differ only by what the test changes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_states import tiny_agent
from torch import nn

from understanding_rl_vision.states.config import GeneratorConfig
from understanding_rl_vision.states.loss import generator_loss, perception_error
from understanding_rl_vision.states.model import Posterior, kl_to_prior, to_images
from understanding_rl_vision.states.perception import agent_outputs

NOISE_SEED = 7


def config(**weights) -> GeneratorConfig:
    return GeneratorConfig(**{"saliency_weight": 0.0, "perception_weight": 0.0, "kl_weight": 0.0, **weights})


def gradient(vae, agent, images, weights, settings, only=None):
    """The loss terms and the flat gradient of the total with respect to the VAE's parameters
    (``only``: the parameters under that submodule's name)."""
    vae.zero_grad()
    terms = generator_loss(vae, agent, images, weights, settings, torch.Generator().manual_seed(NOISE_SEED))
    terms.total.backward()
    terms = type(terms)(*(t.detach() for t in terms))
    named = [(n, p) for n, p in vae.named_parameters() if only is None or n.startswith(only)]
    return terms, torch.cat([p.grad.flatten() for _, p in named])


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-9 + 1e-6 * float(a.abs().max())), float((a - b).abs().max())


def assert_differs(a: torch.Tensor, b: torch.Tensor, share: float = 0.01) -> None:
    """The two gradients differ by at least ``share`` of the first's norm."""
    assert float((a - b).norm()) > share * float(a.norm()) > 0, (float((a - b).norm()), float(a.norm()))


@pytest.fixture
def batch(frames):
    images = to_images(torch.as_tensor(frames[:8]))
    generator = torch.Generator().manual_seed(0)
    salient = torch.rand(8, 24, 24, generator=generator)
    other = torch.rand(8, 24, 24, generator=generator).square()
    return images, salient, other


def test_at_saliency_weight_zero_the_weights_do_not_enter(vae, agent, batch):
    images, salient, other = batch
    plain = config(perception_weight=1.0, kl_weight=0.05)
    terms, first = gradient(vae, agent, images, salient, plain)
    again, second = gradient(vae, agent, images, other, plain)
    assert_same(first, second)
    assert torch.allclose(terms.total, again.total, rtol=1e-6, atol=0)
    poisoned, third = gradient(vae, agent, images, torch.full_like(salient, float("nan")), plain)
    assert torch.isfinite(poisoned.total) and torch.isfinite(third).all()  # not even read
    assert_same(first, third)


def test_with_a_saliency_weight_the_weights_move_the_gradient(vae, agent, batch):
    images, salient, other = batch
    weighted = config(saliency_weight=4.0)
    terms, first = gradient(vae, agent, images, salient, weighted)
    again, second = gradient(vae, agent, images, other, weighted)
    assert_differs(first, second, 0.05)
    assert abs(float(terms.reconstruction - again.reconstruction)) > 1e-3 * float(terms.reconstruction)
    # the weighted error is the plain one times 1 + 4 x saliency, pixel by pixel
    with torch.no_grad():
        rebuilt, _ = vae(images, torch.Generator().manual_seed(NOISE_SEED))
    per_pixel = (rebuilt - images).square().mean(dim=1)
    expected = (per_pixel * (1 + 4.0 * salient)).mean()
    assert torch.allclose(terms.reconstruction, expected, rtol=1e-5, atol=0)


class FixedVAE(nn.Module):
    """Stands in for the generator: its reconstruction is ``output`` whatever it is given."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = nn.Parameter(output.clone())

    def forward(self, images, generator=None):
        zero = torch.zeros(len(images), 4)
        return self.output, Posterior(zero, zero)


@pytest.mark.parametrize("saliency_weight", [0.0, 1.0, 4.0])
def test_an_error_on_a_salient_pixel_costs_one_plus_the_saliency_weight_times_more(agent, saliency_weight):
    images = torch.full((1, 3, 24, 24), 0.5)
    weights = torch.zeros(1, 24, 24)
    weights[0, 3, 5] = 1.0
    settings = config(saliency_weight=saliency_weight)
    costs = []
    for row, col in ((3, 5), (10, 12)):  # salient, then ignored
        wrong = images.clone()
        wrong[0, 1, row, col] += 0.3
        costs.append(generator_loss(FixedVAE(wrong), agent, images, weights, settings).reconstruction.detach())
    salient, ignored = (float(c) for c in costs)
    assert ignored == pytest.approx(0.09 / 3 / (24 * 24), rel=1e-5)  # one channel of three, one pixel of 576
    assert salient == pytest.approx((1 + saliency_weight) * ignored, rel=1e-5)


def test_at_perception_weight_zero_the_agents_outputs_do_not_enter(vae, batch):
    images, salient, _ = batch
    agent, changed = tiny_agent(), tiny_agent()
    with torch.no_grad():
        changed.model.pi.weight.mul_(-3.0)
        changed.model.v.weight.add_(1.0)
    off = config(saliency_weight=4.0, kl_weight=0.05)
    terms, first = gradient(vae, agent, images, salient, off)
    again, second = gradient(vae, changed, images, salient, off)
    assert float(terms.perception) == float(again.perception) == 0.0
    assert_same(first, second)
    on = config(saliency_weight=4.0, kl_weight=0.05, perception_weight=1.0)
    terms, on_first = gradient(vae, agent, images, salient, on)
    again, on_second = gradient(vae, changed, images, salient, on)
    assert float(terms.perception) > 0 and float(again.perception) > 0
    assert torch.allclose(terms.total, again.total - again.perception + terms.perception, rtol=1e-6, atol=0)
    # what the term adds to the gradient: a clear share of it, and another for another agent
    seen_by_first, seen_by_second = on_first - first, on_second - second
    assert float(seen_by_first.norm()) > 1e-4 * float(first.norm())
    assert_differs(seen_by_first, seen_by_second, 0.2)
    assert_differs(on_first, on_second, 0.1)


def test_at_kl_weight_zero_the_kl_contributes_nothing(vae, agent, batch):
    """The total's gradient at KL weight k is the gradient at 0 plus k x the KL term's own gradient;
    that term reaches the encoder only, never the decoder."""
    images, salient, _ = batch
    k = 0.5
    without, base = gradient(vae, agent, images, salient, config(saliency_weight=4.0, perception_weight=1.0))
    assert float(without.kl) == 0.0
    with_kl, full = gradient(
        vae, agent, images, salient, config(saliency_weight=4.0, perception_weight=1.0, kl_weight=k)
    )
    vae.zero_grad()
    kl = kl_to_prior(vae.encode(images)).mean() / (24 * 24)
    kl.backward()
    kl = kl.detach()
    kl_gradient = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in vae.parameters()])
    assert float(with_kl.kl) == pytest.approx(float(kl), rel=1e-6) and float(kl) > 0
    assert float(with_kl.total) == pytest.approx(float(without.total) + k * float(kl), rel=1e-6)
    assert_same(full, base + k * kl_gradient)
    assert_differs(full, base, 0.001)
    decoder = [n.startswith(("decoder", "from_latent")) for n, p in vae.named_parameters() for _ in range(p.numel())]
    decoder_mask = torch.tensor(decoder)
    assert float(kl_gradient[decoder_mask].abs().max()) == 0.0
    assert float(kl_gradient[~decoder_mask].abs().max()) > 0.0


def test_the_total_is_the_weighted_sum_of_the_terms(vae, agent, batch):
    images, salient, _ = batch
    terms = generator_loss(
        vae, agent, images, salient, config(saliency_weight=2.0, perception_weight=0.7, kl_weight=0.3)
    )
    terms = type(terms)(*(t.detach() for t in terms))
    assert all(float(t) > 0 for t in terms)
    expected = terms.reconstruction + 0.7 * terms.perception + 0.3 * terms.kl
    assert torch.allclose(terms.total, expected, rtol=1e-6, atol=0)


def test_perception_error_of_a_policy_is_its_kl_plus_the_values_squared_error(frames):
    agent = tiny_agent()
    original = to_images(torch.as_tensor(frames[:6]))
    assert torch.allclose(perception_error(agent, original, original), torch.zeros(6), atol=1e-6)
    other = to_images(torch.as_tensor(frames[6:12])).requires_grad_(True)
    error = perception_error(agent, original, other)
    with torch.no_grad():
        target, seen = agent_outputs(agent, original), agent_outputs(agent, other)
    p, log_p, log_q = target.logits.softmax(1), target.logits.log_softmax(1), seen.logits.log_softmax(1)
    expected = (p * (log_p - log_q)).sum(1) + (seen.value - target.value).square()
    assert torch.allclose(error, expected, rtol=1e-5, atol=1e-7) and float(error.detach().max()) > 1e-6
    assert error.sum().requires_grad


def test_perception_error_of_a_q_network_is_the_q_values_squared_error(frames):
    agent = tiny_agent(q_values=True)
    original = to_images(torch.as_tensor(frames[:6])).requires_grad_(True)
    other = to_images(torch.as_tensor(frames[6:12])).requires_grad_(True)
    error = perception_error(agent, original, other)
    with torch.no_grad():
        expected = F.mse_loss(
            agent_outputs(agent, other).logits, agent_outputs(agent, original).logits, reduction="none"
        )
    assert torch.allclose(error, expected.mean(1), rtol=1e-5, atol=1e-9) and float(error.detach().max()) > 0
    (to_original,) = torch.autograd.grad(error.sum(), original, allow_unused=True)
    assert to_original is None  # the original is the target: no gradient reaches it
