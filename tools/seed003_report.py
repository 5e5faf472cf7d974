"""Seed 003's measurements on one agent, reported: the generator-goggles table (the agent's score on
real frames, and through each generator's reconstructions), the novelty table of generated states,
and strips of generated states for each target next to their nearest training frames.

    python tools/seed003_report.py bundled:coinrun --generators full=runs/states/coinrun-full \\
        saliency=runs/states/coinrun-saliency plain=runs/states/coinrun-plain \\
        --targets high-value,low-value,decisive,action:RIGHT,action:LEFT --out docs/seeds --name coinrun

Each generator folder is a ``states train`` run for the agent. The strips and the novelty table use
the first generator named; novelty compares each generated state with the nearest of that
generator's own training frames (``frames.npz``), as the seed does. Prints the Markdown tables
docs/seeds.md shows and writes ``seed-003-NAME-states.png``; with ``--snapshots``, also the goggles of
the first generator's copies kept every few epochs (``--snapshot-every``), against training time.
Needs matplotlib (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from understanding_rl_vision.agents import load_agent
from understanding_rl_vision.agents.formats import checkpoint_identity
from understanding_rl_vision.common.images import viewable
from understanding_rl_vision.config import StatesConfig
from understanding_rl_vision.demo import resolve_checkpoint
from understanding_rl_vision.states import load_generator, parse_targets, sample_states
from understanding_rl_vision.states.measures import (
    differing_share,
    goggles_score,
    nearest_by_energy,
    nearest_by_pixels,
    novelty_table,
    target_energies,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--generators", nargs="+", required=True, help="NAME=DIR, the first is used for the strips")
    parser.add_argument("--targets", default="high-value,low-value,decisive")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--count", type=int, default=6, help="states per target in the strips")
    parser.add_argument("--novelty-count", type=int, default=64, help="states per target in the novelty table")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("docs/seeds"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--skip-goggles", action="store_true")
    parser.add_argument("--snapshots", action="store_true", help="goggles of the first generator's kept copies")
    args = parser.parse_args()

    path = Path(resolve_checkpoint(args.checkpoint))
    agent, identity = load_agent(path), checkpoint_identity(path)
    generators = dict(item.split("=", 1) for item in args.generators)
    results: dict[str, object] = {}

    if not args.skip_goggles:
        print("| agent sees | mean return | std | share of real | generator: epochs, held-out PSNR, action kept |")
        print("| --- | --- | --- | --- | --- |")
        real = goggles_score(agent, None, args.episodes, num_envs=args.num_envs, baseline=True)
        print(f"| real frames | {real.mean_return:.2f} | {real.std_return:.2f} | 100% | |")
        results["real"] = real.to_dict()
        for name, folder in generators.items():
            vae, header = load_generator(folder, identity)
            seen = goggles_score(agent, vae, args.episodes, num_envs=args.num_envs)
            extra = header["extra"]
            share = seen.mean_return / real.mean_return if real.mean_return else float("nan")
            print(
                f"| {name} | {seen.mean_return:.2f} | {seen.std_return:.2f} | {100 * share:.0f}% | "
                f"{extra['epochs']}, {extra['heldout_psnr']:.1f} dB, {100 * extra['heldout_action_agreement']:.0f}% |"
            )
            results[name] = {"goggles": seen.to_dict(), "header": header}
        print(f"random policy: {real.random_mean_return:.2f}")

    first = next(iter(generators.values()))
    if args.snapshots:  # the first generator against training time: its kept copies, epoch by epoch
        with open(Path(first) / "log.csv", newline="") as handle:
            log = {int(row["epoch"]): row for row in csv.DictReader(handle)}
        print("\n| epochs | training time | held-out PSNR | salient-pixel PSNR | action kept | goggles return |")
        print("| --- | --- | --- | --- | --- | --- |")
        for snapshot in sorted(
            Path(first).glob("generator-epoch-*.safetensors"), key=lambda p: int(p.stem.split("-")[-1])
        ):
            epoch = int(snapshot.stem.split("-")[-1])
            vae, _ = load_generator(snapshot, identity)
            seen = goggles_score(agent, vae, args.episodes, num_envs=args.num_envs)
            row = log[epoch]
            print(
                f"| {epoch} | {float(row['seconds']) / 60:.1f} min | {float(row['heldout_psnr']):.1f} dB | "
                f"{float(row['heldout_saliency_psnr']):.1f} dB | {100 * float(row['heldout_action_agreement']):.0f}% | "
                f"{seen.mean_return:.2f} ± {seen.std_return:.2f} |"
            )
            results[f"epoch {epoch}"] = seen.to_dict()

    vae, _ = load_generator(first, identity)
    with np.load(Path(first) / "frames.npz") as data:
        frames = data["observations"]
    targets = parse_targets(agent, args.targets.split(","), 1.0)
    rng = np.random.default_rng(0)
    figure, axes = plt.subplots(len(targets), 3 * args.count, figsize=(1.2 * 3 * args.count, 1.45 * len(targets)))
    novelty_rows = {}
    for row, target in enumerate(targets):
        starts = frames[rng.choice(len(frames), args.novelty_count, replace=False)]
        settings = StatesConfig(state_count=args.novelty_count, state_steps=args.steps)
        made = sample_states(vae, agent, target, settings, starts)
        nearest, _ = nearest_by_pixels(made.observations, frames)
        shares = differing_share(made.observations, frames[nearest])
        novelty_rows[target.name] = (novelty_table(shares), float(shares.mean()), made)
        real_energy = target_energies(agent, target, frames)
        by_energy = nearest_by_energy(made.energy[: args.count], real_energy)
        for i in range(args.count):
            shown = [
                (made.observations[i], f"{made.energy[i]:.2f}"),
                (frames[nearest[i]], f"px {100 * shares[i]:.0f}%"),
                (frames[by_energy[i]], f"{real_energy[by_energy[i]]:.2f}"),
            ]
            for j, (image, caption) in enumerate(shown):
                axis = axes[row, 3 * i + j]
                axis.imshow(viewable(image[None])[0])
                axis.set_xticks([])
                axis.set_yticks([])
                axis.set_xlabel(caption, fontsize=6, labelpad=1)
                if j == 0:
                    for side in axis.spines.values():
                        side.set_edgecolor("#d62728")
                        side.set_linewidth(1.5)
        axes[row, 0].set_ylabel(target.title.replace(" ", "\n", 1), fontsize=7)
    figure.suptitle(
        "generated state (red, its energy) | nearest training frame in pixels (its differing pixels) | "
        "nearest in energy (its energy)",
        fontsize=8,
    )
    figure.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    strip = args.out / f"seed-003-{args.name}-states.png"
    figure.savefig(strip, dpi=110)
    print(f"wrote {strip}")

    thresholds = next(iter(novelty_rows.values()))[0]
    columns = " | ".join(f"> {100 * t:.0f}%" for t in thresholds)
    print(f"\n| target | {columns} | mean share | energy start -> end |")
    print("| --- " * (len(thresholds) + 3) + "|")
    for name, (table, mean, made) in novelty_rows.items():
        cells = " | ".join(f"{100 * v:.0f}%" for v in table.values())
        print(f"| {name} | {cells} | {100 * mean:.0f}% | {made.start_energy.mean():.2f} -> {made.energy.mean():.2f} |")
        results[f"novelty {name}"] = {"table": {str(k): v for k, v in table.items()}, "mean": mean}
    (args.out / f"seed-003-{args.name}.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
