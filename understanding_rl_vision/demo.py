"""``understanding-rl-vision demo``: the whole product on the bundled CoinRun agent, sized to
finish in a few minutes on 2 CPU cores (the defaults of ``run`` are the original's, 8 x 512)."""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from typing import cast

from .agents import read_checkpoint_metadata
from .config import RunConfig
from .errors import UserError

DEMO_AGENT = "demo-agent.safetensors"
DEMO_CONFIG = RunConfig().replace(
    num_envs=3,
    num_steps=256,  # trajectories shown
    obs_num_envs=16,
    num_obs=64,
    obs_every=32,  # 1,024 observations for NMF and dataset examples
    methods=("ig", "gradcam", "perturbation"),  # the original's, seed 000's and seed 001's
    explain=("value", "action", "actor"),  # the critic, the action taken, and (perturbation) the actor
    attr_policy=True,  # and every logit and action group
    ig_rule="gauss-legendre",
    ig_steps=4,  # as accurate as 10 Riemann steps here, 2.5x faster (docs/benchmarks.md)
    report_frames=8,  # the methods' faithfulness report card (docs/report-card.md)
    title="Bundled CoinRun agent (demo)",
)
"""Every layer, three explanation methods of the value, the action taken, every logit and the action
groups, on a smaller sample than a default run."""


def bundled_agent_path() -> Traversable | None:
    """The demo agent shipped as package data, or None if this install lacks it."""
    path = resources.files("understanding_rl_vision") / "data" / DEMO_AGENT
    return path if path.is_file() else None


BUNDLED_NAMES = ("bundled", "demo")
"""What commands that take a checkpoint accept for the bundled CoinRun agent."""
BUNDLED_AGENTS = {
    "coinrun": DEMO_AGENT,
    "breakout-lstm": "breakout-lstm.safetensors",
    "breakout-attention": "breakout-attention.safetensors",
}
"""``bundled:NAME`` -> the file shipped as package data: the demo's CoinRun agent, seed 001's A3C
LSTM network and seed 002's attention agent, both trained on Breakout (docs/seeds.md)."""
ATTENTION_DEMO_CONFIG = DEMO_CONFIG.replace(
    methods=("ig", "attention", "smoothgrad", "attention-tree"),  # seed 002's map, its SmoothGrad and its tree
    explain=("value", "action", "attention"),
    attr_policy=False,  # seed 002's maps of the value, the action taken and the attention
    title="Bundled Breakout attention agent (demo)",
)
"""``demo --agent attention``: the demo's sizes on seed 002's agent, with its attention, the attention's
SmoothGrad and the attention tree."""
DEMOS = {
    "coinrun": ("bundled:coinrun", DEMO_CONFIG),
    "attention": ("bundled:breakout-attention", ATTENTION_DEMO_CONFIG),
}
"""``demo --agent NAME`` -> the bundled agent and the run's settings."""


def resolve_checkpoint(name: str) -> str | os.PathLike[str]:
    """``name`` itself, or the path of a bundled agent: one of :data:`BUNDLED_NAMES` (CoinRun) or
    ``bundled:NAME`` for a name in :data:`BUNDLED_AGENTS`."""
    if name in BUNDLED_NAMES:
        name = "bundled:coinrun"
    if not name.startswith("bundled:"):
        return name
    key = name.removeprefix("bundled:")
    if key not in BUNDLED_AGENTS:
        raise UserError(f"no bundled agent {key!r}; bundled: {', '.join(f'bundled:{k}' for k in BUNDLED_AGENTS)}")
    if key == "coinrun":
        path = bundled_agent_path()
        if path is None:
            raise UserError("this install lacks the bundled demo agent (understanding_rl_vision/data)")
    else:
        path = resources.files("understanding_rl_vision") / "data" / BUNDLED_AGENTS[key]
        if not path.is_file():
            raise UserError(f"this install lacks the bundled agent {name} (understanding_rl_vision/data)")
    return cast("os.PathLike[str]", path)  # package data in a folder: a Path


def describe_agent(path: str | os.PathLike[str]) -> str:
    meta = read_checkpoint_metadata(path)
    env = meta.get("env_spec") or {}
    extra = meta.get("extra") or {}
    steps = extra.get("steps_trained")
    trained = f", trained for {steps:,} steps" if isinstance(steps, int) else ""
    mode = f" ({env['distribution_mode']} mode)" if env.get("distribution_mode") else ""
    return f"{meta['architecture']['name']} agent for {env.get('game', '?')}{mode}{trained}"
