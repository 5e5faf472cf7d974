"""Attention agents: networks that show where they look, because what they see passes through a mask.

What the rest of the package relies on, for any attention model (built-in or custom):

* ``attention_layer``: the dotted name of a module whose output is the attention, (N, K, h, w) with
  K >= 1 maps of non-negative weights over the last feature map's locations. Hooks read it there:
  the ``attention`` method draws it, training penalises its entropy (:func:`attention_entropy`) and
  the attention tree starts from its peaks.
* ``attended_layer``: the module whose output is the features after the mask, what the policy is
  restricted to. Its sum is the ``attention`` entry gradient methods explain.
* ``attention_input`` (optional): the module whose output the mask is computed from, where the
  attention tree's first level below the mask lies. The attention agent's ``normalize``: the layer
  under it, ``relu3``, cannot contribute (scaling a location's features leaves the mask unchanged, so
  activation x gradient there is exactly zero).

Two designs are built in:

* :class:`AttentionCNN` (``attention``), Nikulin et al.'s seed 002 after Zhao et al. 2016: the
  convolutional trunk, its features L2-normalised per location, a 1x1 conv scoring each location
  (through a hidden 1x1 layer with an ELU, as the seed has it), a softmax over locations for each of
  K masks, and the features weighted by each mask and summed over the masks, then the dense head.
* :class:`FreeLunchSaliency` (``fls``), Nikulin et al. 2019's "sparse FLS": on the last feature map
  ``h = softplus(conv3x3 -> 1(relu(conv3x3 -> 256(x))))`` and the features times ``h``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ObservationShapeError, UserError
from .architectures import ARCHITECTURES, _ActorCritic, add_nature_convs, impala_stacks, nature_convs

TRUNKS = ("nature", "impala")
"""The convolutional trunks an attention design sits on: Nature's three convs (Atari, 84x84 -> 7x7)
or IMPALA's stacks (Procgen, 64x64 -> 8x8)."""
ENTROPY_EPS = 1e-12
NATURE_MIN_SIZE = 36
"""The Nature trunk's smallest input: 36 -> 8 -> 3 -> 1 through its three valid convs."""


class SpatialAttention(nn.Module):
    """K softmax masks over the locations of a feature map; returns the features weighted by each mask
    and summed over the masks, (N, C, h, w). The masks pass through ``mask`` (an identity) so a hook
    reads them as (N, K, h, w)."""

    def __init__(self, channels: int, heads: int = 1, hidden: int = 512):
        super().__init__()
        if heads < 1:
            raise UserError(f"an attention layer needs at least one head, got {heads}")
        if hidden < 0:
            raise UserError(f"the attention's hidden width must be >= 0, got {hidden}")
        self.heads = int(heads)
        if hidden:
            self.hidden = nn.Conv2d(channels, int(hidden), 1)
            self.elu = nn.ELU()
        self.score = nn.Conv2d(int(hidden) or channels, self.heads, 1)
        self.mask = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.score(self.elu(self.hidden(x))) if hasattr(self, "hidden") else self.score(x)
        mask = self.mask(scores.flatten(2).softmax(dim=-1).reshape(scores.shape))
        return x * mask.sum(dim=1, keepdim=True)


