"""Perturbation saliency (Greydanus et al. 2018): how much the outputs change when a blurred disc
of the frame replaces the frame there.

For a frame ``I`` (the agent's preprocessed input, (C, H, W)), with radius ``r``
(``perturbation_radius``), stride ``s`` (``perturbation_stride``) and blur sigma ``b``
(``perturbation_blur``):

* Masks: one per centre ``(i, j)`` with ``i`` in ``0, s, 2s, ... < H`` and ``j`` in ``0, s, ... < W``
  (row-major), so the centres cover the whole frame. ``M_ij = G_r * D_ij / max(G_r * D_ij)``, where
  ``D_ij`` is 1 on the pixels strictly inside the disc, ``(y - i)^2 / r^2 + (x - j)^2 / r^2 < 1``,
  and ``G_r *`` is a Gaussian filter of sigma ``r``.
* Perturbed frame: ``I'_ij = I * (1 - M_ij) + (G_b * I) * M_ij``, each channel blurred on its own.
  With ``perturbation_frames="newest"`` only the newest stacked frame's channels are perturbed.
* Score of output ``k`` (weights ``w``, ``L`` the model's output vector, ``d = L(I) - L(I'_ij)``):
  ``S_k(i, j) = 1/2 * ||w * d||^2`` for a ``vector`` output (``actor``: every logit at once), and
  ``S_k(i, j) = 1/2 * (w . d)^2`` for a scalar one (the value, one logit, the action taken). A single
  chosen output (the variant of Huber et al. 2022 that passes the parameter-randomisation check)
  is therefore just a scalar output.
* Map: the mask-weighted mean of the scores, ``map_k(p) = sum_ij S_k(i, j) M_ij(p) / sum_ij M_ij(p)``
  (0 where no mask reaches, i.e. the sum is 0).

This is exactly xaitk-saliency 0.15.0's pipeline: ``SlidingRadial(radius=(r, r), stride=(s, s),
sigma=(r, r))`` makes the masks (as ``1 - M``, the part kept), ``occlude_image_batch(I, 1 - M,
fill=G_b * I)`` the perturbed frames, and ``SquaredDifferenceScoring`` the score (half the squared
difference summed over the prediction columns it is given: ``w * L`` for a vector output, ``w . L``
for a scalar one) and the map (``weight_regions_by_scalar``: the normalised mean above), *before*
its final min-max rescaling to [0, 1], which we leave out, as every method here leaves scaling to
the page. Both Gaussian filters are scipy's ``gaussian_filter`` with its defaults, which this module
reproduces in torch: kernel radius ``int(4 * sigma + 0.5)``, ``reflect`` boundary (``d c b a | a b
c d | d c b a``, the edge pixel repeated) for the mask and the image alike.

Differences from the 2018 code (``greydanus/visualize_atari``, ``saliency.py``): it scores centres
``range(0, 80, d)`` into a ``(80 // d + 1)``-square array, so its last row and column of scores stay
0, and then stretches that array over the frame bilinearly; we score a centre every ``s`` pixels
over the whole frame and spread each score over its own mask, so no edge is left at zero and no
score is moved. Its disc is ``x^2 + y^2 <= 1`` (the blur alone sets the size); ours has radius
``r`` (as xaitk's). Its actor score is our ``actor`` output, its critic score our ``value``.

Stacked frames: the input's channels are taken to be frames of ``perturbation_frame_channels``
channels each, oldest first, newest last (Atari: one grey channel per frame, the newest last;
Gymnasium RGB stacks: three channels per frame, the newest last). When that setting is 0 it is
inferred: 1 or 3 channels are one frame (grey or RGB; a stack of three grey frames needs
``perturbation_frame_channels=1``), a count not divisible by 3 is a stack of grey frames, and any
other count (6, 12, ...) is ambiguous and refused. Inputs must be (N, C, H, W) (``NCHW``).

Cost: all masks of a chunk of frames go through the model as one batch (the unperturbed frames as
another); a pass holds at most :data:`CHUNK_PIXELS` input positions (rows x H x W) on the CPU,
:data:`DEVICE_CHUNK_PIXELS` elsewhere, so memory stays bounded (16 MiB, 128 MiB per 16-channel
float32 activation) and results do not depend on it. The masks are made once per frame size and
radius (cached); the frame's blur once per call. Not done, as it did not pay: bfloat16 (moves the
maps by more than their size: the scores are small differences of outputs), ``channels_last``
input (no gain on the CPU), and recomputing only the part of the network a mask reaches (a mask
blurred with sigma ``r`` reaches ``5 r`` pixels from its centre, on average 38% of a 64x64 frame
before the network's receptive field widens it, and the model is a black box here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ...errors import ConfigError, UserError
from ..hooks import forward_hooks
from ..outputs import ExplainedModel, Output, output_rows
from .base import Method, MethodInfo, register

CHUNK_PIXELS = 2**18
"""Input positions (perturbed frames x H x W) per forward pass on the CPU: 64 frames of 64x64. Small
passes stay in the cache: on 2 CPU cores, passes of 32 to 64 CoinRun frames ran 1.3 to 1.6 times
faster than passes of 512."""
DEVICE_CHUNK_PIXELS = 2**21
"""The same on an accelerator, where larger passes pay: 512 frames of 64x64 (~128 MiB for each
16-channel float32 activation)."""
MASK_LIMIT = 2**28
"""Most mask values (masks x H x W) kept at once (1 GiB of float32); more is refused."""
TRUNCATE = 4.0
"""Gaussian kernels reach ``int(TRUNCATE * sigma + 0.5)`` pixels, scipy's default."""

