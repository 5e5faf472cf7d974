"""Public API: ``run()`` builds the interface for a checkpoint, ``video()`` draws one trajectory's
explanations into a video file, ``site()`` gathers finished runs into one static site, ``train()``
trains an agent."""

from __future__ import annotations

import html
import http.server
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .errors import ConfigError
from .serve import make_server, url_of

if TYPE_CHECKING:
    from .agents import Agent
    from .envs import EnvSpec
    from .render.video import VideoResult


@dataclass
class RunResult:
    """What :func:`rl_clarity.run` returns: where the interface is. In a notebook it displays
    the interface inline, served from a background localhost server."""

    path: Path
    """The interface.html written by the run."""
    rank: int = 0
    """This process's MPI rank; only rank 0 writes the output and reports it."""
    _server: http.server.HTTPServer | None = field(default=None, repr=False)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def serve(self, port: int = 0) -> str:
        """Start (once) a background server for the folder; returns the interface's URL."""
        if self._server is None:
            self._server = make_server(self.directory, port=port, quiet=True)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return url_of(self._server)

    def _repr_html_(self) -> str:
        url = html.escape(self.serve(), quote=True)
        return (
            f'<iframe src="{url}" style="width:100%;height:820px;border:1px solid #ccc" '
            f'title="understanding-rl-vision interface"></iframe>'
            f'<p><a href="{url}" target="_blank" rel="noopener">open in a new tab</a> · '
            f"{html.escape(str(self.path))}</p>"
        )

    def __str__(self) -> str:
        return str(self.path)


def run(
    checkpoint: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] = "rl-vision",
    *,
    agent: Agent | None = None,
    config: RunConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    resample: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    **settings: Any,
) -> RunResult:
    """Build the interactive interface for ``checkpoint`` (or an in-memory ``agent``) in
    ``output_dir``.

    ``checkpoint`` is any file :func:`~understanding_rl_vision.agents.load_agent` reads: ours, a
    Stable-Baselines3 zip, a CleanRL state dict, TorchScript (files from other libraries need
    ``env=``). ``agent`` is an :class:`~understanding_rl_vision.agents.Agent`, e.g. from
    :func:`~understanding_rl_vision.agents.custom_agent`. ``config`` is a
    :class:`~understanding_rl_vision.config.RunConfig`; ``settings`` change any of its fields by
    name, as the CLI flags do (``num_steps=256, layers=("2b",), attr_policy=True``). Products
    are cached in ``cache_dir`` (default ``<output_dir>.cache``) keyed by the agent's hash and
    the settings, so a rerun after an interruption resumes; ``resample=False`` only rebuilds the
    page from that cache. Under ``mpiexec`` the work is shared across ranks. Returns a
    :class:`RunResult` (it displays the page in a notebook).
    """
    from .agents import agent_digest, load_agent
    from .agents.formats import checkpoint_identity
    from .common.device import check_device
    from .pipeline import RunOptions, run_pipeline
    from .pipeline.parallel import Workers, launched_rank, note_fallback

    if (checkpoint is None) == (agent is None):
        raise ConfigError(
            "give either a checkpoint file or agent=, not both"
            if agent is not None
            else "give a checkpoint file or agent="
        )
    config = (config or RunConfig()).replace(**settings)
    output = Path(output_dir).absolute() / "interface.html"
    workers = Workers.detect()
    if note_fallback(workers):
        print("note: mpi4py is not installed; this rank leaves the work to rank 0", file=sys.stderr)
        return RunResult(output, rank=launched_rank())
    if agent is None:
        path = Path(checkpoint)  # type: ignore[arg-type]
        agent = load_agent(path, env=_env(config), frame_stack=config.frame_stack, device=check_device(config.device))
        identity, title = checkpoint_identity(path), path.name
    else:
        agent.model.to(check_device(config.device))
        identity, title = agent_digest(agent), "custom agent"
    config = _explainable(agent, config)
    options = RunOptions(
        cache_dir=cache_dir,
        resample=resample,
        overwrite=overwrite,
        progress=progress,
        checkpoint=None if checkpoint is None else Path(checkpoint),
    )
    html = run_pipeline(agent, identity, output_dir, config, options, title=config.title or title, workers=workers)
    return RunResult(html, rank=workers.rank)


def _env(config: RunConfig) -> str | EnvSpec:
    """The environment asked for, with the Mario action set when one is given."""
    if not config.action_set:
        return config.env
    from .envs import MarioSpec, parse_env_id

    if not config.env:
        raise ConfigError("action_set needs env (a Super Mario Bros id such as SuperMarioBros-1-1-v0)")
    spec = parse_env_id(config.env)
    if not isinstance(spec, MarioSpec):
        raise ConfigError(f"action_set is a Super Mario Bros option, but {spec.id} is not Super Mario Bros")
    return parse_env_id(config.env, action_set=config.action_set)


