"""``states train``: fit a generator of the agent's states, resumably, with a log of every epoch.

Read top to bottom: collect the frames and their saliency (once; kept in ``frames.npz`` so a resumed
run trains on the same ones), hold out a tenth, then per epoch shuffle, step Adam on seed 003's
loss (:mod:`.loss`), measure the held-out frames, log, and save every ``save_every`` epochs.

The save folder holds ``generator.safetensors`` (:mod:`.store`), ``train_state.pt`` (tensors only,
read with ``weights_only=True``), ``frames.npz`` and ``log.csv``.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..agents.base import Agent
from ..common.files import atomic_path, load_resume_state
from ..envs.spec import EnvSpec
from ..errors import UserError, first_line
from .config import RESUMABLE_CHANGES, GeneratorConfig, make_generator_config
from .data import Frames, collect_frames
from .loss import generator_loss, perception_error
from .model import StateVAE, to_images
from .perception import agent_outputs, check_agent
from .store import GENERATOR, save_generator

TRAIN_STATE = "train_state.pt"
FRAMES = "frames.npz"
LOG = "log.csv"
LOG_COLUMNS = (
    "epoch",
    "step",
    "seconds",
    "reconstruction",
    "perception",
    "kl",
    "loss",
    "heldout_psnr",
    "heldout_saliency_psnr",
    "heldout_action_agreement",
    "heldout_perception",
)
HELD_OUT = 10
"""One frame in this many is held out to measure the generator."""


def train_generator(
    agent: Agent,
    agent_identity: str,
    save_dir: str | Path,
    config: GeneratorConfig = GeneratorConfig(),
    *,
    env_spec: EnvSpec | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train (or, with ``resume``, continue) a generator for ``agent`` in ``save_dir``; returns the
    generator's path. ``agent_identity`` names the agent as a run does, and a run with another agent
    refuses the generator: :func:`~..agents.formats.checkpoint_identity` of its file, or
    :func:`~..agents.agent_digest` of an in-memory agent (``rl_clarity.run(agent=...)``)."""
    check_agent(agent)
    save_dir = Path(save_dir)
    device = torch.device(config.device)
    if resume:
        state = _load_state(save_dir, config, agent_identity)
        frames = _load_frames(save_dir)
    else:
        _refuse_existing(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        state = None
        frames = collect_frames(agent, config, env_spec, progress)
        with atomic_path(save_dir / FRAMES) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(
                handle, observations=frames.observations, saliency=frames.saliency, value_scale=frames.value_scale
            )
    train, held = _split(len(frames.observations), config.seed)

    torch.manual_seed(config.seed)
    vae = StateVAE(agent.observation_shape, config.latent_size, config.width).to(device)
    optimiser = torch.optim.Adam(vae.parameters(), lr=config.learning_rate)
    epoch, seconds, step = 0, 0.0, 0
    if state is not None:
        vae.load_state_dict(state["vae"])
        optimiser.load_state_dict(state["optimiser"])
        epoch, seconds, step = int(state["epoch"]), float(state["seconds"]), int(state["step"])
    for group in optimiser.param_groups:
        group["lr"] = config.learning_rate
    if state is None:  # the frames are collected: a chunk stopped from here on resumes with them
        _save_state(save_dir, vae, optimiser, agent_identity, config, epoch, step, seconds)
    frozen = [p.requires_grad_(False) for p in agent.model.parameters() if p.requires_grad]
    observations = torch.as_tensor(frames.observations)
    weights = torch.as_tensor(frames.saliency)
    try:
        with _Log(save_dir, resume, epoch) as log:
            while epoch < config.epochs:
                started = time.perf_counter()
                vae.train()
                order = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed + epoch))]
                # the sampling noise, seeded per epoch too, so that a resumed training continues exactly
                noise_seed = int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0])
                noise = torch.Generator(device=device).manual_seed(noise_seed)
                sums = np.zeros(4)
                batches = range(0, max(len(order) - config.batch_size, 0) + 1, config.batch_size)
                bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress)
                for start in bar:
                    rows = order[start : start + config.batch_size]
                    images = to_images(observations[rows].to(device))
                    terms = generator_loss(
                        vae, agent, images, weights[rows].to(device).float() / 255, config, noise, frames.value_scale
                    )
                    optimiser.zero_grad()
                    terms.total.backward()
                    optimiser.step()
                    sums += [float(t.detach()) for t in terms]
                    step += 1
                epoch += 1
                seconds += time.perf_counter() - started
                measured = measure(vae, agent, frames, held)
                log.write([epoch, step, round(seconds, 3), *(sums / len(batches)), *measured])
                if epoch % config.save_every == 0 or epoch == config.epochs:
                    extra = {"epochs": epoch, "seconds": round(seconds, 3), "frames": len(frames.observations)}
                    extra |= dict(zip(LOG_COLUMNS[-len(measured) :], measured))
                    _save_state(save_dir, vae, optimiser, agent_identity, config, epoch, step, seconds)
                    save_generator(vae, save_dir, agent_identity, config, extra)  # after its resume state
                if config.snapshot_every and epoch % config.snapshot_every == 0:
                    save_generator(vae, save_dir, agent_identity, config, extra, name=snapshot_name(epoch))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return save_dir / GENERATOR