Frames = Literal["all", "newest"]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """scipy's 1-D Gaussian weights for ``sigma`` (float64, odd length, summing to 1)."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 / (sigma * sigma) * x * x)
    return weights / weights.sum()


def reflect_indices(size: int, radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Indices extending ``0..size-1`` by ``radius`` on each side in scipy's ``reflect`` mode
    (``d c b a | a b c d | d c b a``), repeated as often as a wide kernel needs."""
    period = 2 * size
    index = torch.arange(-radius, size + radius, device=device).remainder(period)
    return torch.where(index >= size, period - 1 - index, index)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy's ``gaussian_filter(x, sigma=(0, ..., sigma, sigma))``: each (H, W) plane of ``x``
    filtered along rows then columns with ``reflect`` boundaries, computed in float64."""
    weights = gaussian_kernel(sigma).to(x.device)
    radius = (len(weights) - 1) // 2
    shape = x.shape
    planes = x.detach().reshape(-1, 1, *shape[-2:]).double()
    for axis in (2, 3):
        padded = planes.index_select(axis, reflect_indices(planes.shape[axis], radius, x.device))
        kernel = weights.view(1, 1, -1, 1) if axis == 2 else weights.view(1, 1, 1, -1)
        planes = F.conv2d(padded, kernel)
    return planes.reshape(shape)


def mask_centres(height: int, width: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the mask centres, row-major (xaitk's ``SlidingRadial`` order)."""
    rows, columns = torch.arange(0, height, stride), torch.arange(0, width, stride)
    return rows.repeat_interleave(len(columns)), columns.repeat(len(rows))