def video(
    checkpoint: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] = "video.mp4",
    *,
    from_run: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    frames: int = 512,
    layout: str = "row",
    layer: str = "",
    outputs: tuple[str, ...] = (),
    config: RunConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **settings: Any,
) -> VideoResult | None:
    """Write a video of one trajectory with its explanations drawn over every frame (mp4 or gif).

    Either compute: ``checkpoint`` is run as :func:`run` would (``settings`` as there), with one
    trajectory of ``frames`` steps unless ``num_envs`` says otherwise, and a smaller observation
    set (:data:`VIDEO_OBSERVATION_SET`), into
    ``run_dir`` (default ``<output>-run`` beside the video: its page shows the same frames); or
    reuse a finished run's maps with ``from_run`` (its output folder), computing nothing.
    ``outputs`` picks which outputs to draw (default: all computed; when computing it is also
    what is explained, unless ``explain`` is given). Returns None on MPI ranks other than 0.
    """
    from .render.video import DEFAULT_FPS, check_destination, write_video

    path = Path(output)
    check_destination(path, overwrite)
    settings.setdefault("fps", DEFAULT_FPS)
    if from_run is not None:
        if checkpoint is not None:
            raise ConfigError("give a checkpoint or from_run, not both")
        unusable = sorted(set(settings) - _DRAWING_SETTINGS)
        if unusable:
            raise ConfigError(f"from_run reuses a finished run; {', '.join(unusable)} would change what it computed")
        source = Path(from_run)
    else:
        if checkpoint is None:
            raise ConfigError("give a checkpoint to compute, or from_run to reuse a finished run")
        if frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        if "num_steps" in settings and settings["num_steps"] != frames:
            raise ConfigError("give the length as frames, not num_steps")
        settings = {"num_envs": 1, "num_steps": frames, **VIDEO_OBSERVATION_SET, **settings}
        if outputs and "explain" not in settings:
            settings["explain"] = tuple(outputs)
        source = Path(run_dir) if run_dir is not None else path.with_name(f"{path.stem}-run")
        result = run(
            checkpoint, source, config=config, cache_dir=cache_dir, overwrite=overwrite, progress=progress, **settings
        )
        if result.rank != 0:
            return None
    drawn = (config or RunConfig()).replace(**settings)
    look = drawn.interface
    return write_video(
        source,
        path,
        trajectory=look.trajectory,
        methods=drawn.attribution.methods if "methods" in settings else (),
        outputs=outputs,
        layer=layer,
        frames=frames,
        fps=look.fps,
        layout=layout,  # type: ignore[arg-type]  # checked by write_video
        gain=look.gain,
        opacity=look.observation_opacity,
        overwrite=overwrite,
        progress=progress,
    )


VIDEO_OBSERVATION_SET = {"obs_num_envs": 8, "num_obs": 32, "obs_every": 16}
"""A video's run fits its layers' features on 256 observations (4,096 steps) rather than a page's
4,096 (524,288 steps): slow emulators such as Super Mario Bros' would spend most of an hour there.
Flags of the same names change it."""

_DRAWING_SETTINGS = {"methods", "fps", "gain", "observation_opacity", "trajectory"}
"""Settings a video of a finished run may take: they choose and draw, and compute nothing."""


def site(
    run_dirs: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...],
    output_dir: str | os.PathLike[str] = "site",
    *,
    title: str = "Understanding RL Vision",
    overwrite: bool = False,
) -> Path:
    """Gather finished runs (their output folders) into one static site: ``index.html`` lists them
    with a thumbnail each, and their pages share one copy of the bundle. Returns the index. Every
    run is checked before anything is written; ``overwrite`` replaces only a site this tool wrote."""
    from .pipeline.publish import check_target, publish
    from .render.site import check_runs, write_site

    if not run_dirs:
        raise ConfigError("give at least one run folder")
    sources = [Path(d).absolute() for d in run_dirs]
    target = check_target(Path(output_dir), overwrite=overwrite)
    check_runs(sources, target.path)
    publish(target, lambda folder: write_site(folder, sources, title))
    return target.path / "index.html"


def _explainable(agent: Agent, config: RunConfig) -> RunConfig:
    """A model with no hookable layers (TorchScript run as is) is explained at its input."""
    if agent.named_layers() or config.layer_selection.include_input:
        return config
    print("note: this model's layers cannot be hooked (TorchScript); explaining its input only", file=sys.stderr)
    return config.replace(include_input=True)


def train(
    env_name: str = "coinrun",
    *,
    save_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: bool = True,
    **config: Any,
) -> Path:
    """Train a PPO agent on ``env_name``; returns the path of the checkpoint in ``save_dir``.

    ``config`` takes any :class:`~understanding_rl_vision.training.PPOConfig` field (for
    example ``total_steps=5_000_000, bf16=True``); unknown names fail listing the valid ones.
    """
    from .training import make_config
    from .training import train as train_ppo

    if "env" in config:
        raise ConfigError("name the environment with env_name, not env")
    return train_ppo(make_config(env=env_name, **config), save_dir, resume=resume, progress=progress)
