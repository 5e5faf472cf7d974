"""Plot a training run's log.csv (episode return and level completion against steps) as a PNG.

    python tools/plot_training_log.py runs/demo-coinrun/log.csv docs/demo-agent-curve.png \
        --random-return 3.3

Needs matplotlib (the ``dev`` extra); the package itself does not.
"""

from __future__ import annotations

import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_log(path: str) -> dict[str, list[float]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean, so early points are not pulled towards later ones."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("png")
    parser.add_argument("--random-return", type=float, help="draw the random policy's mean return")
    parser.add_argument("--window", type=int, default=10, help="updates to average over")
    parser.add_argument("--title", default="CoinRun (easy), IMPALA CNN, PPO", help="the return panel's title")
    args = parser.parse_args()

    log = read_log(args.log)
    steps = [s / 1e6 for s in log["global_step"]]
    fig, (ret_ax, done_ax) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    ret_ax.plot(steps, log["episode_return"], color="#bbb", linewidth=0.8, label="per update")
    ret_ax.plot(
        steps, smooth(log["episode_return"], args.window), color="#1f77b4", label=f"mean of {args.window} updates"
    )
    if args.random_return is not None:
        ret_ax.axhline(args.random_return, color="#d62728", linestyle="--", label="random policy")
    ret_ax.set(
        xlabel="environment steps (millions)",
        ylabel="episode return (last 100 episodes)",
        title=args.title,
    )
    ret_ax.legend(loc="lower right")
    done_ax.plot(steps, [100 * v for v in smooth(log["level_completion"], args.window)], color="#2ca02c")
    done_ax.set(xlabel="environment steps (millions)", ylabel="level completion (%)", ylim=(0, 100))
    fig.savefig(args.png, dpi=110)
    print(f"wrote {args.png}: {len(steps)} updates, {steps[-1]:.2f}M steps")


if __name__ == "__main__":
    main()
