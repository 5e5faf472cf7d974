"""What the browser tests and benchmarks/interface_fps.py share: Chromium's flags and the small
interface they open (plain functions, importable outside pytest)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM_ARGS = (
    "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync"
).split()


def build_small_interface(folder: Path) -> Path:
    """interface.html from a real small run in ``folder``: a random IMPALA agent on CoinRun saved as a
    checkpoint, 2 trajectories of 24 frames, layers 2b and 3b, value + every logit + groups, 4 NMF
    features."""
    from understanding_rl_vision import rl_clarity
    from understanding_rl_vision.agents import make_agent, save_checkpoint
    from understanding_rl_vision.envs import make_vec_env

    with make_vec_env("coinrun", num_envs=1, seed=0, distribution_mode="easy") as env:
        agent = make_agent("impala", env.spec, env.observation_shape, env.action_names, seed=0)
    checkpoint = save_checkpoint(agent, folder / "random.safetensors")
    return rl_clarity.run(
        checkpoint,
        folder / "interface",
        progress=False,
        num_envs=2,
        num_steps=24,
        obs_num_envs=4,
        num_obs=8,
        obs_every=4,
        layers=("2b", "3b"),
        default_layer="2b",
        attr_policy=True,
        nmf_features=4,
        num_bookmarks=2,
        title="random agent",
    ).path


def build_methods_interface(folder: Path) -> Path:
    """interface.html from a real small run with several explanation methods in ``folder``: the random
    agent of :func:`build_small_interface`, 2 trajectories of 24 frames, layers 2b and 3b, integrated
    gradients, Grad-CAM, SmoothGrad and perturbation of the value, the action taken and the actor."""
    from understanding_rl_vision import rl_clarity
    from understanding_rl_vision.agents import make_agent, save_checkpoint
    from understanding_rl_vision.envs import make_vec_env

    with make_vec_env("coinrun", num_envs=1, seed=0, distribution_mode="easy") as env:
        agent = make_agent("impala", env.spec, env.observation_shape, env.action_names, seed=0)
    checkpoint = save_checkpoint(agent, folder / "random.safetensors")
    return rl_clarity.run(
        checkpoint,
        folder / "interface",
        progress=False,
        num_envs=2,
        num_steps=24,
        obs_num_envs=4,
        num_obs=8,
        obs_every=4,
        layers=("2b", "3b"),
        default_layer="2b",
        methods=("ig", "gradcam", "smoothgrad", "perturbation"),
        explain=("value", "action", "actor"),
        nmf_features=4,
        num_bookmarks=2,
        title="random agent, four methods",
    ).path
