"""Collect what the interface shows and what NMF is fitted on.

Two products, both seeded and reproducible:

* :class:`Trajectories`: ``num_envs`` parallel trajectories of ``num_steps`` frames each, with
  the agent's actions, logits and values recorded as it acted.
* the observation set: observations sampled every ``obs_every`` steps from a separate batch of
  environments, used to fit NMF and to find dataset examples for feature visualisation.

Frames stay uint8 throughout, so 8 x 512 CoinRun frames take 8 x 512 x 64 x 64 x 3 = 50 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .agents.base import Agent
from .config import ObservationSetConfig, TrajectoryConfig
from .envs import VecEnv, make_vec_env
from .envs.spec import EnvSpec
from .errors import ObservationShapeError, UserError


@dataclass(frozen=True)
class Trajectories:
    """Arrays indexed (trajectory, step, ...). Step t's reward and done belong to action t."""

    observations: np.ndarray  # (E, T, H, W, C) uint8, what the agent saw
    frames: np.ndarray  # (E, T, h, w, 3) uint8, what a person sees
    actions: np.ndarray  # (E, T) int64
    rewards: np.ndarray  # (E, T) float32, reward for action t
    firsts: np.ndarray  # (E, T) bool, observation t starts an episode
    dones: np.ndarray  # (E, T) bool, action t ended the episode
    logits: np.ndarray  # (E, T, A) float32
    values: np.ndarray  # (E, T) float32
    last_values: np.ndarray  # (E,) float32, value of the observation after the last step
    states: np.ndarray | None = None
    """(E, T, S) float32: a recurrent agent's state entering step t (zeros where an episode starts);
    S = 0 for a feed-forward agent (None in products cached before states were recorded)."""
    ram: np.ndarray | None = None
    """(E, T, R) uint8: the console RAM at observation t, for games that expose it (Atari): where the
    report card reads the game's objects from (OCAtari); None for the others."""

    @property
    def num_envs(self) -> int:
        return self.actions.shape[0]

    @property
    def num_steps(self) -> int:
        return self.actions.shape[1]


OBS_PART_ENVS = 8
"""Environments per part of the observation set. Parts are separate jobs that MPI ranks share, so
their size is fixed: the same seed gives the same observations however many ranks run."""


