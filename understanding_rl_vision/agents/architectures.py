"""Built-in actor-critic CNNs, and the registry that rebuilds them from checkpoints.

Every module maps float (N, C, H, W) input to ``(logits (N, A), value (N,))``. Interpretability
tools hook modules by their dotted ``named_modules`` names, so each activation is its own
``nn.ReLU`` instance used exactly once (a reused or functional ReLU would make a hook fire
twice or never), and residual additions live inside :class:`ResidualBlock` so the residual
stream itself can be hooked.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..envs.spec import EnvSpec
from ..errors import ObservationShapeError, UserError
from .base import DEFAULT_GAMMA, DEFAULT_LAMBDA, Agent, ArchitectureSpec

HEADS = ("actor-critic", "q")
"""``actor-critic``: policy logits and a value; ``q``: Q-values, and max_a Q as the value (DQN)."""
HIDDEN_GAIN = math.sqrt(2.0)
POLICY_GAIN = 0.01
VALUE_GAIN = 1.0


class L2Pool2d(nn.Module):
    """L2 pooling, ``sqrt(avgpool(x^2) + eps)``: smoother than max pooling, which the
    "clear" architecture relies on for interpretable features."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None, eps: float = 1e-8):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(F.avg_pool2d(x * x, self.kernel_size, self.stride) + self.eps)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, eps={self.eps}"


