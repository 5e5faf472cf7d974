"""Report-card measures benchmark (issue 21): our batched faithfulness and localisation measures
against Quantus 0.6.0's metrics computing the same numbers, in one process, on the same frames.

The job: the bundled agent's value output on ``--frames`` (64) CoinRun frames of its own rollout
(8 environments), 3 x 64 x 64; the maps are the value's input gradient summed over colour channels.
Quantus sees the agent as a module returning the value as a (B, 1) output, target 0, and is called
with ``abs=False, normalise=False`` (and ``softmax=False``), as
``tests/evaluation/test_quantus_agreement.py`` checks it computes our numbers. Four sections:

* deletion: our ``perturbation_curves(patch=8, steps=64, chunk=64)`` (8x8 regions ranked by the
  map's sum, the frames blurred with sigma ``BLUR_SIGMA`` as baseline) against ``RegionPerturbation(patch_size=8,
  regions_evaluation=64)`` given the same baseline through its ``perturb_func``. (``PixelFlipping``
  cannot compute a whole-pixel curve here: it asserts that ``features_in_step`` divides H x W = 4096,
  and moving whole RGB pixels needs a multiple of 3.)
* pointing: ``pointing_hits`` against ``PointingGame(weighted=False)``;
* mass share: ``mass_share`` against ``AttributionLocalisation(positive_attributions=True)``;
  both on seeded boxes (one rectangle a frame; the measures only read masks);
* MPRT: the whole cascade (every layer with ``reset_parameters``, output first: 18 for the IMPALA
  network), ``randomised_models`` + ``spearman`` against ``MPRT(layer_order="top_down")``, both
  sides explaining with the same input-gradient function.

Each section runs twice: with the agent's value (what a report costs), then with a stand-in network
of a few elementwise operations (:class:`ChannelMix`), so that the times are the measures' own work.
Each side runs once on 2 frames untimed (a warm-up), then on the job ``--repeats`` times, the fastest
kept. ``network`` is the time of the network evaluations a section needs, alone (both sides need
them, so no batching of the rest can remove it). Pass ``--threads 1`` on a machine shared with other
work: torch's OpenMP threads spin when oversubscribed, which slowed small operations tenfold here.

    .venv/bin/python benchmarks/report_card.py --threads 1              # 64 frames
    .venv/bin/python benchmarks/report_card.py --threads 1 --frames 16  # quicker

The last line is machine-readable (ratios: Quantus' time over ours per frame, > 1: ours faster;
``own_``: with the stand-in network; ``max_abs_diff``: the largest difference over the compared numbers):
RESULT report_card deletion_vs_quantus=<x> pointing_vs_quantus=<y> mass_share_vs_quantus=<z> \
mprt_vs_quantus=<w> total_vs_quantus=<t> own_deletion_vs_quantus=<a> own_mprt_vs_quantus=<b> \
own_total_vs_quantus=<c> max_abs_diff=<d>
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.config import TrajectoryConfig
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.evaluation import (
    BLUR_SIGMA,
    gaussian_blur,
    mass_share,
    perturbation_curves,
    pointing_hits,
    randomised_models,
    spearman,
)
from understanding_rl_vision.rollout import collect_trajectories

PATCH = 8
CHUNK = 64
"""Rows a network call in our curves: Quantus' batch here (the frames). On this CPU the IMPALA network
costs 2.5 to 3 ms a row at 16 to 64 rows and 3.9 ms at 256, the default ``chunk``."""


class Value(nn.Module):
    """The agent's value as a (B, 1) output: the shape Quantus' metrics index with the target."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[1].unsqueeze(1)


def input_gradient(model: nn.Module, inputs: Any, targets: Any = None, **_: Any) -> torch.Tensor:
    """(N, H, W): the value's input gradient summed over channels; both sides explain with it."""
    x = torch.as_tensor(np.asarray(inputs)).float() if not isinstance(inputs, torch.Tensor) else inputs.float()
    x = x.detach().clone().requires_grad_(True)
    model(x)[:, 0].sum().backward()
    assert x.grad is not None
    return x.grad.sum(dim=1)


def quantus_explain(model: nn.Module, inputs: Any, targets: Any, **_: Any) -> np.ndarray:
    return input_gradient(model, inputs).unsqueeze(1).numpy()


def replace_from(arr: np.ndarray, indices: np.ndarray, baseline: np.ndarray, **_: Any) -> np.ndarray:
    """Quantus' ``perturb_func``: the flattened rows take the baseline's values at ``indices``."""
    out = arr.copy()
    rows = np.arange(len(arr))[:, None]
    out[rows, indices] = baseline.reshape(len(arr), -1)[rows, indices]
    return out


