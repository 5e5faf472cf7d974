"""The agent adapter: the only view of a model the rest of the package relies on.

Whatever produced the weights (our ``train``, Stable-Baselines3, CleanRL, a user's module), the
pipeline sees an :class:`Agent`: uint8 observations in, policy logits and a value out, plus the
model's named modules for hooks, the action names and the discount settings for GAE.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ..envs.actions import action_groups
from ..envs.spec import EnvSpec
from ..errors import ObservationShapeError, UserError

DEFAULT_GAMMA = 0.999
DEFAULT_LAMBDA = 0.95
Q_EPSILON = 0.05
"""A Q-network acts epsilon-greedily with this epsilon, the usual DQN evaluation setting."""
ACTION_OUTPUTS = ("logits", "q_values")


LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 (N, H, W, C) observations become the model's float input: scaled, and
    channels first (``NCHW``, most CNNs) or left last (``NHWC``, models that permute inside)."""

    scale: float = 1.0 / 255.0
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise UserError(f"input layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self.layout == "NCHW":
            obs = obs.permute(0, 3, 1, 2)
        return obs.float().mul_(self.scale)


@dataclass(frozen=True)
class AgentOutput:
    logits: torch.Tensor  # (N, A) unnormalised policy logits (Q-values for DQN-style agents)
    value: torch.Tensor  # (N,) state value (max_a Q for DQN-style agents)
    state: torch.Tensor | None = None  # (N, S) the state leaving this step, for recurrent agents


class Acted(NamedTuple):
    """What :meth:`Agent.act` returns, as numpy arrays."""

    actions: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N, A) logits or Q-values
    values: np.ndarray  # (N,)
    state: np.ndarray  # (N, S) the state leaving this step; S = 0 for a feed-forward agent


@dataclass(frozen=True)
class ArchitectureSpec:
    """Names a built-in architecture and its constructor arguments (stored in checkpoints)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Agent:
    """A model plus everything needed to feed it and explain it.

    ``model`` maps preprocessed input to ``(logits (N, A), value (N,))``, unless ``forward``
    says how to get them from it (see :func:`~understanding_rl_vision.agents.custom_agent`);
    its named submodules are the layers that can be explained.
    """

    model: nn.Module
    observation_shape: tuple[int, int, int]  # (H, W, C) uint8, as the environment yields it
    action_names: tuple[str, ...]
    preprocessing: Preprocessing = Preprocessing()
    gamma: float = DEFAULT_GAMMA
    lam: float = DEFAULT_LAMBDA
    env_spec: EnvSpec | None = None
    architecture: ArchitectureSpec | None = None  # None for models we did not build
    action_outputs: str = "logits"
    """``logits`` (a policy) or ``q_values`` (a Q-network: acts epsilon-greedily, value = max Q)."""
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    """Preprocessed input -> (logits, value), when calling ``model`` itself does not give them."""

    def __post_init__(self) -> None:
        if self.action_outputs not in ACTION_OUTPUTS:
            raise UserError(f"action_outputs must be one of {', '.join(ACTION_OUTPUTS)}, got {self.action_outputs!r}")

    @property
    def state_size(self) -> int:
        """Values in the recurrent state of one row (``model.state_size``); 0 for a feed-forward agent.
        See :mod:`.recurrent` for what a recurrent model provides."""
        return int(getattr(self.model, "state_size", 0))

    @property
    def recurrent(self) -> bool:
        return self.state_size > 0

    def initial_state(self, count: int) -> np.ndarray:
        """(count, S) float32 zeros: the state at an episode's start."""
        return np.zeros((count, self.state_size), np.float32)

    @staticmethod
    def reset_state(state: np.ndarray, first: np.ndarray) -> np.ndarray:
        """``state`` with the rows of environments whose episode starts now set to zeros."""
        return np.where(np.asarray(first, bool)[:, None], np.float32(0), state).astype(np.float32, copy=False)

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    @property
    def action_groups(self) -> dict[str, tuple[int, ...]]:
        return action_groups(self.action_names)

    @property
    def device(self) -> torch.device:
        tensor: torch.Tensor | None = next(self.model.parameters(), None)
        if tensor is None:
            tensor = next(self.model.buffers(), None)
        return torch.device("cpu") if tensor is None else tensor.device

    def named_layers(self) -> dict[str, nn.Module]:
        """Every submodule under its dotted ``named_modules`` name (the root is left out)."""
        return {name: module for name, module in self.model.named_modules() if name}

    def traceable(self) -> nn.Module:
        """A module computing ``(logits, value)`` from preprocessed input whose submodules carry
        ``model``'s names, for tracing the graph (with a custom ``forward``, ``model`` alone is
        not the whole computation)."""
        return self.model if self.forward is None else _ForwardModule(self.model, self.forward)

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

    def forward_preprocessed(self, x: torch.Tensor, state: torch.Tensor | np.ndarray | None = None) -> AgentOutput:
        """Logits and value for preprocessed input; a recurrent agent also reads ``state`` (N, S),
        the state entering this step (None: zeros, an episode's start), and returns the next one."""
        if self.recurrent:  # zeros made here, one per input row: a hook may copy the rows inside the model
            if state is None:
                state = torch.zeros(len(x), self.state_size, device=x.device)
            state = torch.as_tensor(state, dtype=torch.float32, device=x.device)
            logits, value, following = self.model(x, state)
            return AgentOutput(logits=logits, value=value.reshape(-1), state=following)
        if state is not None and np.prod(tuple(state.shape)) > 0:
            raise UserError("this agent is not recurrent; it takes no state")
        logits, value = self.forward(x) if self.forward is not None else self.model(x)
        return AgentOutput(logits=logits, value=value.reshape(-1))

    def __call__(self, obs: torch.Tensor | np.ndarray, state: torch.Tensor | np.ndarray | None = None) -> AgentOutput:
        return self.forward_preprocessed(self.preprocess(obs), state)

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None, state: np.ndarray | None = None) -> Acted:
        """Sample actions from the policy, or epsilon-greedily from Q-values. ``state`` (N, S) is a
        recurrent agent's state entering this step (None: an episode's start)."""
        out = self(obs, state)
        if not (torch.isfinite(out.logits).all() and torch.isfinite(out.value).all()):
            raise UserError("the model's logits or value are NaN or infinite; the checkpoint's weights are broken")
        scores = out.logits.float().cpu()
        if self.action_outputs == "q_values":
            explore = torch.rand(len(scores), generator=generator) < Q_EPSILON
            random = torch.randint(self.num_actions, (len(scores),), generator=generator)
            actions = torch.where(explore, random, scores.argmax(dim=-1))
        else:
            actions = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(1)
        following = np.zeros((len(scores), 0), np.float32) if out.state is None else out.state.float().cpu().numpy()
        return Acted(actions.numpy(), scores.numpy(), out.value.float().cpu().numpy(), following)


