"""What the browser tests and benchmarks/interface_fps.py share: Chromium's flags and the small
interface they open (plain functions, importable outside pytest)."""

from __future__ import annotations

import math
from pathlib import Path

CHROMIUM_ARGS = (
    "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync"
).split()


def settle(page, frames: int = 3) -> None:
    """Wait for ``frames`` animation frames (and a little after), so what the page draws is drawn."""
    page.evaluate(
        """(n) => new Promise((done) => {
             const step = () => (n-- > 0 ? requestAnimationFrame(step) : setTimeout(done, 30));
             setTimeout(step, 30);
           })""",
        frames,
    )


DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
"""True once the page has drawn its first attribution."""
MINUS = "\N{MINUS SIGN}"


def open_page(page, interface, query: str = "", viewport: dict | None = None) -> None:
    """Open ``interface`` (a Path) with ``query``, at ``viewport``, and wait until it has drawn."""
    page.set_viewport_size(viewport or {"width": 1280, "height": 800})
    page.goto(interface.as_uri() + query)
    page.wait_for_function(DRAWN, timeout=30_000)
    settle(page)


def shown(value: float) -> str:
    """A number as the page shows it (format.js ``number``)."""
    magnitude = abs(value)
    text = f"{magnitude:.0f}" if magnitude >= 100 else f"{magnitude:.2f}" if magnitude >= 1 else f"{magnitude:.3f}"
    return (MINUS if value < 0 and float(text) != 0 else "") + text


def percent(value: float) -> str:
    """format.js ``percent``: Math.round rounds halves up."""
    return f"{math.floor(value * 100 + 0.5)}%"


SMALL_RUN = dict(
    progress=False,
    num_envs=2,
    num_steps=24,
    obs_num_envs=4,
    num_obs=8,
    obs_every=4,
    layers=("2b", "3b"),
    default_layer="2b",
    nmf_features=4,
    num_bookmarks=2,
)
"""2 trajectories of 24 frames, layers 2b and 3b, 4 NMF features: a run of seconds."""


def random_checkpoint(folder: Path) -> Path:
    """A random IMPALA agent on CoinRun saved as a checkpoint in ``folder`` (the same bytes every time)."""
    from understanding_rl_vision.agents import make_agent, save_checkpoint
    from understanding_rl_vision.envs import make_vec_env

    with make_vec_env("coinrun", num_envs=1, seed=0, distribution_mode="easy") as env:
        agent = make_agent("impala", env.spec, env.observation_shape, env.action_names, seed=0)
    return save_checkpoint(agent, folder / "random.safetensors")


def build_small_interface(folder: Path) -> Path:
    """interface.html from a real small run in ``folder``: :func:`random_checkpoint`, :data:`SMALL_RUN`,
    value + every logit + groups, integrated gradients."""
    from understanding_rl_vision import rl_clarity

    run = rl_clarity.run(
        random_checkpoint(folder), folder / "interface", attr_policy=True, title="random agent", **SMALL_RUN
    )
    return run.path


def build_methods_interface(folder: Path, name: str = "interface", **page: object) -> Path:
    """interface.html from a real small run with several explanation methods in ``folder``:
    :func:`random_checkpoint`, :data:`SMALL_RUN`, integrated gradients, Grad-CAM, SmoothGrad and
    perturbation of the value, the action taken and the actor. ``page`` settings (gain, ...) go to
    the run; a second call in the same ``folder`` with another ``name`` reuses the first's cache."""
    from understanding_rl_vision import rl_clarity

    run = rl_clarity.run(
        random_checkpoint(folder),
        folder / name,
        cache_dir=folder / "cache",
        methods=("ig", "gradcam", "smoothgrad", "perturbation"),
        explain=("value", "action", "actor"),
        title="random agent, four methods",
        **SMALL_RUN,
        **page,
    )
    return run.path
