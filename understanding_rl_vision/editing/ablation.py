"""The ablation table: the agent played as it is and with each NMF feature of one layer removed.

Every condition plays the same levels with the same random numbers (:func:`..training.evaluate.play_agent`
with one seed): env i's k-th episode is the same level for all of them, and an edited agent's
sampled actions differ from the original's only where its policy does. So besides each
condition's own 95% interval, the change from the original is measured on paired episodes, whose
interval is usually much narrower.

How an episode ends: Procgen reports whether the level was completed (``prev_level_complete``)
but not why an uncompleted one ended. Its games end an episode after :data:`PROCGEN_STEP_LIMIT`
steps (``Game::timeout`` in procgen's game.cpp; CoinRun keeps the default), so an uncompleted
episode that lasted that long timed out, and a shorter one ended by the agent dying (in CoinRun:
touching a saw, an enemy or lava).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..agents.base import Agent
from ..agents.edits import FeatureEdit, apply_edits, check_edits
from ..common.device import one_thread
from ..contract.schema import AblationInfo, EpisodeStats
from ..envs import EnvSpec, Episode, ProcgenSpec
from ..errors import UserError
from ..training.evaluate import check_counts, episode_quotas, held_out, play_agent
from .names import feature_label

PROCGEN_STEP_LIMIT = 1000
"""Steps after which a Procgen episode ends whatever happens (its info does not say it did)."""
Z95 = 1.96
"""The normal quantile of a two-sided 95% interval."""


@dataclass(frozen=True)
class Ablation:
    """The original agent's episodes and each edited agent's, summarised.

    ``changes[k]`` is the mean over paired episodes (same env, same level) of feature k's return
    minus the original's, and ``change_intervals[k]`` its 95% half-width."""

    layer: str
    names: tuple[str, ...]
    original: EpisodeStats
    features: tuple[EpisodeStats, ...]
    changes: tuple[float, ...]
    change_intervals: tuple[float, ...]
    ends: str
    env: str
    levels: str
    num_envs: int
    seed: int
    greedy: bool
    seconds: float

    def info(self, layer: int) -> AblationInfo:
        """The manifest's record of this table; ``layer`` indexes ``Manifest.layers``."""
        return AblationInfo(layer=layer, original=self.original, features=self.features, ends=self.ends)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Directions = Sequence[Sequence[float]] | np.ndarray
"""(K, C): one direction over the layer's channels per feature, e.g. a fit's NMF components."""


def ablate(
    agent: Agent,
    layer: str,
    directions: Directions,
    episodes: int,
    *,
    names: Sequence[str] = (),
    seed: int = 0,
    num_envs: int = 32,
    env_spec: EnvSpec | None = None,
    greedy: bool = False,
    progress: bool = True,
) -> Ablation:
    """Play ``episodes`` episodes with the agent, then as many with each direction of ``layer``
    (a dotted module name) projected out, one condition after another on the same levels.

    ``env_spec`` defaults to the agent's environment on held-out levels, as ``evaluate`` plays
    it: with the same ``seed``, the original's row is ``evaluate``'s result. The manifest's
    record is :meth:`Ablation.info`."""
    return _ablate(agent, layer, directions, episodes, names, seed, num_envs, env_spec, greedy, progress)


def _ablate(
    agent: Agent,
    layer: str,
    directions: Directions,
    episodes: int,
    names: Sequence[str],
    seed: int,
    num_envs: int,
    env_spec: EnvSpec | None,
    greedy: bool,
    progress: bool,
) -> Ablation:
    started = time.perf_counter()
    check_counts(episodes, num_envs, seed)
    if episodes < 2:
        raise UserError("an ablation needs at least 2 episodes per condition for an interval")
    if len(directions) == 0:
        raise UserError("no feature directions to remove")
    names = tuple(names) or tuple(f"feature {k + 1}" for k in range(len(directions)))
    if len(names) != len(directions):
        raise UserError(f"{len(names)} names for {len(directions)} directions")
    edited = []
    for direction, name in zip(directions, names):
        copied = copy.deepcopy(agent)  # keeps the agent's own edits, if any: edits compose
        apply_edits(copied.model, [FeatureEdit(layer, tuple(direction), name)])
        check_edits(copied)
        edited.append(copied)
    levels = "as given"
    if env_spec is None:
        env_spec, levels = held_out(agent.env_spec)
    num_envs = min(num_envs, episodes)
    quotas = episode_quotas(episodes, num_envs)
    limit = PROCGEN_STEP_LIMIT if isinstance(env_spec, ProcgenSpec) else None
    total = episodes * (1 + len(edited))
    with tqdm(total=total, unit="episode", desc="ablate", disable=not progress) as bar, one_thread():
        played = [play_agent(a, env_spec, quotas, seed, greedy=greedy, bar=bar) for a in (agent, *edited)]
    base = _returns(played[0])
    changes, intervals = [], []
    for episodes_played in played[1:]:
        change, interval = _mean_interval(_returns(episodes_played) - base)
        changes.append(change)
        intervals.append(interval)
    return Ablation(
        layer=layer,
        names=names,
        original=summarise(played[0], limit),
        features=tuple(summarise(p, limit) for p in played[1:]),
        changes=tuple(changes),
        change_intervals=tuple(intervals),
        ends=_ends(env_spec, limit, all(e.level_complete is not None for e in played[0])),
        env=env_spec.id,
        levels=levels,
        num_envs=num_envs,
        seed=seed,
        greedy=greedy,
        seconds=round(time.perf_counter() - started, 3),
    )


