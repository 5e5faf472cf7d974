"""Environment specifications: small frozen values that say how to rebuild an environment.

A spec is stored in every checkpoint (as a plain dict), so an agent always knows the
environment it was trained on. ``parse_env_id`` turns what a user types into a spec.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..errors import UnknownEnvError

PROCGEN_GAMES: tuple[str, ...] = (
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
)


@dataclass(frozen=True)
class ProcgenSpec:
    """A Procgen game (via ``procgen-mirror``)."""

    family: ClassVar[str] = "procgen"
    game: str = "coinrun"
    distribution_mode: Literal["easy", "hard", "extreme", "memory", "exploration"] = "hard"
    num_levels: int = 0
    """Number of distinct levels; 0 means unlimited."""
    start_level: int = 0
    full_res_frames: bool = False
    """Display frames at 512x512 (about 50x slower) instead of the 64x64 observation."""

    @property
    def id(self) -> str:
        return f"procgen:{self.game}"


ATARI_OBSERVATIONS = ("deepmind", "greydanus")


@dataclass(frozen=True)
class AtariSpec:
    """An Atari game via Gymnasium ALE v5, with DeepMind preprocessing (84x84 grey, stacked) or
    Greydanus et al.'s (80x80, one frame)."""

    family: ClassVar[str] = "atari"
    game: str = "Breakout"
    frame_skip: int = 4
    frame_stack: int = 4
    sticky_action_prob: float = 0.25
    """``repeat_action_probability``; 0.25 is the ALE v5 default, 0 gives classic v4 behaviour."""
    noop_max: int = 30
    screen_size: int = 84
    full_action_space: bool = False
    observation: str = "deepmind"
    """``deepmind``: grey, max-pooled over skipped frames, resized to ``screen_size``, stacked.
    ``greydanus`` (seed 001's A3C LSTM): the screen after each skip, rows 35:195, the mean of R, G
    and B, resized to ``screen_size`` (80) bilinearly, stacked ``frame_stack`` (1) times; no no-ops.
    A person is then shown the same rows in colour (160x160), so maps line up with the frame."""

    @property
    def id(self) -> str:
        return f"ALE/{self.game}-v5"


@dataclass(frozen=True)
class GymnasiumSpec:
    """Any registered Gymnasium environment whose observations are images (H, W, C) uint8."""

    family: ClassVar[str] = "gymnasium"
    env_id: str = ""
    make_kwargs: tuple[tuple[str, Any], ...] = ()
    """Extra ``gymnasium.make`` keyword arguments, as sorted pairs so the spec stays hashable."""

    @property
    def id(self) -> str:
        return self.env_id


MARIO_ACTION_SETS: dict[str, str] = {
    "right_only": "RIGHT_ONLY",
    "simple": "SIMPLE_MOVEMENT",
    "complex": "COMPLEX_MOVEMENT",
}
"""Our names for gym-super-mario-bros' action sets (5, 7 and 12 button combinations)."""
MARIO_ACTION_COUNTS: dict[int, str] = {5: "right_only", 7: "simple", 12: "complex"}
_MARIO_ID = re.compile(r"^SuperMarioBros(?P<lost>2)?(?:-(?P<world>[1-8])-(?P<stage>[1-4]))?-v(?P<version>[0-3])$")


@dataclass(frozen=True)
class MarioSpec:
    """Super Mario Bros (gym-super-mario-bros, the ``mario`` extra), preprocessed like Atari."""

    family: ClassVar[str] = "mario"
    world: int = 1
    """World 1-8; 0 plays the whole game from 1-1 (an episode ends when the lives run out)."""
    stage: int = 1
    """Stage 1-4 of the world; with a world, an episode ends at the flag or at a death."""
    version: int = 0
    """ROM: 0 vanilla, 1 downsampled, 2 pixel, 3 rectangle (as the package's -vN ids)."""
    lost_levels: bool = False
    """Super Mario Bros 2 (The Lost Levels) instead."""
    action_set: str = "simple"
    """right_only (5 actions), simple (7) or complex (12): gym-super-mario-bros' button sets."""
    frame_skip: int = 4
    frame_stack: int = 4
    screen_size: int = 84

    @property
    def id(self) -> str:
        name = "SuperMarioBros2" if self.lost_levels else "SuperMarioBros"
        level = f"-{self.world}-{self.stage}" if self.world else ""
        return f"{name}{level}-v{self.version}"


