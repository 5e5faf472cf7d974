"""What the agent makes of a generated image: its input as ``preprocess`` makes it, guided ReLUs
that always come off, and saliency that agrees with Captum's GuidedBackprop and Saliency."""

from __future__ import annotations

import pytest
import torch
from captum.attr import GuidedBackprop, Saliency
from tiny_states import ACTIONS, tiny_agent
from torch import nn

from understanding_rl_vision.agents.base import Agent
from understanding_rl_vision.states.model import to_images
from understanding_rl_vision.states.perception import agent_input, agent_outputs, guided_relus, saliency


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_agent_input_is_what_preprocess_makes_of_the_uint8_frames(frames, layout):
    agent = tiny_agent(layout=layout)
    obs = frames[:8]
    made = agent_input(agent, to_images(torch.as_tensor(obs)))
    expected = agent.preprocess(obs)
    assert made.shape == expected.shape == ((8, 3, 24, 24) if layout == "NCHW" else (8, 24, 24, 3))
    assert torch.allclose(made, expected, rtol=0, atol=1e-6)
    with torch.no_grad():
        out, real = agent_outputs(agent, to_images(torch.as_tensor(obs))), agent(obs)
    assert torch.allclose(out.logits, real.logits, rtol=0, atol=1e-5)
    assert torch.allclose(out.value, real.value, rtol=0, atol=1e-5)


def test_agent_input_keeps_the_graph(frames):
    images = to_images(torch.as_tensor(frames[:2])).requires_grad_(True)
    (gradient,) = torch.autograd.grad(agent_outputs(tiny_agent(), images).value.sum(), images)
    assert gradient.shape == images.shape and float(gradient.abs().max()) > 0


def test_guided_relus_are_removed_even_when_the_body_raises():
    model = tiny_agent().model
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3
    with pytest.raises(RuntimeError, match="inside"), guided_relus(model) as count:
        assert count == 3
        assert all(len(m._backward_hooks) == 1 for m in relus)
        raise RuntimeError("inside")
    assert all(len(m._backward_hooks) == 0 for m in model.modules())
    with guided_relus(model) as count:
        assert count == 3
    assert all(len(m._backward_hooks) == 0 for m in model.modules())


def test_guided_relus_pass_back_only_positive_gradients():
    relu = nn.ReLU()
    x = torch.tensor([1.0, 2.0, -1.0, 3.0], requires_grad=True)
    upstream = torch.tensor([0.5, -2.0, 4.0, 1.0])
    with guided_relus(relu) as count:
        (guided,) = torch.autograd.grad(relu(x), x, upstream)
    (plain,) = torch.autograd.grad(relu(x), x, upstream)
    assert count == 1
    assert guided.tolist() == [0.5, 0.0, 0.0, 1.0]
    assert plain.tolist() == [0.5, -2.0, 0.0, 1.0]


class Logits(nn.Module):
    """The agent's logits on images in [0, 1], as a module over its model (for Captum)."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent
        self.model = agent.model  # Captum hooks the ReLUs it finds among this module's children

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return agent_outputs(self.agent, images).logits


def normalised_magnitude(gradient: torch.Tensor) -> torch.Tensor:
    magnitude = gradient.abs().sum(dim=1)
    return magnitude / magnitude.flatten(1).amax(dim=1)[:, None, None]


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")
@pytest.mark.parametrize("guided", [True, False])
def test_saliency_agrees_with_captum(frames, guided):
    agent = tiny_agent(seed=3)
    images = to_images(torch.as_tensor(frames[:8]))
    ours = saliency(agent, images, guided=guided, blur=1)
    wrapper = Logits(agent)
    with torch.no_grad():
        target = wrapper(images).argmax(dim=1)
    method = GuidedBackprop(wrapper) if guided else Saliency(wrapper)
    theirs = method.attribute(images.clone().requires_grad_(True), target=target)
    expected = normalised_magnitude(theirs.detach())
    assert ours.shape == (8, 24, 24)
    assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-6), float((ours - expected).abs().max())
    assert all(len(m._backward_hooks) == 0 for m in agent.model.modules())


def test_guided_saliency_is_not_the_plain_gradient(frames):
    agent = tiny_agent(seed=3)
    images = to_images(torch.as_tensor(frames[:8]))
    guided, plain = saliency(agent, images, guided=True, blur=1), saliency(agent, images, guided=False, blur=1)
    assert float((guided - plain).abs().max()) > 0.05


@pytest.mark.parametrize(("guided", "blur"), [(True, 5), (False, 3), (True, 1)])
def test_saliency_is_in_the_unit_interval_with_a_peak_of_one(frames, guided, blur):
    found = saliency(tiny_agent(), to_images(torch.as_tensor(frames[:8])), guided=guided, blur=blur)
    assert found.min() >= 0.0 and found.max() <= 1.0
    assert found.flatten(1).amax(dim=1).tolist() == [1.0] * 8
    assert float(found.mean()) < 0.9  # not flat


class OnePixel(nn.Module):
    """Logits that read one pixel of channel 1 only: action a scores (a + 1) x that pixel."""

    def __init__(self, row: int, col: int) -> None:
        super().__init__()
        self.row, self.col = row, col
        self.scale = nn.Parameter(torch.arange(1.0, len(ACTIONS) + 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixel = x[:, 1, self.row, self.col]
        return pixel[:, None] * self.scale, pixel


def test_saliency_blurs_with_a_box_filter_and_normalises_each_frame():
    agent = Agent(model=OnePixel(10, 7), observation_shape=(24, 24, 3), action_names=ACTIONS)
    images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    sharp = saliency(agent, images, guided=False, blur=1)
    assert sharp[:, 10, 7].tolist() == [1.0, 1.0] and float(sharp.sum()) == 2.0
    blurred = saliency(agent, images, guided=False, blur=3)
    square = torch.zeros(24, 24)
    square[9:12, 6:9] = 1.0  # each of the 3x3 neighbours averages in a ninth of the one pixel's gradient
    assert torch.allclose(blurred, square.expand(2, 24, 24), rtol=0, atol=1e-6)
