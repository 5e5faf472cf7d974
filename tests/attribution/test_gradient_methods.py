"""Gradient, gradient x input and the noise tunnel, checked against Captum on the bundled agent."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient, NoiseTunnel, Saliency

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.attribution import ExplainedModel, explain_agent, hook_count
from understanding_rl_vision.attribution.methods.base import REGISTRY, Method, MethodInfo, method_class
from understanding_rl_vision.attribution.methods.gradient import Gradient, GradientTimesInput, input_gradient
from understanding_rl_vision.attribution.methods.noise_tunnel import (
    NoiseTunnel as OurNoiseTunnel,
)
from understanding_rl_vision.attribution.methods.noise_tunnel import (
    SmoothGrad,
    SmoothGradSquared,
    VarGrad,
    noise_samples,
)
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.envs import make_vec_env
from understanding_rl_vision.errors import UserError

TOLERANCE = 1e-4  # max |ours - Captum| relative to max |Captum|
SAMPLES = 4
NOISE = 0.15
OUR_KINDS = {"smoothgrad": SmoothGrad, "smoothgrad_sq": SmoothGradSquared, "vargrad": VarGrad}


@pytest.fixture(scope="module")
def setup():
    """The bundled agent, two real CoinRun frames after a few random steps, preprocessed."""
    agent = load_checkpoint(bundled_agent_path())
    rng = np.random.default_rng(0)
    with make_vec_env("coinrun", num_envs=2, seed=0) as env:
        step = env.reset()
        for _ in range(5):
            step = env.step(rng.integers(env.num_actions, size=env.num_envs))
    explained = explain_agent(agent)
    inputs = agent.preprocess(step.obs)
    outputs = explained.outputs(["value", "logit:RIGHT"])
    return agent, explained, inputs, outputs


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference.detach()).abs().max() / reference.detach().abs().max())


def scalar(explained: ExplainedModel, weights: tuple[float, ...]):
    """f_k: the explained scalar as Captum sees it, (N, C, H, W) -> (N,)."""
    row = torch.tensor(weights, dtype=torch.float32)
    return lambda x: explained.forward(x) @ row


def test_gradient_matches_captum_saliency(setup):
    agent, explained, inputs, outputs = setup
    trainable = [p.requires_grad for p in agent.model.parameters()]
    ours = input_gradient(explained, inputs, outputs)
    maps = Gradient().attribute(explained, inputs, outputs)
    assert ours.shape == (len(outputs), *inputs.shape) and ours.dtype == torch.float32
    assert maps.shape == (len(outputs), len(inputs), *inputs.shape[2:])
    for k, output in enumerate(outputs):
        reference = Saliency(scalar(explained, output.weights)).attribute(inputs.clone().requires_grad_(), abs=False)
        assert relative_difference(ours[k], reference) <= TOLERANCE, output.name
        assert relative_difference(maps[k], reference.sum(dim=1)) <= TOLERANCE, output.name
    assert hook_count(agent.model) == 0
    assert [p.requires_grad for p in agent.model.parameters()] == trainable


def test_gradient_x_input_matches_captum(setup):
    _, explained, inputs, outputs = setup
    method = GradientTimesInput()
    ours = method.channel_attribution(explained, inputs, outputs)
    maps = method.attribute(explained, inputs, outputs)
    for k, output in enumerate(outputs):
        reference = InputXGradient(scalar(explained, output.weights)).attribute(inputs.clone().requires_grad_())
        assert relative_difference(ours[k], reference) <= TOLERANCE, output.name
        assert relative_difference(maps[k], reference.sum(dim=1)) <= TOLERANCE, output.name


def captum_noise_tunnel(explained, inputs, weights, kind, draws, captum_method=Saliency, **kwargs):
    """Captum's NoiseTunnel, frame by frame (its stdev is one float per input tensor, ours one per
    frame), fed our draws: captum/attr/_core/noise_tunnel.py draws its noise with
    ``torch.normal(0, stdev_expanded)`` of shape (frames * samples, ...) in ``_add_noise_to_input``,
    adds it to ``input.repeat_interleave(samples, dim=0)`` and aggregates by its own code."""
    results, calls = [], []
    for n in range(len(inputs)):
        frame = inputs[n : n + 1]
        sigma = float(NOISE * (frame.max() - frame.min()))
        original_normal = torch.normal

        def fake_normal(mean, std, *args, n=n, frame=frame, sigma=sigma, **kw):
            assert mean == 0 and std.shape == (SAMPLES, *frame.shape[1:])
            assert torch.allclose(std, torch.tensor(sigma))
            calls.append(n)
            return draws[:, n].clone()

        torch.normal = fake_normal
        try:
            tunnel = NoiseTunnel(captum_method(scalar(explained, weights)))
            result = tunnel.attribute(frame.clone(), nt_type=kind, nt_samples=SAMPLES, stdevs=sigma, **kwargs)
        finally:
            torch.normal = original_normal
        results.append(result)
    assert calls == list(range(len(inputs)))  # Captum used our draws, once per frame
    return torch.cat(results)


@pytest.mark.parametrize("kind", sorted(OUR_KINDS))
def test_noise_tunnel_matches_captum(setup, kind):
    _, explained, inputs, outputs = setup
    method = OUR_KINDS[kind](noise_samples=SAMPLES, noise_level=NOISE, noise_seed=3)
    draws = noise_samples(inputs, SAMPLES, NOISE, seed=3)
    assert draws.shape == (SAMPLES, *inputs.shape)
    ours = method.channel_attribution(explained, inputs, outputs)
    maps = method.attribute(explained, inputs, outputs)
    for k, output in enumerate(outputs):
        reference = captum_noise_tunnel(explained, inputs, output.weights, kind, draws, abs=False)
        assert relative_difference(ours[k], reference) <= TOLERANCE, (kind, output.name)
        assert relative_difference(maps[k], reference.sum(dim=1)) <= TOLERANCE, (kind, output.name)


def test_noise_tunnel_wraps_gradient_x_input(setup):
    _, explained, inputs, outputs = setup
    method = SmoothGrad(method=GradientTimesInput(), noise_samples=SAMPLES, noise_level=NOISE)
    draws = noise_samples(inputs, SAMPLES, NOISE, seed=0)
    ours = method.channel_attribution(explained, inputs, outputs[:1])
    reference = captum_noise_tunnel(explained, inputs, outputs[0].weights, "smoothgrad", draws, InputXGradient)
    assert relative_difference(ours[0], reference) <= TOLERANCE


def test_noise_is_seeded(setup):
    agent, explained, inputs, outputs = setup
    first = SmoothGrad(noise_samples=SAMPLES).attribute(explained, inputs, outputs)
    again = SmoothGrad(noise_samples=SAMPLES).attribute(explained, inputs, outputs)
    other = SmoothGrad(noise_samples=SAMPLES, noise_seed=1).attribute(explained, inputs, outputs)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(noise_samples(inputs, 2, NOISE, 5), noise_samples(inputs, 2, NOISE, 5))
    sigma = NOISE * (inputs.flatten(1).amax(1) - inputs.flatten(1).amin(1))
    spread = noise_samples(inputs, 64, NOISE, 0).transpose(0, 1).flatten(1).std(dim=1)
    assert torch.allclose(spread, sigma, rtol=0.02)
    assert hook_count(agent.model) == 0


class SquareReader(torch.nn.Module):
    """Blurs the input, then reads the squared blur inside one square only."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.blur = torch.nn.Conv2d(3, 1, 3, padding=1, bias=False)
        torch.nn.init.constant_(self.blur.weight, 1 / 27)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.blur(x) * self.mask) ** 2).flatten(1).sum(dim=1, keepdim=True)