def timed(run: Callable[[int], Any], frames: int, repeats: int) -> tuple[Any, float]:
    """(result on all frames, fastest ms per frame); ``run(n)`` works on the first n frames."""
    run(2)
    best, result = math.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run(frames)
        best = min(best, 1e3 * (time.perf_counter() - started) / frames)
    return result, best


Run = Callable[[int], Any]
"""One side's work on the first n frames of the job."""


@dataclass
class Job:
    inputs: torch.Tensor  # (N, 3, H, W) preprocessed frames
    maps: torch.Tensor  # (N, H, W) the agent's input-gradient maps
    baseline: torch.Tensor  # (N, 3, H, W) the blurred frames
    masks: torch.Tensor  # (N, H, W) bool, one seeded rectangle a frame


def make_job(frames: int) -> tuple[Job, nn.Module]:
    path = bundled_agent_path()
    if path is None:
        raise SystemExit("the benchmark uses the bundled demo agent, which this install lacks")
    agent = load_checkpoint(path)
    trajectories = collect_trajectories(
        agent, TrajectoryConfig(num_envs=8, num_steps=math.ceil(frames / 8)), seed=0, progress=False
    )
    observations = trajectories.observations.reshape(-1, *agent.observation_shape)[:frames]
    inputs = agent.preprocess(observations).float()
    model = Value(agent.model).eval()
    n, _, h, w = inputs.shape
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    corners = torch.randint(0, h - 16, (n, 2), generator=generator)
    sizes = torch.randint(4, 16, (n, 2), generator=generator)
    for i, ((top, left), (rows, cols)) in enumerate(zip(corners.tolist(), sizes.tolist())):
        masks[i, top : top + rows, left : left + cols] = True
    return Job(inputs, input_gradient(model, inputs), gaussian_blur(inputs, BLUR_SIGMA), masks), model