def summarise(episodes: Sequence[Episode], limit: int | None) -> EpisodeStats:
    """Mean return, its 95% half-width (1.96 sd / sqrt(n)), completion and how episodes ended."""
    returns = np.array([e.total_reward for e in episodes], np.float64)
    mean, interval = _mean_interval(returns)
    flags = [e.level_complete for e in episodes]
    completion = None if any(f is None for f in flags) else sum(map(bool, flags)) / len(flags)
    unfinished = [e for e in episodes if not e.level_complete]
    timeouts = sum(limit is not None and e.length >= limit for e in unfinished) / len(episodes)
    deaths = 0.0 if completion is None else 1.0 - completion - timeouts
    return EpisodeStats(
        episodes=len(episodes),
        mean_return=mean,
        interval=interval,
        completion=completion,
        timeouts=float(timeouts),
        deaths=max(0.0, deaths),
    )


def _returns(episodes: Sequence[Episode]) -> np.ndarray:
    """Returns ordered by (env, episode within env): the same order, so the same levels, for
    every condition (``play_agent`` lists episodes as they end, which differs between them)."""
    seen: dict[int, int] = {}
    keyed = []
    for episode in episodes:
        k = seen.get(episode.env_index, 0)
        seen[episode.env_index] = k + 1
        keyed.append(((episode.env_index, k), episode.total_reward))
    return np.array([reward for _, reward in sorted(keyed)], np.float64)


def _mean_interval(values: np.ndarray) -> tuple[float, float]:
    """The mean and the half-width of its 95% normal interval (sample sd, n - 1)."""
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.inf
    return float(values.mean()), Z95 * sd / math.sqrt(len(values))


def _ends(spec: EnvSpec, limit: int | None, levels: bool) -> str:
    if limit is not None:
        return (
            f"level completed: Procgen's info (prev_level_complete); timeout: not completed after {limit} steps, "
            f"Procgen's step limit (its info does not report it, so it is read from the episode's length); "
            f"death: not completed in fewer steps ({spec.id})"
        )
    if levels:
        return f"level completed: the env's info; death: any other end ({spec.id}'s step limit is not known here)"
    return f"not classified: {spec.id} reports neither level completion nor its step limit here"


def format_table(result: Ablation, heading: str = "") -> str:
    """One row per agent: return with its 95% interval, the paired change from the original
    (starred where its interval excludes 0), completion, and the shares of timeouts and deaths."""

    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    def row(name: str, stats: EpisodeStats, change: str) -> str:
        ends = f"{rate(stats.completion):>11}{rate(stats.timeouts):>9}{rate(stats.deaths):>8}"
        return f"{name:<34}{stats.mean_return:>7.2f} ± {stats.interval:<6.2f}{change:>16}{ends}"

    acting = "greedy" if result.greedy else "sampled"
    n = result.original.episodes
    lines = [
        heading or f"layer {result.layer}",
        f"{result.env}: {result.levels}; {n} episodes per agent on the same levels, {acting} actions, "
        f"{result.seconds:.0f} s",
        f"{'agent':<34}{'return (95%)':>16}{'change (paired)':>16}{'completion':>11}{'timeout':>9}{'death':>8}",
        row("original", result.original, ""),
    ]
    for k, stats in enumerate(result.features):
        change, interval = result.changes[k], result.change_intervals[k]
        star = "*" if abs(change) > interval else " "
        name = f"without {feature_label(k, result.names[k])}"[:33]
        lines.append(row(name, stats, f"{change:+.2f} ± {interval:.2f}{star}"))
    lines.append("* the change's paired 95% interval excludes 0 (same levels, same random numbers)")
    lines.append(f"ends: {result.ends}")
    return "\n".join(lines)
