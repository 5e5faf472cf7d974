"""Vectorised environments: Procgen, Atari, Super Mario Bros and any Gymnasium env with image observations.

Everything downstream (rollouts, attribution, the interface) talks to :class:`VecEnv` only,
and builds it with :func:`make_vec_env` from a name or a spec stored in a checkpoint. The
backends are imported lazily so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from .actions import action_groups
from .base import EnvStep, Episode, VecEnv
from .spec import (
    PROCGEN_GAMES,
    AtariSpec,
    EnvSpec,
    GymnasiumSpec,
    MarioSpec,
    ProcgenSpec,
    parse_env_id,
    spec_from_dict,
    spec_to_dict,
)

__all__ = [
    "PROCGEN_GAMES",
    "AtariSpec",
    "EnvSpec",
    "EnvStep",
    "Episode",
    "GymnasiumSpec",
    "MarioSpec",
    "ProcgenSpec",
    "VecEnv",
    "action_groups",
    "make_vec_env",
    "parse_env_id",
    "spec_from_dict",
    "spec_to_dict",
]


def make_vec_env(spec_or_id: EnvSpec | str, num_envs: int = 1, seed: int = 0, **options: Any) -> VecEnv:
    """Build ``num_envs`` seeded copies of an environment.

    ``spec_or_id`` is a spec (e.g. from a checkpoint) or a name for :func:`parse_env_id`, which
    also receives ``options`` (e.g. ``distribution_mode="easy"``). Options only apply to names:
    a spec already says everything.
    """
    if isinstance(spec_or_id, str):
        from .testing import register

        register()  # so the tiny test env's id resolves like any other
        spec = parse_env_id(spec_or_id, **options)
    elif options:
        raise TypeError(f"options {sorted(options)} only apply to an environment name, not a spec")
    else:
        spec = spec_or_id
    if isinstance(spec, ProcgenSpec):
        from .procgen import ProcgenVecEnv

        return ProcgenVecEnv(spec, num_envs, seed)
    if isinstance(spec, AtariSpec):
        from .atari import AtariVecEnv

        return AtariVecEnv(spec, num_envs, seed)
    if isinstance(spec, MarioSpec):
        from .mario import MarioVecEnv

        return MarioVecEnv(spec, num_envs, seed)
    if isinstance(spec, GymnasiumSpec):
        from .gymnasium_env import GymnasiumVecEnv

        return GymnasiumVecEnv(spec, num_envs, seed)
    raise TypeError(f"not an environment spec: {spec_or_id!r}")