@lru_cache(maxsize=8)
def radial_masks(height: int, width: int, radius: float, stride: int) -> torch.Tensor:
    """The blurred discs ``M`` (masks, H, W) float32 on the CPU, each scaled to a maximum of 1
    (see the module docstring). Cached: the masks depend on the frame's size only."""
    rows, columns = mask_centres(height, width, stride)
    if len(rows) * height * width > MASK_LIMIT:
        raise UserError(
            f"perturbation saliency with stride {stride} on {height}x{width} frames needs {len(rows)} masks, "
            "too many to hold; raise perturbation_stride"
        )
    y = torch.arange(height, dtype=torch.float64).view(1, -1, 1)
    x = torch.arange(width, dtype=torch.float64).view(1, 1, -1)
    masks = torch.empty(len(rows), height, width)
    step = max(1, 2**22 // (height * width))  # discs blurred a few at a time, in float64
    for start in range(0, len(rows), step):
        cy = rows[start : start + step].double().view(-1, 1, 1)
        cx = columns[start : start + step].double().view(-1, 1, 1)
        discs = (((y - cy) / radius) ** 2 + ((x - cx) / radius) ** 2 < 1).double()  # skimage.draw.ellipse
        blurred = gaussian_blur(discs, radius)
        masks[start : start + step] = (blurred / blurred.amax(dim=(1, 2), keepdim=True)).float()
    return masks


def frame_channels(channels: int, given: int) -> int:
    """Channels per stacked frame: ``given``, or inferred from the channel count (module docstring)."""
    if given:
        if channels % given:
            raise UserError(f"perturbation_frame_channels={given} does not divide the input's {channels} channels")
        return given
    if channels in (1, 3):
        return channels
    if channels % 3:
        return 1
    raise UserError(
        f"cannot tell whether the input's {channels} channels are grey frames or RGB ones; "
        "set perturbation_frame_channels (1 for grey, 3 for RGB)"
    )


@register
@dataclass(frozen=True)
class Perturbation(Method):
    """Perturbation saliency: the outputs' squared change when a blurred disc replaces the frame there."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="perturbation",
        title="Perturbation saliency",
        citation="Greydanus, Koul, Dodge & Fern, Visualizing and Understanding Atari Agents, ICML 2018",
        summary="How much the output changes when that part of the frame is blurred.",
        attaches="input",
        produces="map",
        scalar_outputs=False,
        look="actor-critic",
    )
    perturbation_radius: float = 5.0
    """Radius of the blurred disc in pixels; the disc is also blurred by a Gaussian of this sigma."""
    perturbation_stride: int = 5
    """Pixels between disc centres, along rows and columns, over the whole frame."""
    perturbation_blur: float = 3.0
    """Sigma in pixels of the Gaussian blur that replaces the frame under the disc."""
    perturbation_frames: Frames = "all"
    """Which stacked frames the disc blurs: all of them, or only the newest."""
    perturbation_frame_channels: int = 0
    """Channels per stacked frame (1 grey, 3 RGB); 0 infers it from the input's channel count."""
    perturbation_memory: float = 0.0
    """For a recurrent agent, the fraction by which its memory (an LSTM's cell state) is shrunk in
    every pass, reference and perturbed alike (Greydanus et al.'s ``blur_memory``); 0 keeps it."""

    @property
    def signed(self) -> bool:
        return False  # half squared differences

    def settings(self) -> dict[str, object]:
        # Without an unshrunk memory: runs cached before the setting existed keep their keys.
        found = super().settings()
        if not self.perturbation_memory:
            del found["perturbation_memory"]
        return found

    def __post_init__(self) -> None:
        for name in ("perturbation_radius", "perturbation_blur"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"{name} must be a positive number of pixels, got {value!r}")
        stride = self.perturbation_stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ConfigError(f"perturbation_stride must be a positive integer, got {stride!r}")
        if self.perturbation_frames not in ("all", "newest"):
            raise ConfigError(f"perturbation_frames must be all or newest, got {self.perturbation_frames!r}")
        given = self.perturbation_frame_channels
        if isinstance(given, bool) or not isinstance(given, int) or given < 0:
            raise ConfigError(f"perturbation_frame_channels must be a non-negative integer, got {given!r}")
        shrink = self.perturbation_memory
        if isinstance(shrink, bool) or not isinstance(shrink, (int, float)) or not 0 <= shrink <= 1:
            raise ConfigError(f"perturbation_memory must be a fraction in [0, 1], got {shrink!r}")

    def attribute(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(K, N, H, W) float32 on the CPU; ``layer`` is ignored (the method perturbs the input)."""
        if inputs.dim() != 4:
            raise UserError(f"perturbation saliency needs frames (N, C, H, W), got shape {tuple(inputs.shape)}")
        frames, channels, height, width = inputs.shape
        if frames == 0:
            raise UserError("no frames to attribute")
        x = inputs.detach()
        weights = output_rows(outputs, frames, actions, x.device, scalar=False)  # (K, N, M)
        vector = torch.tensor([o.kind == "vector" for o in outputs], device=x.device).view(-1, 1)
        older = 0  # leading channels left unperturbed: the frames before the newest, with "newest"
        if self.perturbation_frames == "newest":
            older = channels - frame_channels(channels, self.perturbation_frame_channels)
        per_pass = max(1, (CHUNK_PIXELS if x.device.type == "cpu" else DEVICE_CHUNK_PIXELS) // (height * width))
        with torch.no_grad(), forward_hooks(explained.model, self._memory_hooks(explained)):
            reference = torch.cat(
                [
                    explained.on(slice(start, start + per_pass)).forward(x[start : start + per_pass])
                    for start in range(0, frames, per_pass)
                ]
            )
            if reference.dim() != 2 or reference.shape[1] != weights.shape[-1]:
                raise UserError(
                    f"the model gives {tuple(reference.shape)} outputs; the chosen outputs weigh {weights.shape[-1]}"
                )
            masks = radial_masks(height, width, float(self.perturbation_radius), self.perturbation_stride)
            masks = masks.to(x.device, x.dtype)
            count = len(masks)
            change = (gaussian_blur(x, float(self.perturbation_blur)).to(x.dtype) - x).contiguous()
            change[:, :older] = 0
            weights = weights.to(reference.dtype)
            scores = torch.empty(len(outputs), frames * count, dtype=reference.dtype, device=x.device)
            for start in range(0, frames * count, per_pass):
                rows = torch.arange(start, min(start + per_pass, frames * count), device=x.device)
                frame, mask = rows // count, rows % count
                perturbed = x[frame] + change[frame] * masks[mask].unsqueeze(1)
                changed = explained.on(frame).forward(perturbed)  # each perturbed row reads its frame's state
                weighted = weights[:, frame] * (reference[frame] - changed)  # (K, rows, M)
                scores[:, start : start + len(rows)] = 0.5 * torch.where(
                    vector, weighted.square().sum(dim=-1), weighted.sum(dim=-1).square()
                )
            flat = masks.flatten(1).to(scores.dtype)
            coverage = flat.sum(dim=0)
            coverage = torch.where(coverage == 0, torch.ones_like(coverage), coverage)
            maps = (scores.view(len(outputs), frames, count) @ flat) / coverage
        return maps.view(len(outputs), frames, height, width).float().cpu()

    def _memory_hooks(self, explained: ExplainedModel) -> dict[str, Callable[..., torch.Tensor]]:
        """The hook shrinking a recurrent model's memory by ``perturbation_memory``: the entries the
        model names as its cell state (``cell_state``, a slice of the flat state), else all of it."""
        if not (self.perturbation_memory and explained.recurrent and explained.memory):
            return {}
        entries = getattr(explained.model, "cell_state", slice(None))
        keep = 1.0 - float(self.perturbation_memory)

        def shrink(module: torch.nn.Module, args: tuple, state: torch.Tensor) -> torch.Tensor:
            shrunk = state.clone()
            shrunk[:, entries] *= keep
            return shrunk

        return {explained.memory: shrink}
