"""What a state of interest is: seed 003's target functions (section 2.3), as energies to minimise.

For a Q-network they are the seed's own, on the Q-values q with a soft maximum of sharpness w
(``softmax(w q) . q``, and the soft minimum with -w):

* ``high-value`` (T+): raise the lowest Q-value: every action is good, -softmin(q);
* ``low-value`` (T-): lower the highest Q-value: no action is good, softmax(q) (equation 6);
* ``decisive`` (T+-): one action very good while another is very bad, softmin(q) - softmax(q)
  (equation 7);
* ``action:NAME`` (S_a): action maximisation, -q_a.

An actor-critic has a value head and a policy instead of Q-values, so the same ideas read: T+ and T-
raise and lower the value, T+- spreads the policy's log-probabilities (its surest action against its
least likely one), and S_a raises the action's log-probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..agents.base import Agent, AgentOutput
from ..errors import UserError

NAMED_TARGETS = ("high-value", "low-value", "decisive")
ACTION_PREFIX = "action:"
TITLES = {
    "high-value": "T+ high value",
    "low-value": "T- low value",
    "decisive": "T+- one action good, another bad",
}


@dataclass(frozen=True)
class Target:
    """One target: ``name`` is ``high-value``, ``low-value``, ``decisive`` or ``action:NAME``."""

    name: str
    sharpness: float = 1.0
    """w of the soft maximum over Q-values (or log-probabilities); larger is closer to the max."""

    def energy(self, agent: Agent, out: AgentOutput) -> torch.Tensor:
        """(N,) energy of each state: lower is more what the target asks for."""
        q = out.logits if agent.action_outputs == "q_values" else torch.log_softmax(out.logits, dim=1)
        if self.name.startswith(ACTION_PREFIX):
            return -q[:, action_index(agent, self.name)]
        soft_max, soft_min = self._soft(q, self.sharpness), self._soft(q, -self.sharpness)
        if self.name == "decisive":
            return soft_min - soft_max
        if agent.action_outputs == "q_values":
            return -soft_min if self.name == "high-value" else soft_max
        return -out.value if self.name == "high-value" else out.value

    @property
    def title(self) -> str:
        return TITLES.get(self.name) or f"S_a {self.name.removeprefix(ACTION_PREFIX)}"

    @staticmethod
    def _soft(q: torch.Tensor, sharpness: float) -> torch.Tensor:
        return (torch.softmax(sharpness * q, dim=1) * q).sum(dim=1)


def action_index(agent: Agent, name: str) -> int:
    action = name.removeprefix(ACTION_PREFIX)
    names = [n.lower() for n in agent.action_names]
    if action.lower() not in names:
        raise UserError(f"target {name}: no action {action!r}; this agent's actions: {', '.join(agent.action_names)}")
    return names.index(action.lower())


def parse_targets(agent: Agent, names: Sequence[str], sharpness: float) -> tuple[Target, ...]:
    """The targets named, checked against the agent (an action target must name one of its actions)."""
    if not names:
        raise UserError("name at least one target")
    targets = []
    for name in names:
        if name not in NAMED_TARGETS and not name.startswith(ACTION_PREFIX):
            raise UserError(f"unknown target {name!r}; use {', '.join(NAMED_TARGETS)} or {ACTION_PREFIX}NAME")
        if name.startswith(ACTION_PREFIX):  # the agent's own spelling, so LEFT and left are one target
            name = ACTION_PREFIX + agent.action_names[action_index(agent, name)]
        targets.append(Target(name, sharpness))
    if len(set(targets)) < len(targets):
        raise UserError(f"a target is named twice in {', '.join(names)}")
    return tuple(targets)
