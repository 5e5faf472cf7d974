"""Input-gradient methods: the gradient itself (saliency) and gradient times input.

Contract shared by every input method here (:class:`InputAttributionMethod`):

* :meth:`~InputAttributionMethod.channel_attribution` gives the signed per-channel attribution,
  (K, N, C, H, W) for K outputs and N frames of C input channels (3 for RGB, more for stacked
  frames). This is the tensor Captum's ``Saliency(abs=False)`` / ``InputXGradient`` return, and the
  one :mod:`.noise_tunnel` averages over noisy copies.
* :meth:`~InputAttributionMethod.attribute` (``produces="map"``) returns (K, N, H, W): that
  tensor summed over the input channels, signs kept (no absolute value, unlike the saliency maps
  of Simonyan et al., who take the maximum of |gradient| over channels).

All K outputs share one forward pass over the N frames (see :func:`input_gradient`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..integrated_gradients import INPUT_CHUNK, Batching, input_gradients
from ..outputs import ExplainedModel, Output
from .base import Method, MethodInfo, register


def input_gradient(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    outputs: Sequence[Output],
    actions: torch.Tensor | None = None,
    batching: Batching = "sequential",
) -> torch.Tensor:
    """d output_k / d input for every output and frame: (K, N, C, H, W) float32 on the CPU.

    One forward pass per chunk of ``INPUT_CHUNK`` rows, one backward pass per output; parameters
    are frozen and no hook is left behind. The noise tunnel calls this on its (samples x frames) noisy batch.
    """
    parts = [
        input_gradients(explained.on(rows), inputs[rows], outputs, batching=batching, actions=actions_of(actions, rows))
        for rows in (slice(start, start + INPUT_CHUNK) for start in range(0, len(inputs), INPUT_CHUNK))
    ]
    return torch.cat(parts, dim=1)


def actions_of(actions: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    """The actions taken at ``rows`` of a batch (None stays None)."""
    return None if actions is None else torch.as_tensor(actions)[rows]


@dataclass(frozen=True)
class InputAttributionMethod(Method):
    """An input method with a per-channel attribution; its map is that summed over channels."""

    @abstractmethod
    def channel_attribution(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Signed per-channel attribution of each output, (K, N, C, H, W) float32 on the CPU."""

    def attribute(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(K, N, H, W): :meth:`channel_attribution` summed over the input channels (``layer`` is ignored)."""
        return self.channel_attribution(explained, inputs, outputs, actions).sum(dim=2)


@register
@dataclass(frozen=True)
class Gradient(InputAttributionMethod):
    """The gradient of each output with respect to the input (signed, summed over channels)."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="gradient",
        title="Gradient",
        citation="Simonyan, Vedaldi & Zisserman, Deep Inside Convolutional Networks, ICLR workshop 2014",
        summary="How fast the output changes with each pixel: red pixels raise it, blue ones lower it.",
        attaches="input",
        produces="map",
    )

    def channel_attribution(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return input_gradient(explained, inputs, outputs, actions)


@register
@dataclass(frozen=True)
class GradientTimesInput(InputAttributionMethod):
    """Gradient times input, per channel, summed over channels: a first-order estimate of each
    pixel's contribution relative to an all-zero input."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="gradient-x-input",
        title="Gradient \u00d7 Input",
        citation=(
            "Shrikumar et al., Not Just a Black Box, arXiv 2016; "
            "Ancona et al., Towards Better Understanding of Gradient-based Attribution Methods, ICLR 2018"
        ),
        summary="Each pixel's value times the output's gradient there: its first-order contribution.",
        attaches="input",
        produces="map",
    )

    def channel_attribution(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return input_gradient(explained, inputs, outputs, actions) * inputs.detach().float().cpu()
