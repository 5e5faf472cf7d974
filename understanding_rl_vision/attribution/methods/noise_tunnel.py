"""The noise tunnel: an input method averaged over noisy copies of each frame (as Captum's ``NoiseTunnel``).

For a wrapped per-channel attribution ``A`` (see :class:`.gradient.InputAttributionMethod`) and
draws ``e_s ~ N(0, sigma^2)``, s = 1..S:

* ``smoothgrad``:    mean_s A(x + e_s)                       (Smilkov et al. 2017)
* ``smoothgrad_sq``: mean_s A(x + e_s)^2                     (Hooker et al. 2019)
* ``vargrad``:       mean_s A(x + e_s)^2 - (mean_s A(x + e_s))^2, the population variance, computed
  as Captum does (Adebayo et al. 2018)

Each is computed per input channel, (K, N, C, H, W); the map (K, N, H, W) is then the sum over
channels, i.e. squaring and variance come *before* the channel sum. ``sigma`` is ``noise_level`` times
the frame's range, ``max(x) - min(x)``, one value per frame. The draws come from a seeded
``torch.Generator`` (:func:`noise_samples`), so the same call gives the same result, and all S x N
noisy rows of a frame go through the model in one batch (frames are
taken in chunks of at most ``INPUT_CHUNK`` noisy rows; the draws are made for all frames first, so
chunking never changes them).

``--methods smoothgrad`` (``smoothgrad-sq``, ``vargrad``) wraps :class:`.gradient.Gradient`. To
smooth another input method, pass it: ``SmoothGrad(method=GradientTimesInput())`` or
``NoiseTunnel(GradientTimesInput(), kind="vargrad")``; it must attach to the input and have a
per-channel attribution (a layer method is refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from ...errors import UserError
from ..integrated_gradients import INPUT_CHUNK
from ..outputs import ExplainedModel, Output
from .base import Method, MethodInfo, register
from .gradient import Gradient, InputAttributionMethod, actions_of

NoiseKind = Literal["smoothgrad", "smoothgrad_sq", "vargrad"]
KINDS: tuple[NoiseKind, ...] = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _check_sampling(samples: int, noise: float) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserError(f"noise tunnel samples must be a positive integer, got {samples!r}")
    if not noise >= 0:  # also refuses NaN
        raise UserError(f"noise tunnel noise must be >= 0, got {noise!r}")


def noise_samples(inputs: torch.Tensor, samples: int, noise: float, seed: int) -> torch.Tensor:
    """The noise added to each frame, (S, N, C, H, W) float32 on ``inputs.device``.

    Standard normal draws from a CPU generator seeded with ``seed`` (so equal on every device),
    scaled per frame by ``sigma = noise * (max - min)`` of that frame.
    """
    _check_sampling(samples, noise)
    x = inputs.detach().float()
    flat = x.flatten(1)
    sigma = noise * (flat.amax(dim=1) - flat.amin(dim=1))  # (N,)
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randn((samples, *x.shape), generator=generator, dtype=torch.float32).to(x.device)
    return draws * sigma.view(1, -1, *([1] * (x.dim() - 1)))


@dataclass(frozen=True)
class NoiseTunnel(InputAttributionMethod):
    """``method`` averaged over ``samples`` noisy copies of each frame; see the module docstring."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="noise-tunnel",
        title="Noise tunnel",
        citation="Smilkov et al., SmoothGrad, arXiv 2017; Adebayo et al., ICLR workshop 2018",
        summary="An input attribution averaged over noisy copies of the frame.",
        attaches="input",
        produces="map",
    )
    fixed_kind: ClassVar[NoiseKind | None] = None
    """Set by the registered subclasses, whose name says the kind."""

    method: Method = field(metadata={"flag": False})
    """The wrapped input method (the registered tunnels wrap :class:`.gradient.Gradient`)."""
    kind: NoiseKind = field(default="smoothgrad", metadata={"flag": False})
    noise_samples: int = 16
    """Noisy copies of each frame."""
    noise_level: float = 0.15
    """Noise sigma as a fraction of each frame's value range (max - min)."""
    noise_seed: int = 0
    """Seed of the noise draws."""

    def __post_init__(self) -> None:
        if self.method.info.attaches != "input" or not isinstance(self.method, InputAttributionMethod):
            raise UserError(
                f"the noise tunnel smooths input attributions; {self.method.info.title} "
                f"attaches to the {self.method.info.attaches}"
            )
        if self.kind not in KINDS:
            raise UserError(f"unknown noise tunnel kind {self.kind!r}; choose {', '.join(KINDS)}")
        if self.fixed_kind is not None and self.kind != self.fixed_kind:
            raise UserError(f"{self.info.title} is kind {self.fixed_kind!r}; use NoiseTunnel for {self.kind!r}")
        _check_sampling(self.noise_samples, self.noise_level)

    @property
    def signed(self) -> bool:
        return self.kind == "smoothgrad" and self.method.signed  # squares and variances are not

    @property
    def rows_per_frame(self) -> int:
        return self.noise_samples * self.method.rows_per_frame

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.info.name,
            "wrapped": self.method.settings(),
            "kind": self.kind,
            "samples": self.noise_samples,
            "noise": self.noise_level,
            "seed": self.noise_seed,
        }

    def channel_attribution(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(K, N, C, H, W): the chosen statistic of the wrapped per-channel attribution over the draws."""
        assert isinstance(self.method, InputAttributionMethod)  # checked in __post_init__
        x = inputs.detach()
        draws = noise_samples(x, self.noise_samples, self.noise_level, self.noise_seed)  # all drawn first: chunks
        per_chunk = max(1, INPUT_CHUNK // self.noise_samples)  # frames whose noisy copies form one batch
        parts = []
        for start in range(0, len(x), per_chunk):
            frames = slice(start, start + per_chunk)
            parts.append(
                self._statistic(explained.on(frames), x[frames], draws[:, frames], outputs, actions_of(actions, frames))
            )
        return torch.cat(parts, dim=1)

    def _statistic(
        self,
        explained: ExplainedModel,
        x: torch.Tensor,
        draws: torch.Tensor,
        outputs: Sequence[Output],
        actions: torch.Tensor | None,
    ) -> torch.Tensor:
        assert isinstance(self.method, InputAttributionMethod)
        noisy = (x.float().unsqueeze(0) + draws).flatten(0, 1)  # (S * n, ...), sample-major
        repeated = None if actions is None else torch.as_tensor(actions).repeat(self.noise_samples)
        copies = explained.on(torch.arange(len(x)).repeat(self.noise_samples))  # each noisy row reads its frame's state
        values = self.method.channel_attribution(copies, noisy, outputs, repeated)
        values = values.view(len(values), self.noise_samples, *x.shape)  # (K, S, n, C, H, W)
        if self.kind == "smoothgrad":
            return values.mean(dim=1)
        squares = values.square().mean(dim=1)
        if self.kind == "smoothgrad_sq":
            return squares
        return squares - values.mean(dim=1).square()  # E[a^2] - E[a]^2, as Captum's _compute_smoothing


def _gradient() -> Method:
    return Gradient()


@register
@dataclass(frozen=True)
class SmoothGrad(NoiseTunnel):
    """The mean gradient over noisy copies (wraps :class:`.gradient.Gradient` unless told otherwise)."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="smoothgrad",
        title="SmoothGrad",
        citation="Smilkov, Thorat, Kim, Viégas & Wattenberg, SmoothGrad: removing noise by adding noise, arXiv 2017",
        summary="The gradient averaged over noisy copies of the frame: a less speckled gradient map.",
        attaches="input",
        produces="map",
    )
    fixed_kind: ClassVar[NoiseKind | None] = "smoothgrad"
    method: Method = field(default_factory=_gradient, metadata={"flag": False})
    kind: NoiseKind = field(default="smoothgrad", metadata={"flag": False})