@torch.no_grad()
def measure(vae: StateVAE, agent: Agent, frames: Frames, rows: torch.Tensor) -> tuple[float, float, float, float]:
    """On the held-out frames: PSNR of the reconstruction (dB), PSNR weighted by the agent's saliency
    (the pixels it decides by), how often the agent's preferred action is unchanged, and the
    perception term (how differently the agent sees the reconstruction, :func:`.loss.perception_error`)."""
    vae.eval()
    squared, weighted, agree, perceived = [], [], [], []
    for start in range(0, len(rows), 256):
        picked = rows[start : start + 256].numpy()
        images = to_images(torch.as_tensor(frames.observations[picked], device=agent.device))
        weights = torch.as_tensor(frames.saliency[picked], device=agent.device).float() / 255
        rebuilt = vae.reconstruct(images)
        error = (rebuilt - images).square().mean(dim=1)
        squared.append(error.flatten(1).mean(1))
        weighted.append((error * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp_min(1e-8))
        agree.append(agent_outputs(agent, rebuilt).logits.argmax(1) == agent_outputs(agent, images).logits.argmax(1))
        perceived.append(perception_error(agent, images, rebuilt, frames.value_scale))
    return (
        psnr(torch.cat(squared)),
        psnr(torch.cat(weighted)),
        float(torch.cat(agree).float().mean()),
        float(torch.cat(perceived).mean()),
    )


def snapshot_name(epoch: int) -> str:
    """The file a snapshot of the generator after ``epoch`` epochs is kept in (``snapshot_every``)."""
    return f"generator-epoch-{epoch}.safetensors"


def psnr(mse: torch.Tensor) -> float:
    """Mean over frames of 10 log10(1 / MSE) for images in [0, 1] (capped at 100 dB)."""
    return float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


def _split(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    held = max(1, count // HELD_OUT)
    return order[held:], order[:held]


def _refuse_existing(save_dir: Path) -> None:
    existing = [name for name in (TRAIN_STATE, GENERATOR, FRAMES, LOG) if (save_dir / name).exists()]
    if existing:
        raise UserError(
            f"{save_dir} already holds a generator's training ({', '.join(existing)}); "
            "resume it (--resume) or choose another --save-dir"
        )


def _save_state(
    save_dir: Path,
    vae: StateVAE,
    optimiser: torch.optim.Optimizer,
    agent_identity: str,
    config: GeneratorConfig,
    epoch: int,
    step: int,
    seconds: float,
) -> None:
    state = {
        "vae": vae.state_dict(),
        "optimiser": optimiser.state_dict(),
        "epoch": epoch,
        "step": step,
        "seconds": seconds,
        "config": asdict(config),
        "agent": agent_identity,
    }
    with atomic_path(save_dir / TRAIN_STATE) as tmp:
        torch.save(state, tmp)


def _read_state(save_dir: Path) -> dict[str, Any]:
    path = save_dir / TRAIN_STATE
    state = load_resume_state(path, "generator's training state")
    if not isinstance(state, dict) or "vae" not in state:
        raise UserError(f"{path} is not a generator's training state")
    return state


def saved_generator_config(save_dir: str | Path) -> GeneratorConfig:
    """The settings of the training saved in ``save_dir``, e.g. to resume it with a few changes."""
    return make_generator_config(**_read_state(Path(save_dir))["config"])


def _load_state(save_dir: Path, config: GeneratorConfig, agent_identity: str) -> dict[str, Any]:
    state = _read_state(save_dir)
    if state.get("agent") != agent_identity:
        raise UserError(f"{save_dir} trains a generator for another agent; resume it with that agent")
    saved, now = asdict(make_generator_config(**state["config"])), asdict(config)
    changed = sorted(k for k in saved if k not in RESUMABLE_CHANGES and saved[k] != now[k])
    if changed:
        details = ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise UserError(
            f"cannot resume {save_dir} with different settings ({details}); "
            f"only {', '.join(RESUMABLE_CHANGES)} may change"
        )
    return state


def _load_frames(save_dir: Path) -> Frames:
    try:
        with np.load(save_dir / FRAMES, allow_pickle=False) as data:
            return Frames(data["observations"], data["saliency"], float(data["value_scale"]))
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"cannot read the generator's frames {save_dir / FRAMES}: {first_line(exc)}") from None


class _Log:
    """``log.csv``, one row per epoch; a resumed run drops rows after its saved epoch, then appends."""

    def __init__(self, save_dir: Path, resume: bool, epoch: int) -> None:
        path = save_dir / LOG
        rows: list[list[str]] = []
        if resume and path.exists():
            with open(path, newline="") as handle:
                rows = [row for row in list(csv.reader(handle))[1:] if row and int(row[0]) <= epoch]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            csv.writer(handle).writerows([list(LOG_COLUMNS), *rows])
        self._file = open(path, "a", newline="")  # noqa: SIM115  # closed by __exit__
        self._writer = csv.writer(self._file)

    def write(self, row: list[float]) -> None:
        self._writer.writerow(["" if isinstance(v, float) and math.isnan(v) else round(v, 6) for v in row])
        self._file.flush()

    def __enter__(self) -> _Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
