"""How good is an agent? Mean episode return on unseen levels, next to a uniform-random policy.

Two details keep the numbers honest:

* Held-out levels. A Procgen agent trained on levels [s, s + n) is evaluated on the unlimited
  level distribution (the standard Procgen test protocol); one trained on unlimited levels, or
  in any other env, on a seed stream separate from training's.
* No bias towards short episodes. Stopping after the first N episodes to end over-counts short
  ones (often failures). Instead each parallel env contributes a quota fixed in advance, its
  first k episodes, whatever their length.

The random policy plays the same envs with the same seed, so in Procgen it meets the same levels.
A recurrent agent carries its state from step to step, reset to zeros where an episode starts.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..agents import Agent, load_checkpoint
from ..common.device import check_device
from ..envs import EnvSpec, Episode, ProcgenSpec, spec_to_dict
from ..envs.gymnasium_env import MAX_SEED
from ..errors import UserError
from ..rollout import open_env

Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Observations (N, H, W, C) and whether each starts an episode (N,) -> actions (N,)."""
EVALUATION_STREAM = 1
"""Spawn key that keeps evaluation seeds apart from training's (which use the bare seed)."""


@dataclass(frozen=True)
class EvaluationResult:
    """Episode statistics for the agent and for a uniform-random policy on the same envs."""

    episodes: int
    mean_return: float
    std_return: float
    level_completion_rate: float | None  # None where the env has no notion of completing a level
    random_mean_return: float
    random_std_return: float
    random_level_completion_rate: float | None
    env: str  # e.g. "procgen:coinrun"
    env_spec: dict[str, Any]
    levels: str  # which levels were played, and why they are held out
    greedy: bool  # argmax actions instead of sampling
    num_envs: int
    seed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    agent_or_checkpoint: Agent | str | os.PathLike[str],
    episodes: int = 500,
    *,
    num_envs: int = 32,
    env_spec: EnvSpec | None = None,
    seed: int = 0,
    greedy: bool = False,
    device: str = "cpu",
    progress: bool = True,
    baseline: bool = True,
) -> EvaluationResult:
    """Play ``episodes`` episodes with the agent and, with ``baseline``, as many with a random
    policy (without it, the random policy's numbers are NaN).

    ``env_spec`` defaults to the agent's training env on held-out levels (see the module
    docstring). The agent samples from its policy as in training, or acts greedily. At most
    ``episodes`` envs run, each playing its fixed share of the episodes.
    """
    started = time.perf_counter()
    check_counts(episodes, num_envs, seed)
    agent = agent_or_checkpoint
    if not isinstance(agent, Agent):
        agent = load_checkpoint(agent, device=check_device(device))
    if env_spec is None:
        env_spec, levels = held_out(agent.env_spec)
    else:
        levels = "as given"
    num_envs = min(num_envs, episodes)
    quotas = episode_quotas(episodes, num_envs)
    env_seed, _, random_seed = evaluation_seeds(seed, num_envs)
    rng = np.random.default_rng(random_seed)

    def random_policy(obs: np.ndarray, first: np.ndarray) -> np.ndarray:
        return rng.integers(agent.num_actions, size=len(obs))

    bar = tqdm(total=(1 + baseline) * episodes, unit="episode", desc="evaluate", disable=not progress)
    with bar:
        played = play_agent(agent, env_spec, quotas, seed, greedy=greedy, bar=bar)
        random_mean, random_std, random_completion = math.nan, math.nan, None
        if baseline:
            with open_env(agent, env_spec, num_envs, env_seed) as env:
                random_mean, random_std, random_completion = _summary(_play(env, random_policy, quotas, bar))
    mean, std, completion = _summary(played)
    return EvaluationResult(
        episodes=len(played),
        mean_return=mean,
        std_return=std,
        level_completion_rate=completion,
        random_mean_return=random_mean,
        random_std_return=random_std,
        random_level_completion_rate=random_completion,
        env=env_spec.id,
        env_spec=spec_to_dict(env_spec),
        levels=levels,
        greedy=greedy,
        num_envs=num_envs,
        seed=seed,
        seconds=round(time.perf_counter() - started, 3),
    )


def check_counts(episodes: int, num_envs: int, seed: int) -> None:
    """One line naming the first of episodes, num_envs and seed that is not a count."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserError(f"episodes must be a positive integer, got {episodes!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise UserError(f"num_envs must be a positive integer, got {num_envs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")


def episode_quotas(episodes: int, num_envs: int) -> list[int]:
    """Each env's share of ``episodes``, fixed in advance (see the module docstring)."""
    return [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]


