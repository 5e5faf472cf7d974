"""Super Mario Bros through ``gym-super-mario-bros`` and its NES emulator ``nes-py``.

Those packages are written against the old ``gym`` API, and no Gymnasium release of them is on
PyPI, so :class:`_NesGame` adapts the emulator to a ``gymnasium.Env`` (five-tuple steps, no gym
wrappers) that also does the per-step preprocessing seed 000 used: each action held for
``frame_skip`` emulator frames (rewards summed, the last two screens max-pooled), grey,
``screen_size`` square; Gymnasium's wrapper stacks ``frame_stack`` of them. Only the screens that
are used are copied out of the emulator: a copy costs a third of an emulator frame. A person is
shown the 240x256 colour screen instead. The emulator is deterministic: seeds only matter to the
agent's sampling.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import UserError
from .gymnasium_env import _ListVecEnv
from .spec import MARIO_ACTION_SETS, MarioSpec

if TYPE_CHECKING:
    import gymnasium

# The controller's buttons as the game uses them: A jumps, B runs (and throws fireballs).
BUTTON_NAMES = {"A": "JUMP", "B": "RUN", "NOOP": "NOOP"}
# The bit of each button in the byte nes-py passes to the emulator's first controller.
BUTTON_BITS = {
    "right": 0x80,
    "left": 0x40,
    "down": 0x20,
    "up": 0x10,
    "start": 0x08,
    "select": 0x04,
    "B": 0x02,
    "A": 0x01,
}
ROM_MODES = ("vanilla", "downsample", "pixel", "rectangle")


def action_set(name: str) -> list[list[str]]:
    """The button combinations of an action set, as gym-super-mario-bros lists them."""
    from gym_super_mario_bros import actions

    return cast("list[list[str]]", getattr(actions, MARIO_ACTION_SETS[name]))


def action_name(buttons: list[str]) -> str:
    """``['right', 'A', 'B']`` -> ``RIGHT+JUMP+RUN``: arrows first, so direction groups find them."""
    return "+".join(BUTTON_NAMES.get(button, button.upper()) for button in buttons)


def _import_game() -> type:
    """The emulator's env class; gym prints a deprecation notice on import, which we keep quiet."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            from gym_super_mario_bros import SuperMarioBrosEnv
    except ImportError as exc:
        raise UserError(
            f"Super Mario Bros needs the mario extra: pip install 'understanding-rl-vision[mario]' ({exc})"
        ) from None
    return cast("type", SuperMarioBrosEnv)


def _make_game(spec: MarioSpec) -> gymnasium.Env:
    import gymnasium

    game_class = _import_game()

    class _NesGame(gymnasium.Env):
        """One emulator as a Gymnasium env with discrete actions from ``spec.action_set``."""

        metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium's own idiom)

        def __init__(self) -> None:
            target = (spec.world, spec.stage) if spec.world else None
            self.game = game_class(rom_mode=ROM_MODES[spec.version], lost_levels=spec.lost_levels, target=target)
            buttons = action_set(spec.action_set)
            self.bytes = [sum(BUTTON_BITS[b] for b in combo if b != "NOOP") for combo in buttons]
            self.action_names = tuple(action_name(combo) for combo in buttons)
            self.action_space = gymnasium.spaces.Discrete(len(buttons))
            size = spec.screen_size
            self.observation_space = gymnasium.spaces.Box(0, 255, (size, size), np.uint8)
            self.render_mode = "rgb_array"

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
            super().reset(seed=seed)  # nes-py's own seeding fails on gym 0.26's generator; nothing needs it
            return self._grey(self.game.reset()), {}

        def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
            total, done, info = 0.0, False, {}
            last: list[np.ndarray] = []
            for repeat in range(spec.frame_skip):
                screen, reward, done, info = self.game.step(self.bytes[int(action)])
                total += float(reward)
                if repeat >= spec.frame_skip - 2 or done:
                    last = [*last[-1:], screen.copy()]
                if done:
                    break
            return self._grey(np.maximum.reduce(last)), total, bool(done), False, dict(info)

        def _grey(self, screen: np.ndarray) -> np.ndarray:
            import cv2

            grey = cv2.cvtColor(np.ascontiguousarray(screen), cv2.COLOR_RGB2GRAY)
            return cv2.resize(grey, (spec.screen_size, spec.screen_size), interpolation=cv2.INTER_AREA)

        def render(self) -> np.ndarray:
            return self.game.screen.copy()

        def get_action_meanings(self) -> tuple[str, ...]:
            return self.action_names

        def close(self) -> None:
            if self.game._env is not None:  # nes-py raises on a second close
                self.game.close()

    return _NesGame()


def _make_mario(spec: MarioSpec) -> gymnasium.Env:
    from gymnasium.wrappers import FrameStackObservation

    return FrameStackObservation(_make_game(spec), stack_size=spec.frame_stack)


def _check_spec(spec: MarioSpec) -> None:
    problems = [
        f"{name} must be >= 1, got {value}"
        for name, value in (
            ("frame_skip", spec.frame_skip),
            ("frame_stack", spec.frame_stack),
            ("screen_size", spec.screen_size),
        )
        if value < 1
    ]
    if spec.action_set not in MARIO_ACTION_SETS:
        problems.append(f"action_set must be one of {', '.join(MARIO_ACTION_SETS)}, got {spec.action_set!r}")
    # gym-super-mario-bros has no pixel or rectangle ROM of The Lost Levels, and fails on its worlds 5 and up.
    versions, worlds = (2, 4) if spec.lost_levels else (len(ROM_MODES), 8)
    game = "The Lost Levels" if spec.lost_levels else "Super Mario Bros"
    if not 0 <= spec.version < versions:
        problems.append(f"{game} has versions v0-v{versions - 1}, got v{spec.version}")
    if not 0 <= spec.world <= worlds:
        problems.append(f"{game} has worlds 1-{worlds} (0 for the whole game), got {spec.world}")
    if spec.world and not 1 <= spec.stage <= 4:
        problems.append(f"stage must be 1-4, got {spec.stage}")
    if problems:
        raise UserError(f"invalid Super Mario Bros options for {spec.id}: {'; '.join(problems)}")


class MarioVecEnv(_ListVecEnv):
    """``num_envs`` games; observations (84, 84, frame_stack) uint8, newest frame last."""

    def __init__(self, spec: MarioSpec, num_envs: int = 1, seed: int = 0):
        _check_spec(spec)
        super().__init__(spec, lambda: _make_mario(spec), num_envs, seed)

    def _shapes(self, env: gymnasium.Env) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        stack, height, width = cast("tuple[int, int, int]", env.observation_space.shape)
        return (height, width, stack), (240, 256, 3)

    def _observation(self, obs: Any) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.asarray(obs), 0, -1))

    def _frame(self, env: gymnasium.Env, obs: np.ndarray) -> np.ndarray:
        return cast("np.ndarray", env.unwrapped.render())

    def _level_complete(self, info: dict[str, Any]) -> bool | None:
        return bool(info.get("flag_get", False))
