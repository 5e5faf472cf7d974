"""Which scalar do we explain? The one place that decides.

A model is explained through its *output vector*: one row per frame, e.g. ``[value, logit_0, ...,
logit_{A-1}]`` for an actor-critic agent. Every scalar we attribute (the value, one logit, the sum
of an action group's logits) is a fixed linear combination of that vector, an :class:`Output`.
Attributing K outputs is then one batched backward pass with K weight vectors, never K passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..agents.attention import attended_layer
from ..agents.base import Agent
from ..agents.recurrent import MEMORY
from ..errors import UserError

ATTENTION_OUTPUT = "attention"
"""An attention agent's extra entry (:mod:`..agents.attention`): the sum of the features that pass its
attention, what the policy is restricted to. Its gradient with respect to the input is seed 002's
"gradient of the attention layer"; methods declared ``explains="attention"`` explain only it."""

OutputKind = Literal["scalar", "taken", "vector"]
"""``scalar``: ``weights`` combine the output vector into one number, the same for every frame.
``taken``: ``weights`` mark the action entries (in action order); each frame explains the entry of
the action it took. ``vector``: the marked entries together, as a vector (perturbation scores its
change by a norm; gradient methods explain one scalar and refuse it)."""


@dataclass(frozen=True)
class Output:
    """One explained output: ``weights`` combine (or, see :data:`OutputKind`, mark) the entries of
    the output vector."""

    name: str  # "value", "logit:LEFT+UP", "group:RIGHT", "action", "actor"
    weights: tuple[float, ...]
    kind: OutputKind = "scalar"


@dataclass(frozen=True)
class ExplainedModel:
    """A module to hook plus the function from its input to the output vector.

    ``forward`` takes the model's (preprocessed) input batch and returns (N, M). ``entries`` names
    the M entries; ``groups`` names sets of entries whose sum is also worth explaining.

    A recurrent model (:mod:`..agents.recurrent`) also reads the state entering each frame: ``step``
    maps (input, states) to the output vector, and :meth:`with_states` binds the states of a batch of
    frames. A method that runs rows made from those frames (a chunk, noisy or perturbed copies)
    calls ``on(frame of each row).forward(rows)``, so every row reads its own frame's state; copies
    made inside the network (integrated gradients' scaled layer) are matched there, copy-major.
    """

    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    entries: tuple[str, ...]
    groups: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    step: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
    """(input, states or None) -> output vector, for a recurrent model; None for a feed-forward one."""
    states: torch.Tensor | None = None
    """(N, S) the bound states, one per frame of the batch being explained (None: zeros)."""
    memory: str | None = None
    """The module the incoming state passes through (integrated gradients attribute to it)."""

    @property
    def recurrent(self) -> bool:
        return self.step is not None

    def with_states(self, states: torch.Tensor | np.ndarray | None) -> ExplainedModel:
        """This model reading ``states`` (N, S), the state entering each of N frames; a feed-forward
        model ignores them (they are then (N, 0))."""
        if self.step is None:
            if states is not None and np.prod(tuple(states.shape[1:])) > 0:
                raise UserError("states were given, but the model is not recurrent")
            return self
        if states is None:
            return replace(self, states=None, forward=_bind(self.step, None))
        bound = torch.as_tensor(states, dtype=torch.float32)
        return replace(self, states=bound, forward=_bind(self.step, bound))

    def on(self, rows: torch.Tensor | slice) -> ExplainedModel:
        """The model for a batch whose rows come from frames ``rows`` (indices or a slice) of the
        bound batch; unchanged for a feed-forward model or unbound states."""
        if self.states is None:
            return self
        return self.with_states(self.states[rows if isinstance(rows, slice) else rows.to(self.states.device)])

    def outputs(self, selection: Sequence[str] | str = ("value",)) -> tuple[Output, ...]:
        """Resolve names to outputs.

        Accepted: an entry name (``value``, ``logit:LEFT``), ``logits`` (every ``logit:`` entry),
        ``group:NAME``, ``groups`` (every group), ``action`` (the logit of the action taken at each
        frame) and ``actor`` (all logits as one vector). Unknown names fail listing the valid ones.
        """
        if isinstance(selection, str):
            selection = [part.strip() for part in selection.split(",") if part.strip()]
        chosen: dict[str, Output] = {}
        for name in selection:
            for output in self._resolve(name):
                chosen.setdefault(output.name, output)
        if not chosen:
            raise UserError("choose at least one output to explain, e.g. 'value'")
        return tuple(chosen.values())

    def _resolve(self, name: str) -> list[Output]:
        if name in self.entries:
            return [self._combination(name, [self.entries.index(name)])]
        if name == "logits":
            indices = [i for i, entry in enumerate(self.entries) if entry.startswith("logit:")]
            return [self._combination(self.entries[i], [i]) for i in indices]
        if name in ("action", "actor"):
            marked = self._combination(name, [i for i, entry in enumerate(self.entries) if entry.startswith("logit:")])
            return [Output(name, marked.weights, "taken" if name == "action" else "vector")]
        if name == "groups":
            return [self._combination(f"group:{g}", idx) for g, idx in self.groups.items()]
        if name.startswith("group:") and name[len("group:") :] in self.groups:
            return [self._combination(name, self.groups[name[len("group:") :]])]
        valid = [*self.entries, "logits", *(f"group:{g}" for g in self.groups), "groups", "action", "actor"]
        raise UserError(f"unknown output {name!r}; valid: {', '.join(valid)}")

    def _combination(self, name: str, indices: Sequence[int]) -> Output:
        weights = [0.0] * len(self.entries)
        for index in indices:
            weights[index] = 1.0
        return Output(name, tuple(weights))


def _with_attention(
    step: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], model: nn.Module, attended: str
) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``step`` with one more entry: the sum of what passes the attention (see :data:`ATTENTION_OUTPUT`)."""
    module = model.get_submodule(attended)

    def with_attention(x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda _module, _args, output: seen.append(output))
        try:
            vector = step(x, state)
        finally:
            handle.remove()
        return torch.cat([vector, seen[-1].flatten(1).sum(dim=1, keepdim=True).to(vector.dtype)], dim=1)

    return with_attention


def _bind(
    step: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], states: torch.Tensor | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: step(x, states)


def output_rows(
    outputs: Sequence[Output],
    frames: int,
    actions: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    *,
    scalar: bool = True,
) -> torch.Tensor:
    """(K, N, M) float32: row [k, n] weighs frame n's output vector for output k.

    ``actions`` (N,) are the actions taken, which ``action`` outputs need. With ``scalar``, a
    ``vector`` output is refused: gradient methods explain one number at a time.
    """
    rows = torch.tensor([o.weights for o in outputs], dtype=torch.float32, device=device)
    rows = rows[:, None, :].repeat(1, frames, 1)
    for k, output in enumerate(outputs):
        if output.kind == "vector" and scalar:
            raise UserError(
                f"{output.name!r} is a vector of outputs, which only perturbation explains; "
                "gradient methods explain one number: choose value, action or logit:<name>"
            )
        if output.kind == "taken":
            if actions is None:
                raise UserError(f"the {output.name!r} output needs the actions taken at each frame (actions=...)")
            actions = torch.as_tensor(actions, device=device).long().reshape(-1)
            candidates = torch.tensor([i for i, w in enumerate(output.weights) if w], device=device)
            if len(actions) != frames or (len(actions) and (actions.min() < 0 or actions.max() >= len(candidates))):
                raise UserError(
                    f"{frames} frames need {frames} actions in 0..{len(candidates) - 1}, got {len(actions)}"
                )
            rows[k] = 0.0
            rows[k, torch.arange(frames, device=device), candidates[actions]] = 1.0
    return rows


def explain_agent(agent: Agent, states: torch.Tensor | np.ndarray | None = None) -> ExplainedModel:
    """The actor-critic view: entries ``value`` then ``logit:<action>``; groups by arrow direction.

    Action groups are sums of logits (as in the original), indices shifted past the value entry.
    For a recurrent agent, ``states`` (N, S) are the states entering the N frames to explain (None:
    zeros; bind others later with :meth:`ExplainedModel.with_states`).
    """

    def step(x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        out = agent.forward_preprocessed(x, None if state is None else state.to(x.device))
        return torch.cat([out.value.reshape(-1, 1), out.logits], dim=1)

    entries = ("value", *(f"logit:{name}" for name in agent.action_names))
    groups = {name: tuple(i + 1 for i in idx) for name, idx in agent.action_groups.items()}
    forward: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] = step
    attended = attended_layer(agent.model)
    if attended is not None:
        forward = _with_attention(step, agent.model, attended)
        entries = (*entries, ATTENTION_OUTPUT)
    if not agent.recurrent:
        return ExplainedModel(agent.model, _bind(forward, None), entries, groups)
    return ExplainedModel(agent.model, _bind(forward, None), entries, groups, step=forward, memory=MEMORY).with_states(
        states
    )