@register
@dataclass(frozen=True)
class SmoothGradSquared(NoiseTunnel):
    """The mean squared gradient over noisy copies, per channel, then summed over channels."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="smoothgrad-sq",
        title="SmoothGrad²",
        citation="Hooker, Erhan, Kindermans & Kim, A Benchmark for Interpretability Methods, NeurIPS 2019",
        summary="The squared gradient averaged over noisy copies: where the output is sensitive, sign dropped.",
        attaches="input",
        produces="map",
    )
    fixed_kind: ClassVar[NoiseKind | None] = "smoothgrad_sq"
    method: Method = field(default_factory=_gradient, metadata={"flag": False})
    kind: NoiseKind = field(default="smoothgrad_sq", metadata={"flag": False})


@register
@dataclass(frozen=True)
class VarGrad(NoiseTunnel):
    """The variance of the gradient over noisy copies, per channel, then summed over channels."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="vargrad",
        title="VarGrad",
        citation="Adebayo, Gilmer, Goodfellow & Kim, Local Explanation Methods for DNNs Lack Sensitivity, ICLR ws 2018",
        summary="How much the gradient varies over noisy copies of the frame.",
        attaches="input",
        produces="map",
    )
    fixed_kind: ClassVar[NoiseKind | None] = "vargrad"
    method: Method = field(default_factory=_gradient, metadata={"flag": False})
    kind: NoiseKind = field(default="vargrad", metadata={"flag": False})
