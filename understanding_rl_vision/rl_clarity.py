"""Public API: ``run()`` builds the interface for a checkpoint, ``train()`` trains an agent."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .errors import ConfigError
from .serve import RunResult

if TYPE_CHECKING:
    from .agents import Agent


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
    from .agents.formats import sniff_format
    from .agents.formats.torchscript import metadata_path
    from .pipeline import RunOptions, file_digest, run_pipeline
    from .pipeline.parallel import Workers, launched_rank, note_fallback

    if (checkpoint is None) == (agent is None):
        raise ConfigError("give either a checkpoint file or agent=, not both" if agent is not None
                          else "give a checkpoint file or agent=")  # fmt: skip
    config = (config or RunConfig()).replace(**settings)
    output = Path(output_dir).absolute() / "interface.html"
    workers = Workers.detect()
    if note_fallback(workers):
        print("note: mpi4py is not installed; this rank leaves the work to rank 0", file=sys.stderr)
        return RunResult(output, rank=launched_rank())
    if agent is None:
        path = Path(checkpoint)  # type: ignore[arg-type]
        agent = load_agent(path, env=config.env, frame_stack=config.frame_stack, device=check_device(config.device))
        identity, title = file_digest(path), path.name
        sidecar = metadata_path(path) if sniff_format(path) == "torchscript" else None
        if sidecar is not None:  # a TorchScript module's settings are part of the agent
            identity = file_digest(path) + file_digest(sidecar)
    else:
        agent.model.to(check_device(config.device))
        identity, title = agent_digest(agent), "custom agent"
    config = _explainable(agent, config)
    options = RunOptions(cache_dir=cache_dir, resample=resample, overwrite=overwrite, progress=progress,
                         checkpoint=None if checkpoint is None else Path(checkpoint))  # fmt: skip
    html = run_pipeline(agent, identity, output_dir, config, options,
                        title=config.title or title, workers=workers)  # fmt: skip
    return RunResult(html, rank=workers.rank)


def _explainable(agent: Agent, config: RunConfig) -> RunConfig:
    """A model with no hookable layers (TorchScript run as is) is explained at its input."""
    if agent.named_layers() or config.layer_selection.include_input:
        return config
    print("note: this model's layers cannot be hooked (TorchScript); explaining its input only",
          file=sys.stderr)  # fmt: skip
    return config.replace(include_input=True)


def check_device(name: str) -> str:
    """``name`` if torch can use that device here, else one clear error."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) visible")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use cpu or cuda")
    return name


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
    return train_ppo(
        make_config(env=env_name, **config), save_dir, resume=resume, progress=progress
    )