def observation_parts(config: ObservationSetConfig) -> int:
    return -(-config.obs_num_envs // OBS_PART_ENVS)


def seeds_for(seed: int, count: int) -> list[int]:
    """Independent child seeds, so trajectories and the observation set never share a stream.

    Kept below 2**30 so ``seed + env_index`` stays inside Procgen's 31-bit seed range.
    """
    return [int(s.generate_state(1)[0] >> 2) for s in np.random.SeedSequence(seed).spawn(count)]


def open_env(agent: Agent, env_spec: EnvSpec | None, num_envs: int, seed: int) -> VecEnv:
    """Build the agent's environment and check the two fit together."""
    spec = env_spec if env_spec is not None else agent.env_spec
    if spec is None:
        raise UserError("this agent records no environment; name one (e.g. env='coinrun')")
    env = make_vec_env(spec, num_envs=num_envs, seed=seed)
    try:
        if tuple(env.observation_shape) != tuple(agent.observation_shape):
            raise ObservationShapeError(
                f"environment {spec.id} yields observations of shape {tuple(env.observation_shape)}, "
                f"but the agent expects {tuple(agent.observation_shape)}"
            )
        if env.num_actions != agent.num_actions:
            raise UserError(f"environment {spec.id} has {env.num_actions} actions, the agent {agent.num_actions}")
    except UserError:
        env.close()
        raise
    return env


def collect_trajectories(
    agent: Agent,
    config: TrajectoryConfig = TrajectoryConfig(),
    *,
    env_spec: EnvSpec | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Trajectories:
    """Run the agent (sampling from its policy) and record everything the interface needs."""
    env_seed, action_seed = seeds_for(seed, 4)[:2]
    generator = torch.Generator().manual_seed(action_seed)
    with open_env(agent, env_spec, config.num_envs, env_seed) as env:
        E, T = config.num_envs, config.num_steps
        observations = np.empty((E, T, *env.observation_shape), np.uint8)
        frames = np.empty((E, T, *env.frame_shape), np.uint8)
        actions = np.empty((E, T), np.int64)
        rewards = np.empty((E, T), np.float32)
        firsts = np.empty((E, T), bool)
        dones = np.empty((E, T), bool)
        logits = np.empty((E, T, agent.num_actions), np.float32)
        values = np.empty((E, T), np.float32)
        states = np.empty((E, T, agent.state_size), np.float32)

        step = env.reset()
        ram = env.ram()
        rams = None if ram is None else np.empty((E, T, ram.shape[-1]), np.uint8)
        state = agent.initial_state(E)
        for t in tqdm(range(T), desc="trajectories", unit="step", disable=not progress):
            if rams is not None:
                rams[:, t] = env.ram()
            observations[:, t] = step.obs
            frames[:, t] = step.frame
            firsts[:, t] = step.first
            states[:, t] = state = agent.reset_state(state, step.first)
            actions[:, t], logits[:, t], values[:, t], state = agent.act(step.obs, generator, state)
            step = env.step(actions[:, t])
            rewards[:, t] = step.reward
            dones[:, t] = step.first
        with torch.no_grad():  # only the value: the bootstrap for GAE's final step
            last_values = agent(step.obs, agent.reset_state(state, step.first)).value.float().cpu().numpy()

    return Trajectories(
        observations=observations,
        frames=frames,
        actions=actions,
        rewards=rewards,
        firsts=firsts,
        dones=dones,
        logits=logits,
        values=values,
        last_values=last_values,
        states=states,
        ram=rams,
    )


@dataclass(frozen=True)
class ObservationSet:
    """Observations kept from separate rollouts, with a recurrent agent's state entering each."""

    observations: np.ndarray  # (N, H, W, C) uint8
    states: np.ndarray  # (N, S) float32; S = 0 for a feed-forward agent


def collect_observation_set(
    agent: Agent,
    config: ObservationSetConfig = ObservationSetConfig(),
    *,
    env_spec: EnvSpec | None = None,
    seed: int = 0,
    progress: bool = True,
    part: int | None = None,
) -> ObservationSet:
    """Observations (num_envs * num_obs, H, W, C) uint8, one kept every ``obs_every`` steps, and
    the recurrent state the agent brought to each.

    A fresh stream of environments, separate from the trajectories, as in the original. The
    first observation is kept after ``obs_every`` steps, so reset frames are not over-represented.
    Ordered environment-major: index ``e * num_obs + k`` is environment e's k-th observation.
    With ``part``, only environments ``[8 part, 8 part + 8)`` (:data:`OBS_PART_ENVS`), each
    part with its own seeds; the parts concatenated in order are the set.
    """
    if part is None:
        parts = [
            collect_observation_set(agent, config, env_spec=env_spec, seed=seed, progress=progress, part=p)
            for p in range(observation_parts(config))
        ]
        return ObservationSet(
            np.concatenate([p.observations for p in parts]), np.concatenate([p.states for p in parts])
        )
    if not 0 <= part < observation_parts(config):
        raise ValueError(f"part {part} of an observation set with {observation_parts(config)} parts")
    count = min(OBS_PART_ENVS, config.obs_num_envs - part * OBS_PART_ENVS)
    env_seed, action_seed = seeds_for(seed, 4 + 2 * part)[2 + 2 * part :]
    generator = torch.Generator().manual_seed(action_seed)
    with open_env(agent, env_spec, count, env_seed) as env:
        kept = np.empty((count, config.num_obs, *env.observation_shape), np.uint8)
        kept_states = np.empty((count, config.num_obs, agent.state_size), np.float32)
        total = config.num_obs * config.obs_every
        step = env.reset()
        state = agent.initial_state(count)
        with tqdm(total=total, desc="observation set", unit="step", disable=not progress) as bar:
            for k in range(config.num_obs):
                for _ in range(config.obs_every):
                    acted = agent.act(step.obs, generator, agent.reset_state(state, step.first))
                    state = acted.state
                    step = env.step(acted.actions)
                    bar.update()
                kept[:, k] = step.obs
                kept_states[:, k] = state = agent.reset_state(state, step.first)
    return ObservationSet(kept.reshape(-1, *kept.shape[2:]), kept_states.reshape(count * config.num_obs, -1))
