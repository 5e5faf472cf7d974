"""A training run's directory: the published checkpoint, the resume state and the log.

* ``checkpoint.safetensors``: the agent, for :func:`~understanding_rl_vision.agents.load_checkpoint`;
  its metadata's ``extra`` holds the steps and updates trained and the config.
* ``train_state.pt``: what resuming needs (weights, optimiser, reward scaling, RNG, progress,
  config); plain tensors and containers only, so ``torch.load(weights_only=True)`` reads it.
* ``log.csv``: one row per update.

Files are replaced atomically (temporary file, then ``os.replace``). The state is written before
the checkpoint, and resuming rewrites a checkpoint that lags behind it, so the two always agree.
"""

from __future__ import annotations

import csv
import math
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..agents import Agent, read_checkpoint_metadata, save_checkpoint
from ..common.files import atomic_path, load_resume_state
from ..envs import Episode
from ..errors import CheckpointError, UserError
from .config import PPOConfig, make_config

CHECKPOINT = "checkpoint.safetensors"
TRAIN_STATE = "train_state.pt"
LOG = "log.csv"
STATE_VERSION = 1
RECENT_EPISODES = 100
"""Finished episodes the log and the progress bar average over."""
RESUMABLE_CHANGES = ("total_steps", "save_every", "device", "chunk_size", "learning_rate")
"""Config fields a resumed run may change: how long and how to train (the step size too, e.g. after a
plateau; the log records each chunk's), not what is learned from."""
LOG_COLUMNS = (
    "update",
    "global_step",
    "wall_time",
    "steps_per_second",
    "episode_return",
    "level_completion",
    "episodes",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "attention_entropy",
)
"""``attention_entropy`` is the mean entropy of an attention agent's maps (empty for other agents)."""


@dataclass
class Progress:
    """How far a run has got; saved with the resume state."""

    update: int = 0
    global_step: int = 0
    seconds: float = 0.0  # training time, summed over sessions
    recent: deque[Episode] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.recent = deque(self.recent, maxlen=RECENT_EPISODES)

    def mean_return(self) -> float:
        return float(np.mean([e.total_reward for e in self.recent])) if self.recent else math.nan

    def completion_rate(self) -> float:
        """Share of recent levels completed; NaN when none ended or the env has no levels."""
        flags = [e.level_complete for e in self.recent if e.level_complete is not None]
        return float(np.mean(flags)) if flags else math.nan


def refuse_existing_run(save_dir: Path) -> None:
    """A fresh run never overwrites another one."""
    existing = [name for name in (TRAIN_STATE, CHECKPOINT) if (save_dir / name).exists()]
    if existing:
        raise UserError(
            f"{save_dir} already holds a run ({', '.join(existing)}); resume it (--resume) or choose another save dir"
        )


def save_run(
    save_dir: Path,
    config: PPOConfig,
    agent: Agent,
    learner_state: Mapping[str, Any],
    progress: Progress,
) -> None:
    """Write the resume state (the learner's, plus config and progress), then the checkpoint."""
    state = {
        "version": STATE_VERSION,
        "config": asdict(config),
        "update": progress.update,
        "global_step": progress.global_step,
        "seconds": progress.seconds,
        "recent": [asdict(episode) for episode in progress.recent],
        **learner_state,
    }
    with atomic_path(save_dir / TRAIN_STATE) as tmp:
        torch.save(state, tmp)
    extra = {
        "steps_trained": progress.global_step,
        "updates": progress.update,
        "config": asdict(config),
    }
    save_checkpoint(agent, save_dir / CHECKPOINT, extra=extra)


def load_state(save_dir: Path, config: PPOConfig) -> tuple[dict[str, Any], Progress]:
    """The saved state and progress. A config that differs in more than
    :data:`RESUMABLE_CHANGES` is refused, naming every differing field."""
    state = _read_state(save_dir)
    saved, now = asdict(make_config(**state["config"])), asdict(config)  # fields added since: defaults
    changed = sorted(k for k in saved.keys() | now.keys() if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if changed:
        details = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise UserError(
            f"cannot resume {save_dir} with a different config ({details}); "
            f"only {', '.join(RESUMABLE_CHANGES)} may change"
        )
    recent = deque(Episode(**episode) for episode in state["recent"])
    return state, Progress(state["update"], state["global_step"], state["seconds"], recent)


def saved_config(save_dir: str | os.PathLike[str]) -> PPOConfig:
    """The config of the run saved in ``save_dir``, e.g. to resume it with a few changes."""
    return make_config(**_read_state(Path(save_dir))["config"])


def checkpoint_update(save_dir: Path) -> int | None:
    """The update the checkpoint was saved at; None if it is missing or unreadable."""
    try:
        return read_checkpoint_metadata(save_dir / CHECKPOINT)["extra"].get("updates")
    except (CheckpointError, KeyError, AttributeError):
        return None


def _read_state(save_dir: Path) -> dict[str, Any]:
    path = save_dir / TRAIN_STATE
    state = load_resume_state(path, "training state")
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise UserError(f"{path} is not a training state this version can resume")
    return state


class RunLog:
    """``log.csv``: one row per update, flushed at once so it can be watched during training.

    A fresh run starts the file anew; a resumed one first drops rows logged after the saved
    state (a crash between two saves), then appends, so no update appears twice.
    """

    def __init__(self, save_dir: Path, resume: bool, update: int = 0):
        path = save_dir / LOG
        if resume and path.exists():
            self._keep_rows_up_to(path, update)
        new = not (resume and path.exists() and path.stat().st_size > 0)
        self._file = open(path, "w" if new else "a", newline="")  # noqa: SIM115  # closed by __exit__
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(LOG_COLUMNS)

    def write(self, progress: Progress, steps_per_second: float, stats: Mapping[str, float]) -> None:
        row = [
            progress.update,
            progress.global_step,
            round(progress.seconds, 3),
            round(steps_per_second, 1),
            progress.mean_return(),
            progress.completion_rate(),
            len(progress.recent),
            *(stats.get(name, math.nan) for name in LOG_COLUMNS[7:]),
        ]
        self._writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
        self._file.flush()

    @staticmethod
    def _keep_rows_up_to(path: Path, update: int) -> None:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) <= update]
        older_header = kept and kept[0] != list(LOG_COLUMNS) and tuple(kept[0]) == LOG_COLUMNS[: len(kept[0])]
        if older_header:  # a log begun by an earlier version: name the columns appended since
            kept[0] = list(LOG_COLUMNS)
        if len(kept) < len(rows) or older_header:
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
                csv.writer(handle).writerows(kept)

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
