"""``understanding-rl-vision demo``: the product on the bundled CoinRun agent, no checkpoint needed.

Until the interface lands, the demo runs the stages that exist for real (load the bundled agent,
collect trajectories, GAE, bookmarks), reports them, and says what comes next.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from .advantages import find_bookmarks, gae
from .agents import load_checkpoint, read_checkpoint_metadata
from .config import AdvantageConfig, TrajectoryConfig
from .rollout import collect_trajectories

DEMO_AGENT = "demo-agent.safetensors"
DEMO_TRAJECTORIES = TrajectoryConfig(num_envs=8, num_steps=512)
DEMO_SEED = 0


def bundled_agent_path() -> Traversable | None:
    """The demo agent shipped as package data, or None if this install lacks it."""
    path = resources.files("understanding_rl_vision") / "data" / DEMO_AGENT
    return path if path.is_file() else None


def describe_agent(path: Traversable) -> str:
    meta = read_checkpoint_metadata(path)
    env = meta.get("env_spec") or {}
    extra = meta.get("extra") or {}
    steps = extra.get("steps_trained")
    trained = f", trained for {steps:,} steps" if isinstance(steps, int) else ""
    return (
        f"{meta['architecture']['name']} agent for {env.get('game', '?')} "
        f"({env.get('distribution_mode', '?')} mode){trained}"
    )


def run_demo(progress: bool = True) -> int:
    """Run the available stages on the bundled agent and print what they found."""
    path = bundled_agent_path()
    assert path is not None, "callers check bundled_agent_path() first"
    config, advantage_config = DEMO_TRAJECTORIES, AdvantageConfig()
    print(f"bundled agent: {describe_agent(path)}")
    print(
        f"plan: {config.num_envs} trajectories x {config.num_steps} steps (seed {DEMO_SEED}), "
        f"GAE, {advantage_config.num_bookmarks}+{advantage_config.num_bookmarks} bookmarks"
    )
    agent = load_checkpoint(path)
    trajectories = collect_trajectories(agent, config, seed=DEMO_SEED, progress=progress)
    advantages = gae(
        trajectories.rewards, trajectories.values, trajectories.dones,
        agent.gamma, agent.lam, trajectories.last_values,
    )  # fmt: skip
    marks = find_bookmarks(advantages, trajectories.firsts, advantage_config.num_bookmarks)
    episodes = int(trajectories.dones.sum())
    print(
        f"collected {trajectories.num_envs * trajectories.num_steps} frames, {episodes} episodes "
        f"ended, total reward {trajectories.rewards.sum():.0f}"
    )
    for title, kind in (("unexpected successes", marks.high), ("unexpected failures", marks.low)):
        shown = ", ".join(f"traj {b.trajectory} frame {b.frame} ({b.advantage:+.2f})" for b in kind[:3])
        print(f"{title}: {len(kind)} bookmarks; top: {shown}")
    print("next: attribution, NMF features and feature images work through the Python API (README); "
          "interface.html and `run` are not implemented yet")
    return 0