class ChannelMix(nn.Module):
    """``mean(weight_c * tanh(scale_c * x + shift_c))`` over channels and pixels, as (B, 1): a stand-in
    network of a few elementwise operations, with layers to randomise and a gradient whose sign varies
    over pixels."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.empty(channels))
        self.shift = nn.Parameter(torch.empty(channels))
        self.weight = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for parameter in (self.scale, self.shift, self.weight):
                nn.init.normal_(parameter, std=2.0)
            signs = torch.tensor([(-1.0) ** c for c in range(len(self.weight))])
            self.weight.copy_(
                self.weight.abs() * signs
            )  # mixed signs, however drawn: Quantus refuses all-negative maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def per_channel(p: torch.Tensor) -> torch.Tensor:
            return p.view(1, -1, 1, 1)

        mixed = per_channel(self.weight) * torch.tanh(per_channel(self.scale) * x + per_channel(self.shift))
        return mixed.mean(dim=(1, 2, 3)).unsqueeze(1)


def stand_in() -> nn.Module:
    """Two :class:`ChannelMix` layers' worth of work at most: with it, the times are the measures' own."""
    torch.manual_seed(0)
    return nn.Sequential(ChannelMix()).eval()


def sections(job: Job, model: nn.Module, quantus: Any) -> dict[str, tuple[Run, Run, Run | None]]:
    """Per measure: (ours, Quantus', the network evaluations it needs or None)."""
    inputs, maps, baseline, masks = job.inputs, job.maps, job.baseline, job.masks
    n, _, h, w = inputs.shape
    x, a, s = inputs.numpy(), maps.unsqueeze(1).numpy(), masks.unsqueeze(1).numpy().astype(float)
    y = np.zeros(n, dtype=int)
    regions = (h // PATCH) * (w // PATCH)

    def value(images: torch.Tensor) -> torch.Tensor:
        return model(images)[:, 0]

    def ours_deletion(k: int) -> np.ndarray:
        curves = perturbation_curves(
            value, inputs[:k], maps[:k], baseline[:k], regions, "deletion", chunk=CHUNK, patch=PATCH
        )
        return (curves[:, :1] - curves[:, 1:]).numpy()

    def quantus_deletion(k: int) -> np.ndarray:
        metric = quantus.RegionPerturbation(
            patch_size=PATCH,
            regions_evaluation=regions,
            abs=False,
            normalise=False,
            perturb_func=replace_from,
            perturb_func_kwargs={"baseline": baseline[:k].numpy()},
            disable_warnings=True,
        )
        return np.array(metric(model=model, x_batch=x[:k], y_batch=y[:k], a_batch=a[:k], softmax=False, batch_size=k))

    def model_deletion(k: int) -> None:
        rows = k * (regions + 1)
        with torch.no_grad():
            for start in range(0, rows, CHUNK):
                value(inputs[torch.arange(start, min(start + CHUNK, rows)) % k])

    def ours_pointing(k: int) -> np.ndarray:
        return pointing_hits(maps[:k], masks[:k]).numpy().astype(float)

    def quantus_pointing(k: int) -> np.ndarray:
        metric = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)
        return np.array(metric(model=model, x_batch=x[:k], y_batch=y[:k], a_batch=a[:k], s_batch=s[:k])).astype(float)

    def ours_mass(k: int) -> np.ndarray:
        return mass_share(maps[:k], masks[:k]).numpy()

    def quantus_mass(k: int) -> np.ndarray:
        metric = quantus.AttributionLocalisation(
            positive_attributions=True, abs=False, normalise=False, disable_warnings=True
        )
        return np.array(metric(model=model, x_batch=x[:k], y_batch=y[:k], a_batch=a[:k], s_batch=s[:k]))

    def ours_mprt(k: int) -> np.ndarray:
        scores = [spearman(maps[:k], input_gradient(model, inputs[:k]))]
        scores += [spearman(maps[:k], input_gradient(m, inputs[:k])) for _, m in randomised_models(model, seed=42)]
        return torch.stack(scores).numpy()

    def quantus_mprt(k: int) -> np.ndarray:
        metric = quantus.MPRT(layer_order="top_down", seed=42, abs=False, normalise=False, disable_warnings=True)
        scores = metric(
            model=model, x_batch=x[:k], y_batch=y[:k], a_batch=a[:k], explain_func=quantus_explain, batch_size=k
        )
        return np.array(list(scores.values()))

    def model_mprt(k: int) -> None:
        for _, m in [("original", model), *randomised_models(model, seed=42)]:
            input_gradient(m, inputs[:k])

    return {
        "deletion": (ours_deletion, quantus_deletion, model_deletion),
        "pointing": (ours_pointing, quantus_pointing, None),
        "mass_share": (ours_mass, quantus_mass, None),
        "mprt": (ours_mprt, quantus_mprt, model_mprt),
    }


def race(title: str, measures: dict[str, tuple[Run, Run, Run | None]], frames: int, repeats: int) -> dict[str, Any]:
    """Print one table; return each measure's ratio, the total ratio and the largest difference."""
    print(title)
    header = (
        f"{'measure':<12} {'ours ms/frame':>13} {'Quantus ms/frame':>16} {'ratio':>8} "
        f"{'network ms/frame':>16} {'max abs diff':>12}"
    )
    print(header)
    print("-" * len(header))
    ratios: dict[str, Any] = {}
    ours_total = peer_total = worst = 0.0
    for name, (ours, peer, network) in measures.items():
        ours_result, ours_ms = timed(ours, frames, repeats)
        peer_result, peer_ms = timed(peer, frames, repeats)
        network_ms = "-" if network is None else f"{timed(network, frames, repeats)[1]:.3f}"
        diff = float(np.nanmax(np.abs(ours_result - peer_result)))
        worst = max(worst, diff)
        ratios[name] = peer_ms / ours_ms
        ours_total += ours_ms
        peer_total += peer_ms
        print(f"{name:<12} {ours_ms:13.3f} {peer_ms:16.3f} {ratios[name]:7.2f}x {network_ms:>16} {diff:12.2e}")
    ratios["total"] = peer_total / ours_total
    ratios["diff"] = worst
    print(f"{'total':<12} {ours_total:13.3f} {peer_total:16.3f} {ratios['total']:7.2f}x")
    print()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64, help="frames evaluated (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs a side, the fastest kept (default 3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides")
    args = parser.parse_args()
    if args.frames < 2 or args.repeats < 1:
        parser.error("--frames must be >= 2 and --repeats >= 1")
    torch.set_num_threads(args.threads)
    os.environ["PYTEST"] = "1"  # Quantus' progress bars stay off
    warnings.simplefilter("ignore")
    import quantus

    job, agent_value = make_job(args.frames)
    n, _, h, w = job.inputs.shape
    print(
        f"job: {n} CoinRun frames of the bundled agent (3x{h}x{w}), input-gradient maps of the value; "
        f"torch {torch.__version__}, quantus {quantus.__version__}, {torch.get_num_threads()} threads for both sides\n"
    )
    agent = race("the agent's value:", sections(job, agent_value, quantus), n, args.repeats)
    own = race("the measures' own work (a stand-in network):", sections(job, stand_in(), quantus), n, args.repeats)
    print(
        f"RESULT report_card deletion_vs_quantus={agent['deletion']:.2f} pointing_vs_quantus={agent['pointing']:.2f} "
        f"mass_share_vs_quantus={agent['mass_share']:.2f} mprt_vs_quantus={agent['mprt']:.2f} "
        f"total_vs_quantus={agent['total']:.2f} own_deletion_vs_quantus={own['deletion']:.2f} "
        f"own_mprt_vs_quantus={own['mprt']:.2f} own_total_vs_quantus={own['total']:.2f} "
        f"max_abs_diff={max(agent['diff'], own['diff']):.2e}"
    )


if __name__ == "__main__":
    main()