def evaluation_seeds(seed: int, num_envs: int) -> tuple[int, int, int]:
    """The envs', the agent's and the random policy's seeds of evaluation ``seed``."""
    env_seed, agent_seed, random_seed = (
        int(s) % (MAX_SEED - num_envs)
        for s in np.random.SeedSequence(seed, spawn_key=(EVALUATION_STREAM,)).generate_state(3)
    )
    return env_seed, agent_seed, random_seed


def play_agent(
    agent: Agent, env_spec: EnvSpec, quotas: list[int], seed: int, *, greedy: bool = False, bar: tqdm | None = None
) -> list[Episode]:
    """The agent's first ``quotas[i]`` episodes in env i, on the levels evaluation ``seed`` picks.

    Its actions are drawn from a generator seeded from ``seed`` as well, so two agents played
    with one seed meet the same levels and the same random numbers (an edited agent differs from
    the original only where its policy does)."""
    num_envs = len(quotas)
    env_seed, agent_seed, _ = evaluation_seeds(seed, num_envs)
    generator = torch.Generator().manual_seed(agent_seed)
    state = agent.initial_state(num_envs)  # a recurrent agent's, carried; (num_envs, 0) otherwise

    @torch.inference_mode()
    def agent_policy(obs: np.ndarray, first: np.ndarray) -> np.ndarray:
        nonlocal state
        state = agent.reset_state(state, first)  # zeros where an episode starts
        if greedy:
            out = agent(obs, state)
            if out.state is not None:
                state = out.state.float().cpu().numpy()
            return out.logits.argmax(-1).cpu().numpy()
        acted = agent.act(obs, generator, state)
        state = acted.state
        return acted.actions

    with open_env(agent, env_spec, num_envs, env_seed) as env:
        return _play(env, agent_policy, quotas, bar if bar is not None else tqdm(disable=True))


def held_out(spec: EnvSpec | None) -> tuple[EnvSpec, str]:
    """The env to evaluate an agent trained on ``spec`` in, and a sentence saying which levels."""
    if spec is None:
        raise UserError("this agent records no environment; pass env_spec to evaluate it")
    if isinstance(spec, ProcgenSpec) and spec.num_levels > 0:
        first, last = spec.start_level, spec.start_level + spec.num_levels - 1
        unseen = replace(spec, start_level=spec.start_level + spec.num_levels, num_levels=0)
        # Procgen draws unlimited levels from all 2**31 seeds (it ignores start_level then), so a
        # training level recurs with probability num_levels / 2**31 per episode: negligible.
        return unseen, (f"held out: trained on levels {first}..{last}, evaluated on unlimited levels (num_levels=0)")
    if isinstance(spec, ProcgenSpec):
        return spec, "held out: trained on unlimited levels, evaluated on a separate seed stream"
    return spec, "the training environment on a separate seed stream"


def _play(env: Any, policy: Policy, quotas: list[int], bar: tqdm) -> list[Episode]:
    """The first ``quotas[i]`` episodes that end in env i, for every i."""
    left = np.array(quotas)
    played: list[Episode] = []
    step = env.reset()
    while left.any():
        step = env.step(policy(step.obs, step.first))
        for episode in step.episodes:
            if left[episode.env_index] > 0:
                left[episode.env_index] -= 1
                played.append(episode)
                bar.update()
    return played


def _summary(episodes: list[Episode]) -> tuple[float, float, float | None]:
    returns = np.array([e.total_reward for e in episodes])
    flags = [e.level_complete for e in episodes if e.level_complete is not None]
    completion = float(np.mean(flags)) if flags else None
    return float(returns.mean()), float(returns.std()), completion


def format_table(result: EvaluationResult) -> str:
    """A few aligned lines: agent against random policy."""

    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    rows = [
        ("", "agent", "random"),
        ("episodes", str(result.episodes), str(result.episodes)),
        ("mean return", f"{result.mean_return:.2f}", f"{result.random_mean_return:.2f}"),
        ("std return", f"{result.std_return:.2f}", f"{result.random_std_return:.2f}"),
        ("level completion", rate(result.level_completion_rate), rate(result.random_level_completion_rate)),
    ]
    acting = "greedy" if result.greedy else "sampled"
    lines = [f"{result.env}: {result.levels}; {acting} actions, {result.seconds:.1f} s"]
    lines += [f"{name:<18}{a:>10}{b:>10}" for name, a, b in rows]
    return "\n".join(lines)
