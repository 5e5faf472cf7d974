"""Procgen games through their native gym3 interface (``procgen-mirror``).

gym3 already has same-step autoreset, so this is a thin adapter: it names the actions, picks
the display frame, and turns episode ends into :class:`Episode` records.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import warnings
from typing import Any, cast

import numpy as np

from ..errors import UnknownEnvError, UserError
from .base import EnvStep, Episode, EpisodeTracker, VecEnv
from .gymnasium_env import check_vec_args
from .spec import PROCGEN_GAMES, ProcgenSpec

# Modes beyond easy/hard exist only for some games; anything else aborts the whole process in
# Procgen's C++ (an fassert), so check here first. Lists from procgen's game.cpp and env.py.
_MODE_GAMES: dict[str, tuple[str, ...]] = {
    "easy": PROCGEN_GAMES,
    "hard": PROCGEN_GAMES,
    "extreme": ("chaser", "dodgeball", "leaper", "starpilot"),
    "memory": ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner"),
    "exploration": (
        "caveflyer",
        "climber",
        "coinrun",
        "heist",
        "jumper",
        "leaper",
        "maze",
        "ninja",
    ),
}
FULL_RES = 512


_IMPORT_LOCK = threading.Lock()


def _import_procgen() -> Any:
    """Import procgen without the deprecated ``gym`` package's stderr notice and warnings.

    Once, under a lock: swapping ``sys.stderr`` is process-wide, and two threads swapping it at
    once can leave the swapped-in buffer in place for good."""
    with _IMPORT_LOCK:
        if "procgen" in sys.modules:
            return sys.modules["procgen"]
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import procgen
    return procgen


def _check_spec(spec: ProcgenSpec) -> None:
    if spec.game not in PROCGEN_GAMES:
        raise UnknownEnvError(f"unknown Procgen game {spec.game!r}; known: {', '.join(PROCGEN_GAMES)}")
    mode = spec.distribution_mode
    if mode not in _MODE_GAMES:
        raise UserError(f"unknown Procgen distribution_mode {mode!r}; known: {', '.join(_MODE_GAMES)}")
    if spec.game not in _MODE_GAMES[mode]:
        raise UserError(f"{spec.game} has no {mode!r} mode; games that do: {', '.join(_MODE_GAMES[mode])}")
    if mode == "exploration" and (spec.num_levels, spec.start_level) != (0, 0):
        raise UserError("exploration mode fixes the level; leave num_levels and start_level at 0")
    if spec.num_levels < 0 or spec.start_level < 0:
        raise UserError("num_levels and start_level must be >= 0")


def action_name(combo: tuple[str, ...] | list[str]) -> str:
    """('LEFT', 'UP') -> 'LEFT+UP'; () -> 'NOOP'."""
    return "+".join(combo) if combo else "NOOP"


class ProcgenVecEnv(VecEnv):
    """``num_envs`` copies of a Procgen game; observations (64, 64, 3) uint8.

    Frames are the observations themselves unless ``spec.full_res_frames``, which renders
    512x512 frames (much slower). The first :meth:`reset` uses ``seed`` as Procgen's
    ``rand_seed``; later resets rebuild the env with a seed derived from it, so every reset
    starts new but reproducible levels.
    """

    spec: ProcgenSpec

    def __init__(self, spec: ProcgenSpec, num_envs: int = 1, seed: int = 0):
        _check_spec(spec)
        check_vec_args(num_envs, seed)
        self.spec = spec
        self.num_envs = int(num_envs)
        self._seed = int(seed)
        self._procgen = _import_procgen()
        self._resets = 0
        self._env = self._open(self._seed)
        self.action_names = tuple(action_name(combo) for combo in self._env.get_combos())
        self.observation_shape = tuple(self._env.ob_space["rgb"].shape)
        size = FULL_RES if spec.full_res_frames else self.observation_shape[0]
        self.frame_shape = (size, size, 3)
        self._episodes = EpisodeTracker(self.num_envs)
        self._stepped = False
        self._needs_reset = True

    def _open(self, rand_seed: int) -> Any:
        spec = self.spec
        levels = (
            {}
            if spec.distribution_mode == "exploration"
            else {
                "num_levels": spec.num_levels,
                "start_level": spec.start_level,
            }
        )
        return self._procgen.ProcgenGym3Env(
            num=self.num_envs,
            env_name=spec.game,
            distribution_mode=spec.distribution_mode,
            rand_seed=rand_seed,
            render_mode="rgb_array" if spec.full_res_frames else None,
            **levels,
        )

    def reset(self) -> EnvStep:
        if self._stepped:  # gym3 has no reset: start a new env on the next derived seed
            self._resets += 1
            derived = np.random.SeedSequence([self._seed, self._resets]).generate_state(1)[0]
            self._env.close()
            self._env = self._open(int(derived) & 0x7FFFFFFF)
            self._stepped = False
        self._needs_reset = False
        self._episodes.reset()
        _, ob, _ = self._env.observe()
        obs = ob["rgb"]
        frame = self._full_res(self._env.get_info()) if self.spec.full_res_frames else obs
        n = self.num_envs
        return EnvStep(obs, frame, np.zeros(n, dtype=np.float32), np.ones(n, dtype=bool))

    def step(self, actions: np.ndarray | list[int]) -> EnvStep:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {actions.shape}")
        self._env.act(actions.astype(np.int32))
        self._stepped = True
        rew, ob, first = self._env.observe()
        reward = np.asarray(rew, dtype=np.float32)
        first = np.asarray(first, dtype=bool)
        obs = ob["rgb"]
        self._episodes.add(reward)
        need_info = self.spec.full_res_frames or bool(first.any())
        info = self._env.get_info() if need_info else None
        episodes: tuple[Episode, ...] = ()
        if info is not None and first.any():
            # The info at a new episode's first step describes the level that just ended.
            episodes = tuple(
                self._episodes.end(int(i), bool(info[i]["prev_level_complete"])) for i in np.flatnonzero(first)
            )
        # full_res_frames implies need_info, so info is the list here
        frame = self._full_res(cast("list[dict[str, Any]]", info)) if self.spec.full_res_frames else obs
        return EnvStep(obs, frame, reward, first, episodes)

    @staticmethod
    def _full_res(info: list[dict[str, Any]]) -> np.ndarray:
        return np.stack([item["rgb"] for item in info])

    def close(self) -> None:
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()
            self._env = None