class _ActorCritic(nn.Module):
    """Shared plumbing: shape checks, the flatten size, heads and PPO-style initialisation.

    Subclasses build ``self.trunk_modules()`` (the convolutional part, in order) in their
    constructor, then call :meth:`_finish` with the dense layers that follow the flatten.
    """

    name: ClassVar[str]
    min_input_size: ClassVar[int]
    """Smallest height and width whose feature map survives every conv and pool."""

    def __init__(self, observation_shape: Sequence[int], num_actions: int, head: str = "actor-critic"):
        super().__init__()
        if head not in HEADS:
            raise UserError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        self.head = head
        shape = tuple(int(d) for d in observation_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ObservationShapeError(f"observation shape {shape} is not (H, W, C) with positive sizes")
        if int(num_actions) < 1:
            raise UserError(f"an agent needs at least one action, got {num_actions}")
        height, width, _ = shape
        if min(height, width) < self.min_input_size:
            raise ObservationShapeError(
                f"observations of shape {shape} (H, W, C) are too small for the {self.name!r} "
                f"architecture, which needs at least {self.min_input_size}x{self.min_input_size}"
            )
        self.observation_shape: tuple[int, int, int] = shape
        self.num_actions = int(num_actions)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional trunk: input -> rank-4 feature map before the flatten."""
        raise NotImplementedError

    def _flat_size(self) -> int:
        """Flatten size from a dummy forward, so any observation size works without edits."""
        height, width, channels = self.observation_shape
        with torch.no_grad():
            out = self.features(torch.zeros(1, channels, height, width))
        return int(out[0].numel())

    def _init_weights(self) -> None:
        """Orthogonal weights and zero biases, the standard PPO initialisation."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                gain = HIDDEN_GAIN
                if module is getattr(self, "policy", None):
                    gain = POLICY_GAIN
                elif module is getattr(self, "value", None):
                    gain = VALUE_GAIN
                nn.init.orthogonal_(module.weight, gain=gain)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _add_dense_head(self, hidden_size: int) -> None:
        """flatten -> linear -> relu -> (policy, value), or -> q for a Q-network: the head
        IMPALA and Nature share."""
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(self._flat_size(), hidden_size)
        self.relu_fc = nn.ReLU()
        self._add_outputs(hidden_size)
        self._init_weights()

    def _add_outputs(self, hidden_size: int) -> None:
        if self.head == "q":
            self.q = nn.Linear(hidden_size, self.num_actions)
        else:
            self.policy = nn.Linear(hidden_size, self.num_actions)
            self.value = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.relu_fc(self.fc(self.flatten(self.features(x))))
        return self.heads(hidden)

    def heads(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.head == "q":
            q = self.q(hidden)
            return q, q.max(dim=-1).values
        return self.policy(hidden), self.value(hidden).squeeze(-1)


class ResidualBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input; the add is explicit so hooking
    this module yields the residual stream."""

    def __init__(self, channels: int):
        super().__init__()
        self.relu0 = nn.ReLU()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(self.relu1(self.conv0(self.relu0(x))))


class ConvSequence(nn.Module):
    """One IMPALA stack: conv3x3 -> maxpool 3x3 stride 2 -> two residual blocks."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0 = ResidualBlock(out_channels)
        self.res1 = ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


def impala_stacks(in_channels: int, channels: Sequence[int]) -> nn.ModuleList:
    """IMPALA's convolutional stacks, one :class:`ConvSequence` per entry of ``channels``."""
    stacks = []
    for out_channels in channels:
        stacks.append(ConvSequence(in_channels, int(out_channels)))
        in_channels = int(out_channels)
    return nn.ModuleList(stacks)


def add_nature_convs(model: nn.Module, in_channels: int) -> None:
    """The Nature CNN's three convolutions and their ReLUs as ``model.conv1`` ... ``model.relu3``;
    :func:`nature_convs` runs them."""
    model.conv1 = nn.Conv2d(in_channels, 32, 8, stride=4)
    model.relu1 = nn.ReLU()
    model.conv2 = nn.Conv2d(32, 64, 4, stride=2)
    model.relu2 = nn.ReLU()
    model.conv3 = nn.Conv2d(64, 64, 3, stride=1)
    model.relu3 = nn.ReLU()


def nature_convs(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The Nature CNN's convolutions, added by :func:`add_nature_convs`, run on ``x``."""
    x = model.relu1(model.conv1(x))
    x = model.relu2(model.conv2(x))
    return model.relu3(model.conv3(x))


class ImpalaCNN(_ActorCritic):
    """IMPALA CNN (Espeholt et al. 2018) as used for Procgen; native input 64x64x3."""

    name = "impala"
    min_input_size = 1  # padded pools never shrink a map below 1x1

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        channels: Sequence[int] = (16, 32, 32),
        hidden_size: int = 256,
        head: str = "actor-critic",
    ):
        super().__init__(observation_shape, num_actions, head)
        if not channels:
            raise UserError("the impala architecture needs at least one stack of channels")
        self.stacks = impala_stacks(self.observation_shape[2], channels)
        self.relu = nn.ReLU()
        self._add_dense_head(hidden_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for stack in self.stacks:
            x = stack(x)
        return self.relu(x)


class NatureCNN(_ActorCritic):
    """DQN "Nature" CNN (Mnih et al. 2015); native input 84x84x4 stacked grey frames."""

    name = "nature"
    min_input_size = 36  # 36 -> 8 -> 3 -> 1 through the three valid convs

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        hidden_size: int = 512,
        head: str = "actor-critic",
    ):
        super().__init__(observation_shape, num_actions, head)
        add_nature_convs(self, self.observation_shape[2])
        self._add_dense_head(hidden_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return nature_convs(self, x)


class ClearCNN(_ActorCritic):
    """The original understanding-rl-vision "clear" architecture (layer 2b is interpretable):
    no residual connections and L2 pooling instead of max pooling; native input 64x64x3."""

    name = "clear"
    min_input_size = 16  # four 2x2 pools: 16 -> 8 -> 4 -> 2 -> 1

    def __init__(self, observation_shape: Sequence[int], num_actions: int):
        super().__init__(observation_shape, num_actions)
        self.conv1a = nn.Conv2d(self.observation_shape[2], 16, 7, padding=3)
        self.relu1a = nn.ReLU()
        self.pool1 = L2Pool2d(2)
        self.conv2a = nn.Conv2d(16, 32, 5, padding=2)
        self.relu2a = nn.ReLU()
        self.conv2b = nn.Conv2d(32, 32, 5, padding=2)
        self.relu2b = nn.ReLU()
        self.pool2 = L2Pool2d(2)
        self.conv3a = nn.Conv2d(32, 32, 5, padding=2)
        self.relu3a = nn.ReLU()
        self.pool3 = L2Pool2d(2)
        self.conv4a = nn.Conv2d(32, 32, 5, padding=2)
        self.relu4a = nn.ReLU()
        self.pool4 = L2Pool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(self._flat_size(), 256)
        self.relu_fc1 = nn.ReLU()
        self.fc2 = nn.Linear(256, 512)
        self.relu_fc2 = nn.ReLU()
        self.value = nn.Linear(512, 1)
        self.policy = nn.Linear(512, self.num_actions)
        self._init_weights()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1a(self.conv1a(x)))
        x = self.relu2a(self.conv2a(x))
        x = self.pool2(self.relu2b(self.conv2b(x)))
        x = self.pool3(self.relu3a(self.conv3a(x)))
        return self.pool4(self.relu4a(self.conv4a(x)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.relu_fc1(self.fc1(self.flatten(self.features(x))))
        hidden = self.relu_fc2(self.fc2(hidden))
        return self.heads(hidden)


ARCHITECTURES: dict[str, type[_ActorCritic]] = {
    "impala": ImpalaCNN,
    "nature": NatureCNN,
    "clear": ClearCNN,
}


def build_model(spec: ArchitectureSpec, observation_shape: Sequence[int], num_actions: int) -> nn.Module:
    """Instantiate a registered architecture; bad names or arguments are user errors."""
    cls = ARCHITECTURES.get(spec.name)
    if cls is None:
        raise UserError(f"unknown architecture {spec.name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    try:  # check the arguments first, so a TypeError from inside torch is never misreported
        inspect.signature(cls).bind(observation_shape, num_actions, **spec.kwargs)
    except TypeError as exc:
        raise UserError(f"bad arguments for the {spec.name!r} architecture: {exc}") from None
    return cls(observation_shape, num_actions, **spec.kwargs)


def make_agent(
    architecture: str,
    env_spec: EnvSpec | None,
    observation_shape: Sequence[int],
    action_names: Sequence[str],
    *,
    gamma: float = DEFAULT_GAMMA,
    lam: float = DEFAULT_LAMBDA,
    seed: int | None = None,
    **arch_kwargs: Any,
) -> Agent:
    """A freshly initialised agent. With ``seed`` the weights are reproducible and the global
    torch RNG is left exactly as it was; without, the global RNG supplies them."""
    try:  # normalise to what a checkpoint stores (tuples become lists) so round trips compare equal
        kwargs = json.loads(json.dumps(arch_kwargs, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UserError(f"architecture arguments must be JSON values: {exc}") from None
    spec = ArchitectureSpec(architecture, kwargs)
    shape = tuple(int(d) for d in observation_shape)
    names = tuple(str(n) for n in action_names)
    if seed is None:
        model = build_model(spec, shape, len(names))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(spec, shape, len(names))
    return Agent(
        model=model,
        observation_shape=shape,  # type: ignore[arg-type]
        action_names=names,
        gamma=float(gamma),
        lam=float(lam),
        env_spec=env_spec,
        architecture=spec,
        action_outputs="q_values" if kwargs.get("head") == "q" else "logits",
    )