class _ForwardModule(nn.Module):
    """``forward`` as a module that shares ``model``'s children (same objects, same names)."""

    def __init__(self, model: nn.Module, forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]):
        super().__init__()
        self._modules = model._modules
        self._call = forward

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, value = self._call(x)
        return logits, value.reshape(-1)


def agent_digest(agent: Agent) -> str:
    """What the cache keys an in-memory agent by: its weights, class, settings and environment,
    and the code of a custom ``forward`` (so editing a head function is a new agent)."""
    h = hashlib.sha256()
    for name, tensor in sorted(agent.model.state_dict().items()):
        h.update(name.encode() + b"\0")
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    settings = {
        "class": type(agent.model).__qualname__,
        "shape": agent.observation_shape,
        "actions": agent.action_names,
        "preprocessing": [agent.preprocessing.scale, agent.preprocessing.layout],
        "gamma": agent.gamma,
        "lam": agent.lam,
        "outputs": agent.action_outputs,
        "env": repr(agent.env_spec),
    }
    if edits := getattr(agent.model, "feature_edits", ()):  # an edited agent (agents/edits.py) is another agent
        settings["edits"] = [[e.layer, e.direction, e.name] for e in edits]
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    if agent.forward is not None:
        h.update(_code_identity(agent.forward).encode())
    return h.hexdigest()


def _code_identity(function: Any, depth: int = 0) -> str:
    """Bytecode and constants of a function and the functions it closes over."""
    code = getattr(function, "__code__", None)
    if code is None or depth > 3:
        return repr(type(function))
    parts = [code.co_code.hex(), repr(code.co_consts), repr(code.co_names)]
    for cell in getattr(function, "__closure__", None) or ():
        try:
            parts.append(_code_identity(cell.cell_contents, depth + 1))
        except ValueError:  # an empty cell
            continue
    return "|".join(parts)
