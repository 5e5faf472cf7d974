"""What the agent makes of an image: its outputs on generated frames, differentiably, and its
saliency (the weight seed 003's reconstruction term puts on each pixel).

The agent's own :meth:`~..agents.Agent.preprocess` takes uint8 observations; a generator's output is
a float image that gradients must flow through, so :func:`agent_input` applies the same scale and
layout without leaving the graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..agents.base import Agent, AgentOutput
from ..errors import UserError


def check_agent(agent: Agent) -> None:
    """A generator is trained for a feed-forward agent: a recurrent agent's outputs depend on a
    memory that a single generated frame does not have."""
    if agent.recurrent:
        raise UserError(
            "states of interest need a feed-forward agent; this one is recurrent (its memory is not a frame)"
        )


def agent_input(agent: Agent, images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images in [0, 1] -> the model's input, as ``agent.preprocess`` makes it from
    the same frames in uint8 (up to rounding)."""
    pixels = images * 255.0
    if agent.preprocessing.layout == "NHWC":
        pixels = pixels.permute(0, 2, 3, 1)
    return pixels * agent.preprocessing.scale


def agent_outputs(agent: Agent, images: torch.Tensor) -> AgentOutput:
    """The agent's logits (Q-values for a Q-network) and value on images in [0, 1]."""
    return agent.forward_preprocessed(agent_input(agent, images))


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[int]:
    """Guided backpropagation (Springenberg et al. 2015): while inside, every ``nn.ReLU`` passes back
    only positive gradients. Yields the number of ReLUs guided; the hooks are always removed."""

    def guide(module: nn.Module, grad_input: tuple[torch.Tensor | None, ...], grad_output: tuple) -> tuple:
        return tuple(None if g is None else g.clamp(min=0) for g in grad_input)

    handles = [m.register_full_backward_hook(guide) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


def saliency(agent: Agent, images: torch.Tensor, *, guided: bool = True, blur: int = 5) -> torch.Tensor:
    """(N, H, W) in [0, 1]: how strongly each pixel moves the agent's preferred action's score.

    The gradient of the largest logit (Q-value) with respect to the input, guided or plain, its
    magnitude summed over channels, blurred with a ``blur`` x ``blur`` box filter and divided by
    each frame's maximum (seed 003, equation 2 and figure 3)."""
    images = images.detach().requires_grad_(True)
    with torch.enable_grad(), guided_relus(agent.model) if guided else _nothing():
        scores = agent_outputs(agent, images).logits
        (gradient,) = torch.autograd.grad(scores.max(dim=1).values.sum(), images)
    magnitude = gradient.abs().sum(dim=1, keepdim=True)
    smooth = F.avg_pool2d(magnitude, blur, stride=1, padding=blur // 2, count_include_pad=False)[:, 0]
    peak = smooth.flatten(1).amax(dim=1).clamp_min(torch.finfo(smooth.dtype).tiny)
    return smooth / peak[:, None, None]


@contextmanager
def _nothing() -> Iterator[int]:
    yield 0
