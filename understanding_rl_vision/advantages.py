"""Generalised advantage estimation and the bookmarks drawn from it.

A large advantage means the episode went better than the value function expected at that
moment ("unexpected success"), a very negative one worse ("unexpected failure"). The interface
links the most extreme moment of the most surprising episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    lam: float,
    last_values: np.ndarray | None = None,
) -> np.ndarray:
    """Advantages (E, T) from arrays indexed (trajectory, step).

    delta_t = r_t + (1 - done_t) * gamma * V_{t+1} - V_t
    A_t     = delta_t + (1 - done_t) * gamma * lam * A_{t+1}

    ``done_t`` means action t ended the episode. With ``last_values`` (the value of the
    observation after the last step) the final step is bootstrapped; without it the final
    advantage is 0, exactly as in the original implementation. The recursion runs backwards
    over time and is vectorised over trajectories.
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    notdone = 1.0 - np.asarray(dones, np.float64)
    advantages = np.zeros_like(rewards)
    if last_values is not None:
        last_values = np.asarray(last_values, np.float64)
        advantages[:, -1] = rewards[:, -1] + notdone[:, -1] * gamma * last_values - values[:, -1]
    next_advantage = advantages[:, -1]
    for t in range(rewards.shape[1] - 2, -1, -1):
        delta = rewards[:, t] + notdone[:, t] * gamma * values[:, t + 1] - values[:, t]
        next_advantage = delta + notdone[:, t] * gamma * lam * next_advantage
        advantages[:, t] = next_advantage
    return advantages.astype(np.float32)


@dataclass(frozen=True)
class Bookmark:
    """A link into the interface: one frame of one trajectory."""

    trajectory: int
    frame: int
    advantage: float


@dataclass(frozen=True)
class Bookmarks:
    high: tuple[Bookmark, ...]  # unexpected successes, highest advantage first
    low: tuple[Bookmark, ...]  # unexpected failures, lowest advantage first


def episode_ids(firsts: np.ndarray) -> np.ndarray:
    """(E, T) integer ids, unique across trajectories, that change wherever an episode starts."""
    starts = np.asarray(firsts, bool).copy()
    starts[:, 0] = True  # every trajectory opens a (possibly partial) episode
    return np.cumsum(starts.ravel()).reshape(starts.shape) - 1


def find_bookmarks(advantages: np.ndarray, firsts: np.ndarray, count: int = 16) -> Bookmarks:
    """The ``count`` episodes with the highest and the lowest extreme advantage.

    Each episode contributes at most one bookmark of each kind: its most extreme frame. Ties
    resolve to the earliest frame. A success needs a positive advantage and a failure a negative
    one, so an episode that only went worse than expected is never listed as a success.
    """
    advantages = np.asarray(advantages)
    num_steps = advantages.shape[1]
    episode = episode_ids(firsts).ravel()
    flat = advantages.ravel()
    position = np.arange(flat.size)

    def extremes(sign: float) -> tuple[Bookmark, ...]:
        # Sort by episode, then by signed advantage (largest first), then by position.
        order = np.lexsort((position, -sign * flat, episode))
        _, first_in_episode = np.unique(episode[order], return_index=True)
        best = order[first_in_episode]  # one frame per episode
        best = best[sign * flat[best] > 0]
        ranked = best[np.lexsort((best, -sign * flat[best]))][:count]
        return tuple(Bookmark(int(i // num_steps), int(i % num_steps), float(flat[i])) for i in ranked)

    return Bookmarks(high=extremes(+1.0), low=extremes(-1.0))


def discount_settings(
    gamma: float | None, lam: float | None, agent_gamma: float, agent_lam: float
) -> tuple[float, float]:
    """The user's override where given, else the checkpoint's values."""
    return (agent_gamma if gamma is None else gamma, agent_lam if lam is None else lam)
