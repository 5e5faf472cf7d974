"""Seed 002's experiment, reported: a table of each entropy coefficient's final return and attention
entropy, a plot of return against the coefficient, and each agent's attention on the same frames.

    python tools/seed002_report.py runs/attention-breakout docs/seeds

Reads ``ROOT/lambda-*/log.csv`` and ``checkpoint.safetensors`` (written by tools/seed002_sweep.sh);
writes ``seed-002-lambda.png`` (return and entropy against lambda, with the learning curves),
``seed-002-attention.png`` (the attention of each agent over four Breakout frames) and
``seed-002-gradients.png`` (seed 002's figures: gradient, SmoothGrad and VarGrad of the attention
layer, for each agent on one frame) into OUT, and prints the Markdown table docs/seeds.md shows.
Needs matplotlib (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.agents.attention import capture_attention
from understanding_rl_vision.attribution import explain_agent
from understanding_rl_vision.attribution.methods import method_class
from understanding_rl_vision.envs import make_vec_env

FRAMES = 4
"""Frames shown per agent: the same frames for every coefficient (played by the first agent)."""

FIXATION_FRAMES = 64
"""Frames over which the table measures whether an agent's strongest attention cell moves."""


def read_log(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(row[key]) if row[key] else math.nan for row in rows]) for key in rows[0]}


def summary(log: dict[str, np.ndarray]) -> dict[str, float]:
    """The last logged mean return (of the last 100 episodes) and the mean attention entropy over
    the last 10% of updates."""
    tail = max(1, len(log["update"]) // 10)
    return {
        "steps": float(log["global_step"][-1]),
        "return": float(log["episode_return"][-1]),
        "entropy": float(np.nanmean(log["attention_entropy"][-tail:])),
        "first_entropy": float(log["attention_entropy"][0]),
    }


def sample_frames(checkpoint: Path, count: int, every: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """``count`` observations and display frames, ``every`` steps apart, played by the agent."""
    agent = load_checkpoint(checkpoint)
    assert agent.env_spec is not None
    generator = torch.Generator().manual_seed(0)
    observations, frames = [], []
    with make_vec_env(agent.env_spec, num_envs=1, seed=123) as env:
        step = env.reset()
        for t in range(every * count):
            if t % every == every - 1:
                observations.append(step.obs[0])
                frames.append(step.frame[0])  # what a person sees: the colour screen
            step = env.step(agent.act(step.obs, generator).actions)
    return np.stack(observations), np.stack(frames)


def attention(checkpoint: Path, observations: np.ndarray) -> np.ndarray:
    agent = load_checkpoint(checkpoint)
    with capture_attention(agent.model) as seen, torch.no_grad():
        agent(observations)
    return seen[-1].sum(dim=1).numpy()


def fixation(maps: np.ndarray) -> tuple[float, int]:
    """The share of frames whose strongest cell is the agent's most common one, and how many distinct
    cells are ever the strongest: a mask that sharpens onto one place whatever the frame shows is
    sharp but says nothing about the frame."""
    strongest = maps.reshape(len(maps), -1).argmax(axis=1)
    counts = np.bincount(strongest)
    return float(counts.max() / len(strongest)), int((counts > 0).sum())


GRADIENT_METHODS = ("gradient", "smoothgrad", "vargrad")


def attention_gradients(checkpoint: Path, observation: np.ndarray) -> list[np.ndarray]:
    """|gradient|, SmoothGrad and VarGrad of the ``attention`` output on one observation, (H, W) each."""
    agent = load_checkpoint(checkpoint)
    explained = explain_agent(agent)
    inputs = agent.preprocess(observation[None])
    outputs = explained.outputs(["attention"])
    return [method_class(name)().attribute(explained, inputs, outputs)[0, 0].abs().numpy() for name in GRADIENT_METHODS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    runs = sorted(args.root.glob("lambda-*"), key=lambda p: float(p.name.removeprefix("lambda-")))
    coefs = [float(p.name.removeprefix("lambda-")) for p in runs]
    logs = [read_log(p / "log.csv") for p in runs]
    rows = [summary(log) for log in logs]
    observations, _ = sample_frames(runs[0] / "checkpoint.safetensors", FIXATION_FRAMES, every=10)
    fixations = [fixation(attention(run / "checkpoint.safetensors", observations)) for run in runs]

    print(
        "| lambda | steps | final mean return (last 100 episodes) | attention entropy, last 10% of updates (nats) "
        f"| frames whose strongest cell is the usual one (of {FIXATION_FRAMES}) | distinct strongest cells |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for coef, row, (share, distinct) in zip(coefs, rows, fixations):
        print(
            f"| {coef:g} | {row['steps']:,.0f} | {row['return']:.2f} | {row['entropy']:.3f} "
            f"| {share:.0%} | {distinct} |"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    positions = np.arange(len(coefs))
    left.bar(positions, [r["return"] for r in rows], color="tab:blue")
    left.set_xticks(positions, [f"{c:g}" for c in coefs])
    left.set_xlabel("attention entropy coefficient (lambda)")
    left.set_ylabel("mean return, last 100 episodes")
    middle.bar(positions, [r["entropy"] for r in rows], color="tab:orange")
    middle.set_xticks(positions, [f"{c:g}" for c in coefs])
    middle.set_xlabel("lambda")
    middle.set_ylabel("attention entropy (nats), last 10%")
    for coef, log in zip(coefs, logs):
        right.plot(log["global_step"], log["episode_return"], label=f"lambda {coef:g}")
    right.set_xlabel("environment steps")
    right.set_ylabel("mean return, last 100 episodes")
    right.legend()
    figure.tight_layout()
    figure.savefig(args.out / "seed-002-lambda.png", dpi=100)

    observations, frames = sample_frames(runs[0] / "checkpoint.safetensors", FRAMES)
    figure, axes = plt.subplots(len(runs), FRAMES, figsize=(2.2 * FRAMES, 2.6 * len(runs)), squeeze=False)
    for row, (coef, run) in enumerate(zip(coefs, runs)):
        maps = attention(run / "checkpoint.safetensors", observations)
        for column in range(FRAMES):
            axis = axes[row][column]
            axis.imshow(frames[column], cmap="gray" if frames[column].ndim == 2 else None)
            height, width = frames[column].shape[:2]
            axis.imshow(maps[column], cmap="inferno", alpha=0.55, extent=(0, width, height, 0), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(f"lambda {coef:g}")
    figure.tight_layout()
    figure.savefig(args.out / "seed-002-attention.png", dpi=80)

    titles = ("attention", "gradient", "SmoothGrad", "VarGrad")
    figure, axes = plt.subplots(len(runs), len(titles), figsize=(2.2 * len(titles), 2.4 * len(runs)), squeeze=False)
    for row, (coef, run) in enumerate(zip(coefs, runs)):
        checkpoint = run / "checkpoint.safetensors"
        maps = [attention(checkpoint, observations[:1])[0], *attention_gradients(checkpoint, observations[0])]
        for column, (title, values) in enumerate(zip(titles, maps)):
            axis = axes[row][column]
            axis.imshow(values, cmap="inferno")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title)
            if column == 0:
                axis.set_ylabel(f"lambda {coef:g}")
    figure.tight_layout()
    figure.savefig(args.out / "seed-002-gradients.png", dpi=80)


if __name__ == "__main__":
    main()