EnvSpec = ProcgenSpec | AtariSpec | GymnasiumSpec | MarioSpec
_FAMILIES: dict[str, type] = {cls.family: cls for cls in (ProcgenSpec, AtariSpec, GymnasiumSpec, MarioSpec)}


def spec_to_dict(spec: EnvSpec) -> dict[str, Any]:
    """A JSON-ready dict, with the family, for checkpoint metadata."""
    data = dataclasses.asdict(spec)
    if isinstance(spec, GymnasiumSpec):
        data["make_kwargs"] = dict(spec.make_kwargs)
    return {"family": spec.family, **data}


def spec_from_dict(data: dict[str, Any]) -> EnvSpec:
    """Inverse of :func:`spec_to_dict`; unknown keys are an error, not silently dropped."""
    data = dict(data)
    family = data.pop("family", None)
    cls = _FAMILIES.get(family)
    if cls is None:
        raise UnknownEnvError(f"unknown environment family {family!r}; known: {sorted(_FAMILIES)}")
    if cls is GymnasiumSpec and "make_kwargs" in data:
        data["make_kwargs"] = tuple(sorted(dict(data["make_kwargs"]).items()))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UnknownEnvError(f"unknown {family} environment options {unknown}; known: {sorted(names)}")
    return cls(**data)


def _atari_game(name: str) -> str | None:
    """'ALE/Breakout-v5', 'atari:Breakout', 'BreakoutNoFrameskip-v4' -> 'Breakout' if ALE has it."""
    for prefix in ("ALE/", "atari:"):
        name = name.removeprefix(prefix)
    for suffix in ("NoFrameskip-v4", "-v5", "-v4", "-v0"):
        name = name.removesuffix(suffix)
    known = {game.lower(): game for game in atari_games()}
    return known.get(name.lower())


def atari_games() -> tuple[str, ...]:
    """CamelCase names of every ALE v5 game Gymnasium knows about."""
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    games = []
    for env_id in gymnasium.registry:
        if env_id.startswith("ALE/") and env_id.endswith("-v5"):
            games.append(env_id[len("ALE/") : -len("-v5")])
    return tuple(sorted(games))


def parse_env_id(name: str, **options: Any) -> EnvSpec:
    """Turn a user's environment name into a spec.

    Accepted: a Procgen game (``coinrun`` or ``procgen:coinrun``); an Atari game
    (``ALE/Breakout-v5``, ``atari:Breakout``, ``BreakoutNoFrameskip-v4``); Super Mario Bros
    (``SuperMarioBros-1-1-v0``, ``SuperMarioBros-v0``, ``SuperMarioBros2-1-1-v0``); or any registered
    Gymnasium id with image observations. ``options`` are the spec's fields
    (e.g. ``distribution_mode="easy"``). Unknown names fail with the closest matches.
    """
    bare = name.removeprefix("procgen:")
    if bare in PROCGEN_GAMES:
        return _build(ProcgenSpec, options, game=bare)
    mario = _MARIO_ID.match(name)
    if mario is not None:
        level = (
            {"world": int(mario["world"]), "stage": int(mario["stage"])} if mario["world"] else {"world": 0, "stage": 0}
        )
        return _build(MarioSpec, options, version=int(mario["version"]), lost_levels=bool(mario["lost"]), **level)
    game = _atari_game(name)
    if game is not None:
        return _build(AtariSpec, options, game=game)
    import gymnasium

    if not name.startswith(("procgen:", "atari:")) and name in gymnasium.registry:
        kwargs = tuple(sorted(options.pop("make_kwargs", {}).items()))
        return _build(GymnasiumSpec, options, env_id=name, make_kwargs=kwargs)
    marios = [f"SuperMarioBros-{w}-{s}-v0" for w in range(1, 9) for s in range(1, 5)]
    candidates = list(
        dict.fromkeys(
            [*PROCGEN_GAMES, *(f"ALE/{g}-v5" for g in atari_games()), "SuperMarioBros-v0", *marios, *gymnasium.registry]
        )
    )
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    if not close:  # case-insensitive second try, e.g. 'breakout' -> 'ALE/Breakout-v5'
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), lowered, n=5, cutoff=0.5)]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownEnvError(f"unknown environment {name!r}{hint}")


def _build(cls: type[EnvSpec], options: dict[str, Any], **fixed: Any) -> EnvSpec:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise UnknownEnvError(
            f"option(s) {unknown} do not apply to {cls.family} environments; valid: {sorted(names - set(fixed))}"
        )
    return cls(**fixed, **options)
