"""Class activation maps from gradients at a layer: Grad-CAM, Grad-CAM++ and HiResCAM.

All three read one layer's activation ``A`` (N, C, h, w) and the gradient ``g = d f_k / d A`` of
each explained output ``f_k``, and differ only in how they combine them:

* Grad-CAM: channel weights ``w_kc = mean_hw g``, map ``ReLU(sum_c w_kc A_c)``.
* Grad-CAM++: channel weights ``w_kc = sum_hw ReLU(g) a`` with the pixel weights ``a`` of
  pytorch-grad-cam 1.5.x (``grad_cam_plusplus.py``), map ``ReLU(sum_c w_kc A_c)``.
* HiResCAM: no channel weights, map ``ReLU(sum_c g_c * A_c)`` (elementwise).

Maps stay at the layer's resolution (h, w): no upsampling, no min-max scaling (the page scales).
The channel-resolved Grad-CAM ``w_kc A_c`` is a separate registered method, ``gradcam-channels``,
rather than a setting of ``gradcam``: what a method produces (a map or channels) is declared in its
class-level :class:`MethodInfo`, so a setting that changed it would make that declaration lie.

As in :mod:`..integrated_gradients`, the K outputs share one forward pass per chunk of frames;
their gradients come from K backward passes over the retained graph, each reduced to the method's
result as soon as it exists, so memory holds K results, never K layer-sized gradients.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...errors import UserError
from ..hooks import forward_hooks, frozen_parameters
from ..integrated_gradients import _output_gradients
from ..outputs import ExplainedModel, Output, output_rows
from .base import Method, MethodInfo, needs_layer, register

CHUNK = 256
"""Frames per forward pass (the graph above the layer is retained for K backward passes)."""
PLUSPLUS_EPS = 1e-6
"""The ``eps`` of pytorch-grad-cam's Grad-CAM++ denominator."""

Reduce = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(gradient, activation) of one output, both (n, C, h, w), to that output's result."""


def layer_gradients(
    explained: ExplainedModel,
    inputs: torch.Tensor,
    outputs: Sequence[Output],
    layer: str,
    reduce: Reduce,
    channels: bool = False,
    actions: torch.Tensor | None = None,
) -> torch.Tensor:
    """``reduce(d f_k / d A, A)`` for each output k and each chunk of frames, stacked to (K, N, ...).

    ``A`` is ``layer``'s activation. Results are (n, h, w) per chunk, or (n, C, h, w) if ``channels``.
    """
    if len(inputs) == 0:
        raise UserError("no frames to attribute")
    combine = output_rows(outputs, len(inputs), actions, inputs.device)  # (K, N, M)
    chunks = [
        _chunk(explained.on(slice(start, start + CHUNK)), inputs[start : start + CHUNK], rows, layer, reduce, channels)
        for start, rows in zip(range(0, len(inputs), CHUNK), combine.split(CHUNK, dim=1))
    ]
    return torch.cat(chunks, dim=1)