def test_maps_peak_inside_the_square():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 18:26] = 1
    model = SquareReader(mask)
    explained = ExplainedModel(model, model, ("value",))
    inputs = 0.1 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    inputs[..., 8:16, 18:26] += 0.8  # the bright square the output reads
    outputs = explained.outputs("value")
    for method in (Gradient(), GradientTimesInput(), SmoothGrad(noise_samples=8)):
        maps = method.attribute(explained, inputs, outputs)[0]  # (N, H, W)
        for frame in maps:
            row, col = divmod(int(frame.abs().argmax()), frame.shape[1])
            assert 8 <= row < 16 and 18 <= col < 26, method.info.name
            outside = frame.abs().clone()
            outside[7:17, 17:27] = 0  # the square and the one-pixel ring the 3x3 blur reads
            assert outside.max() == 0, method.info.name
    assert hook_count(model) == 0


@dataclass(frozen=True)
class LayerMethod(Method):
    info: ClassVar[MethodInfo] = MethodInfo("fake-layer", "Fake layer", "none", "none", "layer", "channels")

    def attribute(self, explained, inputs, outputs, layer=None):
        raise NotImplementedError


def test_registry():
    assert {"gradient", "gradient-x-input", "smoothgrad", "smoothgrad-sq", "vargrad"} <= set(REGISTRY)
    for name in ("gradient", "gradient-x-input", "smoothgrad", "smoothgrad-sq", "vargrad"):
        method = method_class(name)()
        assert method.info.name == name and method.info.attaches == "input" and method.info.produces == "map"
    assert method_class("smoothgrad")().method == Gradient()
    assert method_class("vargrad")().kind == "vargrad"
    assert SmoothGrad().settings() != SmoothGrad(method=GradientTimesInput()).settings()
    with pytest.raises(UserError, match="attaches to the layer"):
        SmoothGrad(method=LayerMethod())
    with pytest.raises(UserError, match="attaches to the layer"):
        OurNoiseTunnel(LayerMethod(), kind="vargrad")
    with pytest.raises(UserError):
        SmoothGrad(kind="vargrad")
    with pytest.raises(UserError, match="samples"):
        OurNoiseTunnel(Gradient(), noise_samples=0)
    with pytest.raises(UserError, match="noise"):
        VarGrad(noise_level=-1.0)
