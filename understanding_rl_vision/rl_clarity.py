"""Public API: ``run()`` builds the interface for a checkpoint, ``train()`` trains an agent."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import ConfigError
from .serve import RunResult


def run(
    checkpoint: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] = "rl-vision",
    *,
    config: RunConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    resample: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    **settings: Any,
) -> RunResult:
    """Build the interactive interface for ``checkpoint`` in ``output_dir``.

    ``config`` is a :class:`~understanding_rl_vision.config.RunConfig`; ``settings`` change any
    of its fields by name, as the CLI flags do (``num_steps=256, layers=("2b",),
    attr_policy=True``). Products are cached in ``cache_dir`` (default ``<output_dir>.cache``)
    keyed by the checkpoint's hash and the settings, so a rerun after an interruption resumes;
    ``resample=False`` only rebuilds the page from that cache. Under ``mpiexec`` the work is
    shared across ranks. Returns a :class:`RunResult` (it displays the page in a notebook).
    """
    from .agents import load_checkpoint
    from .pipeline import RunOptions, file_digest, run_pipeline
    from .pipeline.parallel import Workers, launched_rank, note_fallback

    config = (config or RunConfig()).replace(**settings)
    output = Path(output_dir).absolute() / "interface.html"
    workers = Workers.detect()
    if note_fallback(workers):
        print("note: mpi4py is not installed; this rank leaves the work to rank 0", file=sys.stderr)
        return RunResult(output, rank=launched_rank())
    path = Path(checkpoint)
    agent = load_checkpoint(path, device=check_device(config.device))
    options = RunOptions(cache_dir=cache_dir, resample=resample, overwrite=overwrite, progress=progress)
    html = run_pipeline(agent, file_digest(path), output_dir, config, options,
                        title=config.title or path.name, workers=workers)  # fmt: skip
    return RunResult(html, rank=workers.rank)


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