def _chunk(
    explained: ExplainedModel, x: torch.Tensor, combine: torch.Tensor, layer: str, reduce: Reduce, channels: bool
) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def substitute(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        activation = output.detach().requires_grad_()  # a leaf: the gradient stops here, nothing below is recorded
        captured.append(activation)
        return activation.view_as(activation)  # not the leaf itself: module backward hooks refuse leaves

    model = explained.model
    with frozen_parameters(model), forward_hooks(model, {layer: substitute}), torch.enable_grad():
        out = explained.forward(x)
    if len(captured) != 1:
        raise UserError(f"layer {layer!r} runs {len(captured)} times per forward pass; choose one that runs once")
    (activation,) = captured
    if activation.dim() != 4:
        raise UserError(f"layer {layer!r} gives shape {tuple(activation.shape)}; class activation maps need (C, h, w)")
    if out.dim() != 2 or out.shape[1] != combine.shape[-1]:
        raise UserError(f"the model gives {tuple(out.shape)} outputs; the chosen outputs weigh {combine.shape[-1]}")
    rows = combine.to(out.dtype)  # (K, n, M)
    shape = tuple(activation.shape) if channels else (activation.shape[0], *activation.shape[2:])
    values = activation.detach()
    return _output_gradients(out, activation, rows, "sequential", lambda g, into: into.copy_(reduce(g, values)), shape)


def _weighted_sum(weights: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """sum_c weights[n, c] * A[n, c]: (n, h, w)."""
    return torch.einsum("nc,nchw->nhw", weights, activation)


def gradcam_weights(grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM channel weights: the gradient's spatial mean, (n, C)."""
    return grads.mean(dim=(2, 3))


def gradcam_plusplus_weights(grads: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ channel weights as pytorch-grad-cam 1.5.x computes them (eq. 19 of the paper), (n, C)."""
    grads_power_2 = grads**2
    grads_power_3 = grads_power_2 * grads
    sum_activations = activation.sum(dim=(2, 3), keepdim=True)
    aij = grads_power_2 / (2 * grads_power_2 + sum_activations * grads_power_3 + PLUSPLUS_EPS)
    aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
    return (grads.clamp_min(0) * aij).sum(dim=(2, 3))


@dataclass(frozen=True)
class ClassActivationMap(Method):
    """A class activation map: :meth:`reduce` turns one output's gradient and the layer's
    activation into its result, (n, h, w) for a ``map`` method, (n, C, h, w) for ``channels``."""

    @abstractmethod
    def reduce(self, grads: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        """One output's result from ``d f / d A`` and ``A``, both (n, C, h, w)."""

    def attribute(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        channels = self.info.produces == "channels"
        name = needs_layer(self, layer)
        return layer_gradients(explained, inputs, outputs, name, self.reduce, channels=channels, actions=actions)


@dataclass(frozen=True)
class RectifiedCAM(ClassActivationMap):
    """A map method whose map is rectified unless told otherwise."""

    cam_relu: bool = True
    """Keep only positive evidence (the published form); off keeps the negative too."""

    @property
    def signed(self) -> bool:
        return not self.cam_relu

    def rectified(self, cam: torch.Tensor) -> torch.Tensor:
        return cam.clamp_min(0) if self.cam_relu else cam


@register
@dataclass(frozen=True)
class GradCAM(RectifiedCAM):
    """Grad-CAM: activations weighted by their channel's mean gradient, summed over channels.

    ``cam_relu=False`` keeps the negative evidence (Captum's ``relu_attributions=False``).
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="gradcam",
        title="Grad-CAM",
        citation="Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via "
        "Gradient-based Localization, ICCV",
        summary="Where the layer's channels, weighted by their mean gradient, are active",
        attaches="layer",
        produces="map",
        look="jet",
    )

    def reduce(self, grads: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        return self.rectified(_weighted_sum(gradcam_weights(grads), activation))


@register
@dataclass(frozen=True)
class GradCAMChannels(ClassActivationMap):
    """Grad-CAM before the sum over channels: ``w_kc * A_c`` per channel, unrectified.

    Summing over channels (and rectifying) gives ``gradcam``; per channel it can be reduced by the
    layer's NMF basis like integrated gradients.
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="gradcam-channels",
        title="Grad-CAM (channels)",
        citation="Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via "
        "Gradient-based Localization, ICCV",
        summary="Each channel's activation weighted by its mean gradient",
        attaches="layer",
        produces="channels",
    )

    def reduce(self, grads: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        return gradcam_weights(grads)[:, :, None, None] * activation


@register
@dataclass(frozen=True)
class GradCAMPlusPlus(RectifiedCAM):
    """Grad-CAM++: channel weights from positive gradients, each position weighted by higher-order
    terms (the closed form with exponential outputs), as in pytorch-grad-cam 1.5.x.

    The derivation assumes non-negative activations (a ReLU's output). Where a layer's channel sums
    to a negative value, the denominator ``2 g^2 + sum(A) g^3 + eps`` can near zero, and the map
    becomes sensitive to float rounding: on the bundled CoinRun agent, float32 results at the residual
    sum 3b differ from pytorch-grad-cam's by ~5e-5 of the map's maximum, at 2b by 2e-2 (there
    pytorch-grad-cam's own float32 map is 1.9e-2 from a float64 evaluation, ours 3.2e-3). Prefer
    layers after a ReLU (3c: 7e-8).
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="gradcam++",
        title="Grad-CAM++",
        citation="Chattopadhay et al. 2018, Grad-CAM++: Generalized Gradient-Based Visual Explanations "
        "for Deep Convolutional Networks, WACV",
        summary="Where the layer's channels, weighted by their positive gradients, are active",
        attaches="layer",
        produces="map",
        look="jet",
    )

    def reduce(self, grads: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        return self.rectified(_weighted_sum(gradcam_plusplus_weights(grads, activation), activation))


@register
@dataclass(frozen=True)
class HiResCAM(RectifiedCAM):
    """HiResCAM: gradient times activation at each position, summed over channels (no spatial
    averaging of the gradient, so the map shows exactly the positions that raise the output)."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="hirescam",
        title="HiResCAM",
        citation="Draelos & Carin 2020, Use HiResCAM instead of Grad-CAM for faithful explanations of "
        "convolutional neural networks, arXiv:2011.08891",
        summary="Gradient times activation at each position, summed over channels",
        attaches="layer",
        produces="map",
        look="jet",
    )

    def reduce(self, grads: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        return self.rectified((grads * activation).sum(dim=1))
