"""The agent adapter: the only view of a model the rest of the package relies on.

Whatever produced the weights (our ``train``, Stable-Baselines3, CleanRL, a user's module), the
pipeline sees an :class:`Agent`: uint8 observations in, policy logits and a value out, plus the
model's named modules for hooks, the action names and the discount settings for GAE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..envs.actions import action_groups
from ..envs.spec import EnvSpec
from ..errors import ObservationShapeError, UserError

DEFAULT_GAMMA = 0.999
DEFAULT_LAMBDA = 0.95


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 (N, H, W, C) observations become the model's float (N, C, H, W) input."""

    scale: float = 1.0 / 255.0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.permute(0, 3, 1, 2).float().mul_(self.scale)


@dataclass(frozen=True)
class AgentOutput:
    logits: torch.Tensor  # (N, A) unnormalised policy logits (Q-values for DQN-style agents)
    value: torch.Tensor  # (N,) state value


@dataclass(frozen=True)
class ArchitectureSpec:
    """Names a built-in architecture and its constructor arguments (stored in checkpoints)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Agent:
    """A model plus everything needed to feed it and explain it.

    ``model`` maps preprocessed input (N, C, H, W) to ``(logits (N, A), value (N,))``.
    """

    model: nn.Module
    observation_shape: tuple[int, int, int]  # (H, W, C) uint8, as the environment yields it
    action_names: tuple[str, ...]
    preprocessing: Preprocessing = Preprocessing()
    gamma: float = DEFAULT_GAMMA
    lam: float = DEFAULT_LAMBDA
    env_spec: EnvSpec | None = None
    architecture: ArchitectureSpec | None = None  # None for models we did not build

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    @property
    def action_groups(self) -> dict[str, tuple[int, ...]]:
        return action_groups(self.action_names)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def named_layers(self) -> dict[str, nn.Module]:
        """Every submodule under its dotted ``named_modules`` name (the root is left out)."""
        return {name: module for name, module in self.model.named_modules() if name}

    def check_observations(self, shape: tuple[int, ...]) -> None:
        """Fail with both shapes named when observations do not fit the architecture."""
        if tuple(shape[-3:]) != tuple(self.observation_shape) or len(shape) != 4:
            raise ObservationShapeError(
                f"observations of shape {tuple(shape)} (N, H, W, C) do not fit this agent, "
                f"which expects (N, {', '.join(map(str, self.observation_shape))})"
            )

    def preprocess(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, C) -> the model's float input on the model's device."""
        self.check_observations(tuple(obs.shape))
        obs = torch.as_tensor(obs, device=self.device)
        return self.preprocessing(obs)

    def forward_preprocessed(self, x: torch.Tensor) -> AgentOutput:
        logits, value = self.model(x)
        return AgentOutput(logits=logits, value=value.reshape(-1))

    def __call__(self, obs: torch.Tensor | np.ndarray) -> AgentOutput:
        return self.forward_preprocessed(self.preprocess(obs))

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, generator: torch.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample actions from the policy: returns (actions, logits, values) as numpy arrays."""
        out = self(obs)
        if not (torch.isfinite(out.logits).all() and torch.isfinite(out.value).all()):
            raise UserError("the model's logits or value are NaN or infinite; the checkpoint's weights are broken")
        probs = torch.softmax(out.logits.float(), dim=-1)
        actions = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1)
        return actions.numpy(), out.logits.float().cpu().numpy(), out.value.float().cpu().numpy()
