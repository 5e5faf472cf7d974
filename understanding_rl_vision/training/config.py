"""The training configuration: one frozen dataclass, every field documented where declared.

The CLI turns each field into a flag of the same name (``update_epochs`` -> ``--update-epochs``)
with the field's docstring as help (:mod:`understanding_rl_vision.common.flags`), so the two never
drift apart.
"""

from __future__ import annotations

import inspect
import math
import typing
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import torch

from ..agents import ARCHITECTURES
from ..agents.attention import TRUNKS
from ..common.device import check_device_name
from ..envs import AtariSpec, EnvSpec, MarioSpec, ProcgenSpec, parse_env_id, testing
from ..envs.spec import ATARI_OBSERVATIONS
from ..errors import ConfigError

PROCGEN_OPTIONS = ("distribution_mode", "num_levels", "start_level")
ATARI_OPTIONS = ("observation", "frame_stack", "screen_size", "sticky_action_prob")
MARIO_OPTIONS = ("action_set",)
ATARI_FRAMES = {"deepmind": (4, 84), "greydanus": (1, 80)}
"""Each Atari observation's own (frame_stack, screen_size), used where those options are 0."""
CPU_CHUNK_SIZE = 256


@dataclass(frozen=True)
class PPOConfig:
    """Everything that defines a training run; stored in its checkpoint and its resume state.

    Defaults are the original's Procgen settings (baselines PPO2, Cobbe et al. 2020).
    """

    env: str = "coinrun"
    """Environment name: a Procgen game, an Atari game (ALE/Breakout-v5) or a Gymnasium id."""
    distribution_mode: str = "easy"
    """Procgen difficulty (easy, hard, ...); Procgen games only."""
    num_levels: int = 0
    """Procgen levels to train on, 0 for unlimited; Procgen games only."""
    start_level: int = 0
    """First Procgen level seed; training uses [start_level, start_level + num_levels)."""
    observation: str = "deepmind"
    """Atari frames: deepmind (84x84 grey, max-pooled over skips, 4 stacked) or greydanus (seed 001's
    80x80 crop of the playing field, one frame); Atari games only."""
    frame_stack: int = 0
    """Atari frames stacked per observation; 0: the observation's own (deepmind 4, greydanus 1)."""
    screen_size: int = 0
    """Atari frame height and width; 0: the observation's own (deepmind 84, greydanus 80)."""
    sticky_action_prob: float = 0.25
    """Atari sticky actions: the chance the previous action repeats (0.25 is ALE v5's, 0 classic)."""
    action_set: str = "simple"
    """Super Mario Bros buttons: right_only (5 actions), simple (7) or complex (12); Mario only."""
    architecture: str = "impala"
    """Network: impala (Procgen), nature (Atari), clear (the paper's interpretable variant) or lstm
    (seed 001's recurrent A3C network, any frame size; on Atari seed 001 used --observation greydanus)."""
    attention_trunk: str = "nature"
    """Convolutions under the attention of the attention and fls architectures: nature (Atari's
    84x84 frames) or impala (Procgen's 64x64, and small frames)."""
    attention_heads: int = 1
    """Attention masks of the attention architecture, whose masked features are summed (seed 002 used 2)."""
    num_envs: int = 64
    """Environments stepped in parallel."""
    num_steps: int = 256
    """Steps per environment per update; a batch is num_envs * num_steps."""
    total_steps: int = 25_000_000
    """Environment steps to train for, rounded up to whole updates."""
    learning_rate: float = 5e-4
    """Adam step size, constant as in the original."""
    adam_eps: float = 1e-5
    """Adam epsilon (baselines' value; PyTorch's 1e-8 is less stable here)."""
    gamma: float = 0.999
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: trades bias (0) against variance (1) in the advantages."""
    num_minibatches: int = 8
    """Minibatches per epoch; must divide the batch (for a recurrent architecture, num_envs: its
    minibatches are whole environments' sequences)."""
    update_epochs: int = 3
    """Passes over each batch."""
    clip_coef: float = 0.2
    """PPO ratio clip, also the most the value may move in one update."""
    clip_value_loss: bool = True
    """Clip the value loss around the old values, as baselines PPO2 does."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    normalize_rewards: bool = True
    """Divide rewards by a running std of discounted returns (baselines' VecNormalize(ob=False))."""
    reward_clip: float = 10.0
    """Clip scaled rewards to [-reward_clip, reward_clip]."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    attention_entropy_coef: float = 0.0
    """Weight of seed 002's attention penalty: adds this times the entropy of the attention maps to
    the loss, which sharpens them (attention architectures only: attention, fls)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this."""
    seed: int = 0
    """Seeds the weights, the environments and action sampling: equal seeds, equal CPU runs."""
    device: str = "cpu"
    """Torch device: cpu or cuda (cuda:N)."""
    bf16: bool = False
    """Forward and backward passes under bfloat16 autocast (fast on CPUs with AMX, and CUDA)."""
    chunk_size: int = 0
    """Samples per forward/backward pass; larger minibatches are processed in chunks whose
    gradients add up. 0: 256 on CPU (cache-sized passes there are about 1.7x faster), the
    whole minibatch on CUDA. A recurrent architecture's minibatch is always one pass."""
    save_every: int = 50
    """Updates between checkpoints; one is always written at the end."""

    def __post_init__(self) -> None:
        for name, kind in _field_types().items():
            value = getattr(self, name)
            bool_mismatch = isinstance(value, bool) != (kind is bool)  # True is an int too
            if bool_mismatch or not isinstance(value, (int, float) if kind is float else kind):
                raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")
        for name in (
            "attention_heads",
            "num_envs",
            "num_steps",
            "total_steps",
            "num_minibatches",
            "update_epochs",
            "save_every",
        ):
            _check(self, name, lambda v: v >= 1, "must be >= 1")
        for name in ("gamma", "gae_lambda"):
            _check(self, name, lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")
        for name in ("learning_rate", "adam_eps", "clip_coef", "reward_clip", "max_grad_norm"):
            _check(self, name, lambda v: v > 0 and math.isfinite(v), "must be > 0")
        for name in (
            "ent_coef",
            "attention_entropy_coef",
            "vf_coef",
            "num_levels",
            "start_level",
            "seed",
            "chunk_size",
        ):
            _check(self, name, lambda v: v >= 0 and math.isfinite(v), "must be >= 0")
        for name in ("frame_stack", "screen_size"):
            _check(self, name, lambda v: v >= 0, "must be >= 0 (0: the observation's own)")
        _check(self, "sticky_action_prob", lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")
        observations = ", ".join(ATARI_OBSERVATIONS)
        _check(self, "observation", lambda v: v in ATARI_OBSERVATIONS, f"must be one of {observations}")
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                f"num_minibatches ({self.num_minibatches}) must divide the batch "
                f"num_envs * num_steps = {self.batch_size}"
            )
        if self.architecture not in ARCHITECTURES:
            known = ", ".join(ARCHITECTURES)
            raise ConfigError(f"unknown architecture {self.architecture!r}; known: {known}")
        if self.recurrent and self.num_envs % self.num_minibatches:
            raise ConfigError(
                f"num_minibatches ({self.num_minibatches}) must divide num_envs ({self.num_envs}) for the "
                f"recurrent {self.architecture!r} architecture: each minibatch is whole environments' sequences"
            )
        attentive = getattr(ARCHITECTURES[self.architecture], "attention_layer", None) is not None
        if self.attention_trunk != "nature" and not attentive:
            raise ConfigError(f"attention_trunk is an option of the attention architectures, not {self.architecture!r}")
        _check(self, "attention_trunk", lambda v: v in TRUNKS, f"must be one of {', '.join(TRUNKS)}")
        if self.attention_heads != 1 and self.architecture != "attention":
            raise ConfigError(f"attention_heads is an option of the attention architecture, not {self.architecture!r}")
        if self.attention_entropy_coef and not attentive:
            raise ConfigError(
                f"attention_entropy_coef needs an attention architecture (attention, fls), not {self.architecture!r}"
            )
        check_device_name(self.device)  # availability is checked when training starts

    @property
    def recurrent(self) -> bool:
        """Whether the architecture carries a state from step to step (its forward takes one,
        see :mod:`understanding_rl_vision.agents.recurrent`)."""
        return "state" in inspect.signature(ARCHITECTURES[self.architecture].forward).parameters

    @property
    def architecture_options(self) -> dict[str, Any]:
        """Keyword arguments of the architecture that come from training options."""
        options: dict[str, Any] = {}
        if getattr(ARCHITECTURES[self.architecture], "attention_layer", None) is not None:
            options["trunk"] = self.attention_trunk
        if self.architecture == "attention":
            options["heads"] = self.attention_heads
        return options

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return math.ceil(self.total_steps / self.batch_size)

    def chunk_size_on(self, device: torch.device) -> int:
        """The chunk size to use on ``device`` (see ``chunk_size``)."""
        if self.chunk_size:
            return self.chunk_size
        return self.minibatch_size if device.type == "cuda" else CPU_CHUNK_SIZE

    def env_spec(self) -> EnvSpec:
        """The environment to train on. A family's options changed for another family are an
        error rather than silently dropped."""
        testing.register()  # the tiny test env resolves by name, as in make_vec_env
        spec = parse_env_id(self.env)
        defaults = {f.name: f.default for f in fields(PPOConfig)}
        families = (
            (ProcgenSpec, PROCGEN_OPTIONS, "Procgen", "a Procgen game"),
            (AtariSpec, ATARI_OPTIONS, "Atari", "an Atari game"),
            (MarioSpec, MARIO_OPTIONS, "Mario", "Super Mario Bros"),
        )
        for family, names, title, what in families:
            changed = [name for name in names if getattr(self, name) != defaults[name]]
            if changed and not isinstance(spec, family):
                raise ConfigError(f"{', '.join(changed)}: {title} options, but {spec.id} is not {what}")
        for family, names, *_ in families:
            if isinstance(spec, family):
                options = {name: getattr(self, name) for name in names}
                if family is AtariSpec:  # 0 takes the observation's own stack and size
                    stack, size = ATARI_FRAMES[self.observation]
                    options.update(frame_stack=self.frame_stack or stack, screen_size=self.screen_size or size)
                return parse_env_id(self.env, **options)
        return spec


@cache
def _field_types() -> dict[str, type]:
    """Each field's type (int, float, str or bool; the annotations are strings here)."""
    return typing.get_type_hints(PPOConfig)


def _check(config: PPOConfig, name: str, valid: Any, requirement: str) -> None:
    value = getattr(config, name)
    if not valid(value):
        raise ConfigError(f"{name} {requirement}, got {value!r}")


def make_config(**options: Any) -> PPOConfig:
    """A :class:`PPOConfig` from keyword options; unknown names fail listing the valid ones."""
    names = [f.name for f in fields(PPOConfig)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    return PPOConfig(**options)
