"""Gymnasium environments with image observations, vectorised as a plain list.

Gymnasium's own vector envs reset on the *next* step and report final observations in
``info``; our :class:`VecEnv` contract is gym3's same-step autoreset. Stepping a list of envs in
a loop is simple, deterministic and fast enough for interpretability work (no subprocesses to
start or to leak), so :class:`_ListVecEnv` does exactly that and Atari reuses it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import UnknownEnvError, UserError
from .base import EnvStep, EpisodeTracker, VecEnv
from .spec import EnvSpec, GymnasiumSpec

if TYPE_CHECKING:
    import gymnasium

MAX_SEED = 2**31 - 1  # Procgen's C++ seeds are int32; use one bound for every family


def check_vec_args(num_envs: int, seed: int) -> None:
    """Reject counts and seeds the backends would fail on with an assertion or a crash."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise UserError(f"num_envs must be a positive integer, got {num_envs!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed must be an integer, got {seed!r}")
    if not 0 <= seed <= MAX_SEED - num_envs:
        raise UserError(f"seed must be between 0 and {MAX_SEED - num_envs}, got {seed}")


def quiet_ale() -> None:
    """Stop ALE from printing its banner to stderr (C++ output that Python cannot redirect)."""
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)


def make_gymnasium_env(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` with its failures (unknown id, bad kwargs, missing extras) as one line."""
    import gymnasium

    from . import testing

    testing.register()
    try:
        entry_point = gymnasium.spec(env_id).entry_point
        if isinstance(entry_point, str) and entry_point.startswith("ale_py"):
            quiet_ale()
        return gymnasium.make(env_id, **kwargs)
    except gymnasium.error.UnregisteredEnv as exc:
        raise UnknownEnvError(f"unknown Gymnasium environment {env_id!r}: {_one_line(exc)}") from None
    except (gymnasium.error.Error, ImportError, TypeError, ValueError) as exc:
        raise UserError(f"could not create {env_id!r}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _ListVecEnv(VecEnv):
    """Same-step autoreset over a list of Gymnasium envs, with episode bookkeeping.

    Subclasses say how to turn one env's observation into (H, W, C) uint8 and what frame a
    person should see; everything about resets, seeding and episode records lives here once.
    Env ``i`` is seeded with ``seed + i`` on the first :meth:`reset`; later resets continue each
    env's own random stream, so a run is reproducible from the seed alone.
    """

    def __init__(self, spec: EnvSpec, factory: Callable[[], gymnasium.Env], num_envs: int, seed: int):
        check_vec_args(num_envs, seed)
        self.spec = spec
        self.num_envs = int(num_envs)
        self._seed = int(seed)
        self._envs: list[gymnasium.Env] = []
        try:  # check the first env before building the rest; close whatever was built on failure
            self._envs.append(factory())
            self._validate(self._envs[0])
            self.action_names = self._action_names(self._envs[0])
            self.observation_shape, self.frame_shape = self._shapes(self._envs[0])
            while len(self._envs) < self.num_envs:
                self._envs.append(factory())
        except BaseException:
            self.close()
            raise
        self._seeded = False
        self._needs_reset = True
        self._episodes = EpisodeTracker(self.num_envs)

    # --- what subclasses specialise -------------------------------------------------------

    def _validate(self, env: gymnasium.Env) -> None:
        """Raise a :class:`UserError` if this env cannot be used (checked once, on env 0)."""

    @abstractmethod
    def _observation(self, obs: Any) -> np.ndarray:
        """One env's raw observation as (H, W, C) uint8."""

    @abstractmethod
    def _frame(self, env: gymnasium.Env, obs: np.ndarray) -> np.ndarray:
        """What a person sees after the step, given the converted observation."""

    @abstractmethod
    def _shapes(self, env: gymnasium.Env) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(observation_shape, frame_shape) without stepping the env."""

    def _level_complete(self, info: dict[str, Any]) -> bool | None:
        """Whether the episode that just ended was won, for games that say so; None otherwise."""
        return None

    def _action_names(self, env: gymnasium.Env) -> tuple[str, ...]:
        meanings = getattr(env.unwrapped, "get_action_meanings", None)
        if callable(meanings):
            return tuple(str(name) for name in meanings())
        return tuple(str(i) for i in range(int(cast("gymnasium.spaces.Discrete", env.action_space).n)))

    # --- the VecEnv contract --------------------------------------------------------------

    def reset(self) -> EnvStep:
        obs, frames = [], []
        for i, env in enumerate(self._envs):
            raw, _ = env.reset(seed=None if self._seeded else self._seed + i)
            obs.append(self._observation(raw))
            frames.append(self._frame(env, obs[-1]))
        self._seeded = True
        self._needs_reset = False
        self._episodes.reset()
        n = self.num_envs
        return EnvStep(
            obs=np.stack(obs),
            frame=np.stack(frames),
            reward=np.zeros(n, dtype=np.float32),
            first=np.ones(n, dtype=bool),
        )

    def step(self, actions: np.ndarray | Sequence[int]) -> EnvStep:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {actions.shape}")
        raws, infos, reward = [], [], np.zeros(self.num_envs, dtype=np.float32)
        first = np.zeros(self.num_envs, dtype=bool)
        for i, (env, action) in enumerate(zip(self._envs, actions, strict=True)):
            raw, reward[i], terminated, truncated, info = env.step(int(action))
            raws.append(raw)
            infos.append(info)
            first[i] = terminated or truncated
        self._episodes.add(reward)
        obs, frames, episodes = [], [], []
        for i, (env, raw) in enumerate(zip(self._envs, raws, strict=True)):
            if first[i]:  # same-step autoreset: the next episode's first observation
                episodes.append(self._episodes.end(i, self._level_complete(infos[i])))
                raw, _ = env.reset()
            obs.append(self._observation(raw))
            frames.append(self._frame(env, obs[-1]))
        return EnvStep(np.stack(obs), np.stack(frames), reward, first, tuple(episodes))

    def close(self) -> None:
        for env in getattr(self, "_envs", ()):
            env.close()
        self._envs = []


class GymnasiumVecEnv(_ListVecEnv):
    """Any registered Gymnasium env with uint8 image observations and discrete actions.

    Grey (H, W) observations get a channel axis. The display frame is the observation itself
    (grey repeated to RGB), so no ``render_mode`` is needed.
    """

    def __init__(self, spec: GymnasiumSpec, num_envs: int = 1, seed: int = 0):
        kwargs: Mapping[str, Any] = dict(spec.make_kwargs)
        super().__init__(spec, lambda: make_gymnasium_env(spec.env_id, **kwargs), num_envs, seed)

    def _validate(self, env: gymnasium.Env) -> None:
        import gymnasium

        space, name = env.observation_space, self.spec.id
        if not isinstance(space, gymnasium.spaces.Box):
            raise UserError(f"{name} has {type(space).__name__} observations, not images (H, W, C) uint8")
        if space.dtype != np.uint8 or len(space.shape) not in (2, 3):
            shape = f"{space.shape} {space.dtype}"
            raise UserError(f"{name} has observations of shape {shape}, not images (H, W, C) uint8")
        if not isinstance(env.action_space, gymnasium.spaces.Discrete):
            raise UserError(f"{name} has {env.action_space} actions; only Discrete action spaces are supported")

    def _shapes(self, env: gymnasium.Env) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        shape = tuple(cast("tuple[int, ...]", env.observation_space.shape))  # a Box of 2 or 3 dims: see _validate
        obs_shape = cast("tuple[int, int, int]", (*shape, 1) if len(shape) == 2 else shape)
        return obs_shape, (obs_shape[0], obs_shape[1], 3)

    def _observation(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.uint8)
        return obs[..., None] if obs.ndim == 2 else obs

    def _frame(self, env: gymnasium.Env, obs: np.ndarray) -> np.ndarray:
        channels = obs.shape[-1]
        if channels == 3:
            return obs
        if channels % 3 == 0:  # stacked RGB frames: show the newest
            return obs[..., -3:]
        return np.repeat(obs[..., -1:], 3, axis=-1)  # grey, or a grey stack: newest frame