class FreeLunchGate(nn.Module):
    """Sparse FLS: one non-negative weight per location, ``softplus`` of a small conv net; returns the
    features times it. The weights pass through ``mask`` as (N, 1, h, w)."""

    def __init__(self, channels: int, hidden: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, int(hidden), 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(int(hidden), 1, 3, padding=1)
        self.softplus = nn.Softplus()
        self.mask = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(self.softplus(self.conv2(self.relu(self.conv1(x)))))


class L2Normalize(nn.Module):
    """Each location's feature vector scaled to unit length (the seed normalises before attending)."""

    scale_invariant = True
    """Scaling its input changes nothing after it: activation x gradient of the layer feeding it is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=1)


class _AttentionActorCritic(_ActorCritic):
    """A trunk (Nature or IMPALA convolutions), then a gate over its last feature map, then the dense
    head. Subclasses set ``self.attention`` before calling :meth:`_finish`."""

    attention_layer = "attention.mask"
    attended_layer = "attention"

    def _build_trunk(self, trunk: str, channels: Sequence[int]) -> int:
        """The trunk's modules, named like the plain architecture's; returns its output channels."""
        if trunk not in TRUNKS:
            raise UserError(f"unknown trunk {trunk!r}; known: {', '.join(TRUNKS)}")
        self.trunk = trunk
        height, width, in_channels = self.observation_shape
        if trunk == "nature":
            if min(height, width) < NATURE_MIN_SIZE:
                raise ObservationShapeError(
                    f"observations of shape {self.observation_shape} (H, W, C) are too small for the nature trunk, "
                    f"which needs at least {NATURE_MIN_SIZE}x{NATURE_MIN_SIZE}; use --attention-trunk impala"
                )
            add_nature_convs(self, in_channels)
            return 64
        if not channels:
            raise UserError("the impala trunk needs at least one stack of channels")
        self.stacks = impala_stacks(in_channels, channels)
        self.relu = nn.ReLU()
        return int(channels[-1])

    def trunk_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk == "nature":
            return nature_convs(self, x)
        for stack in self.stacks:
            x = stack(x)
        return self.relu(x)


class AttentionCNN(_AttentionActorCritic):
    """Seed 002's agent: convolutions, L2-normalised features, K soft attention masks over locations,
    the masked features summed over the masks, then fc -> ReLU -> actor and critic heads."""

    name = "attention"
    min_input_size = 1  # the trunk checks its own (the Nature trunk needs NATURE_MIN_SIZE)

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        trunk: str = "nature",
        heads: int = 1,
        attention_hidden: int = 512,
        channels: Sequence[int] = (16, 32, 32),
        hidden_size: int = 512,
    ):
        super().__init__(observation_shape, num_actions)
        features = self._build_trunk(trunk, channels)
        self.normalize = L2Normalize()
        self.attention_input = "normalize"
        self.attention = SpatialAttention(features, heads, attention_hidden)
        self._add_dense_head(hidden_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.normalize(self.trunk_features(x)))


class FreeLunchSaliency(_AttentionActorCritic):
    """Sparse Free-Lunch Saliency (Nikulin et al. 2019): the features times a softplus gate computed
    from them by two 3x3 convs, then the dense head."""

    name = "fls"
    min_input_size = 1

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        trunk: str = "nature",
        gate_hidden: int = 256,
        channels: Sequence[int] = (16, 32, 32),
        hidden_size: int = 512,
    ):
        super().__init__(observation_shape, num_actions)
        features = self._build_trunk(trunk, channels)
        self.attention_input = "relu3" if trunk == "nature" else "relu"
        self.attention = FreeLunchGate(features, gate_hidden)
        self._add_dense_head(hidden_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.trunk_features(x))


def attention_layer(model: nn.Module) -> str | None:
    """The declared attention module of ``model`` (see the module docstring), or None."""
    name = getattr(model, "attention_layer", None)
    return name if isinstance(name, str) else None


def attended_layer(model: nn.Module) -> str | None:
    """The declared module whose output is the features after the attention, or None."""
    name = getattr(model, "attended_layer", None)
    return name if isinstance(name, str) and attention_layer(model) is not None else None


def attention_entropy(mask: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each map over its locations, summed over the K maps: (N, K, h, w) -> (N,).

    Each map is first normalised to sum to 1 (a softmax mask already does; an FLS gate does not),
    so a map on one location has entropy 0 and a uniform one ``log(h * w)``.
    """
    weights = mask.float().flatten(2)
    p = weights / weights.sum(dim=-1, keepdim=True).clamp_min(ENTROPY_EPS)
    return -(p * p.clamp_min(ENTROPY_EPS).log()).sum(dim=-1).sum(dim=-1)


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Inside the block, each forward pass of ``model`` appends its attention (N, K, h, w) to the
    yielded list (with its graph, so a loss can use it); the hook is removed on exit, always."""
    name = attention_layer(model)
    if name is None:
        raise UserError(f"{type(model).__name__} declares no attention_layer")
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise UserError(f"{type(model).__name__}'s attention_layer {name!r} is not one of its modules") from None
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    try:
        yield captured
    finally:
        handle.remove()


ARCHITECTURES[AttentionCNN.name] = AttentionCNN
ARCHITECTURES[FreeLunchSaliency.name] = FreeLunchSaliency
