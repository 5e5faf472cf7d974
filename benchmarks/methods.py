"""Explanation methods benchmark: each of ours against the implementation a user would otherwise run,
in one process, on the same frames.

The job: the bundled agent, 256 CoinRun frames from its own rollout (8 environments, the agent acting
as in ``run``), two outputs: the value and the action it took at each frame. Three pairs:

* Grad-CAM at layer 3b (the last residual block, 8x8) against pytorch-grad-cam 1.5.7's ``GradCAM``,
  used as its users do: the agent wrapped as a module returning the output vector ``[value,
  logits]``, one ``cam(input_tensor=batch, targets=[ClassifierOutputTarget(entry), ...])`` call per
  output and batch, one target per frame (the taken action's logit for ``action``). Its result is
  also upsampled to 64x64 and min-max scaled (ours is neither; the page scales). The maps are
  compared before that step, as ``tests/attribution/test_cam.py`` does, relative to each output's
  largest map value over all frames.
* SmoothGrad (16 samples, noise 0.15 of the frame's range) against Captum's
  ``NoiseTunnel(Saliency(forward))`` with ``nt_type="smoothgrad"``, ``nt_samples=16``, ``abs=False``,
  ``stdevs`` 0.15 times the batch's value range, one call per output and batch, summed over colour
  channels as ours is. ``nt_samples_batch_size`` is left at Captum's default (None: all 16 samples
  in one pass, 64 x 16 = 1,024 rows, as ours). The noise draws differ, so the maps are not
  compared (the tests compare them with Captum fed our draws); their mean per-frame correlation is
  printed as a sanity check.
* Perturbation saliency (radius 5, stride 5, blur 3: 169 masks a frame) against the seed-001
  pipeline: per frame, xaitk-saliency 0.15.0's ``SlidingRadial`` masks, ``occlude_image_batch``
  with the blurred frame (scipy's ``gaussian_filter``) as fill, one model call per perturbed image,
  and ``SquaredDifferenceScoring.generate`` per output. Maps are compared before xaitk's min-max
  rescaling (``weight_regions_by_scalar`` on the same predictions), relative to each frame's largest
  value, as ``tests/attribution/test_perturbation.py`` does. The peer is slow (170 single-image
  model calls a frame, about 13 s a frame here: an hour for 256), so it runs on the first
  ``--seed001-frames`` frames (16 by default). It handles frames one at a time, so its time per
  frame does not depend on how many it runs; every time is reported per frame.

A fourth job, ``perturbation-lstm`` (issue 17): perturbation saliency on a recurrent agent, seed
001's A3C LSTM network (the ``lstm`` architecture) on its 80x80 grey ALE Breakout frames, each frame
explained given the state stored for it, outputs ``actor`` (all logits as one vector) and ``value``
(the critic), as the seed computes both. The agent is the checkpoint ``--lstm-checkpoint`` (an
``lstm`` agent; a trained one when there is one) or else a seeded random ``lstm`` agent (its actor
head drawn at gain 1, as the tests do); ``--lstm-frames`` frames (32) of one environment's rollout,
with the states entering them. The peer is the seed-001 pipeline as the seed writes it
(``tests/seed001_pipeline.py``): per frame, the seed's own ``NNPolicy`` module holding the agent's
weights, ``SlidingRadial(radius=(5, 5), stride=(5, 5), sigma=(5, 5))`` masks (256 a frame),
``occlude_image_batch`` with ``gaussian_filter(frame, sigma=3)`` as fill, one model call per
perturbed image with the frame's stored ``(hx, cx)``, and ``SquaredDifferenceScoring`` for the
actor and for the critic. The peer runs under ``torch.no_grad()``, which the seed omits (that only
makes it faster; the seed as written is timed on 2 frames and printed in the note), and one frame
after another (the seed's ``app`` spreads frames over a thread pool; torch's threads are used
within each call instead). Maps are compared before the min-max rescaling, relative to each
frame's largest value, as ``tests/attribution/test_perturbation_recurrent.py`` does.

Both sides get the same batches of ``--batch`` frames (64; ours chunk further inside) and the same
``torch.set_num_threads`` (``--threads``, default torch's own choice; numpy and scipy keep theirs).
Each side runs once on 2 frames untimed (a warm-up), then on the job, timed: once, except
Grad-CAM (seconds a side), timed 5 times in turn with the fastest of each side kept.

    .venv/bin/python benchmarks/methods.py                       # 256 frames, the seed-001 peer on 16
    .venv/bin/python benchmarks/methods.py --seed001-frames 256  # the seed-001 peer on all 256 (an hour)
    .venv/bin/python benchmarks/methods.py --quick               # 32 frames, the slow peer on 4
    .venv/bin/python benchmarks/methods.py --methods perturbation-lstm --lstm-frames 32  # issue 17 only

The last line is machine-readable (ratios are the peer's time over ours per frame, >1: ours faster;
``max_rel_diff`` is the largest over the compared maps; ``nan`` where a section did not run):
RESULT methods gradcam_vs_pytorch_gradcam=<x> smoothgrad_vs_captum=<y> perturbation_vs_seed001=<z> max_rel_diff=<d> \
perturbation_lstm_vs_seed001=<w> perturbation_lstm_max_rel_diff=<e>
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_libraries import OutputVector, cam_before_scaling, import_pytorch_grad_cam  # the tests' own

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.attribution import ExplainedModel, explain_agent, resolve_layers
from understanding_rl_vision.attribution.methods import REGISTRY
from understanding_rl_vision.attribution.methods.cam import GradCAM
from understanding_rl_vision.attribution.methods.noise_tunnel import SmoothGrad
from understanding_rl_vision.config import TrajectoryConfig
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.rollout import collect_trajectories

OUTPUT_NAMES = ("value", "action")
LSTM_OUTPUT_NAMES = ("actor", "value")
SECTIONS = ("gradcam", "smoothgrad", "perturbation", "perturbation-lstm")
CAM_LAYER = "3b"
SAMPLES = 16
GRADCAM_REPEATS = 5
"""Grad-CAM takes seconds a side: timed this many times, the fastest kept (the others once)."""


Batch = tuple[slice, torch.Tensor, torch.Tensor]
"""Rows of the job, their preprocessed frames and the actions taken there."""


@dataclass
class Row:
    method: str
    peer: str
    ours_ms: float  # per frame
    peer_ms: float  # per frame
    max_rel_diff: float | None  # None: not comparable
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.peer_ms / self.ours_ms


@dataclass
class Job:
    agent: Any
    explained: ExplainedModel
    inputs: torch.Tensor  # (N, 3, 64, 64) preprocessed
    actions: torch.Tensor  # (N,) the actions taken
    entries: dict[str, list[int]]  # per output, per frame: the entry of [value, logits] it selects
    batch: int
    states: torch.Tensor | None = None  # (N, S) a recurrent agent's state entering each frame

    def batches(self, frames: int | None = None) -> list[Batch]:
        """The first ``frames`` frames (all by default) in batches of ``batch``."""
        n = len(self.inputs) if frames is None else frames
        rows = [slice(i, min(i + self.batch, n)) for i in range(0, n, self.batch)]
        return [(r, self.inputs[r], self.actions[r]) for r in rows]


def race(
    job: Job,
    ours: Callable[[list[Batch]], Any],
    peer: Callable[[list[Batch]], Any],
    peer_frames: int | None = None,
    repeats: int = 1,
):
    """Each side once on 2 frames (untimed warm-up), then on the job's batches, timed: ``repeats``
    times in turn (ours, peer, ours, ...), keeping each side's fastest.

    Returns (ours' result, ours' ms per frame, the peer's result, its ms per frame); the peer runs on
    the first ``peer_frames`` frames (all by default)."""
    warm_up = [(slice(0, 2), job.inputs[:2], job.actions[:2])]
    ours(warm_up)
    peer(warm_up)
    n, m = len(job.inputs), peer_frames or len(job.inputs)
    ours_ms = peer_ms = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        ours_result = ours(job.batches())
        ours_ms = min(ours_ms, 1e3 * (time.perf_counter() - started) / n)
        started = time.perf_counter()
        peer_result = peer(job.batches(m))
        peer_ms = min(peer_ms, 1e3 * (time.perf_counter() - started) / m)
    return ours_result, ours_ms, peer_result, peer_ms


def make_job(frames: int, batch: int) -> Job:
    path = bundled_agent_path()
    if path is None:
        raise SystemExit("the benchmark uses the bundled demo agent, which this install lacks")
    agent = load_checkpoint(path)
    trajectories = collect_trajectories(
        agent, TrajectoryConfig(num_envs=8, num_steps=math.ceil(frames / 8)), seed=0, progress=False
    )
    observations = trajectories.observations.reshape(-1, *agent.observation_shape)[:frames]
    actions = torch.from_numpy(trajectories.actions.reshape(-1)[:frames])
    inputs = agent.preprocess(observations)
    explained = explain_agent(agent)
    entries = {
        "value": [explained.entries.index("value")] * frames,
        "action": [explained.entries.index(f"logit:{agent.action_names[a]}") for a in actions.tolist()],
    }
    return Job(agent, explained, inputs, actions, entries, batch)


def make_lstm_job(frames: int, batch: int, checkpoint: str | None) -> Job:
    """Seed 001's Breakout frames of an ``lstm`` agent (the checkpoint, or a seeded random one) and
    the states entering them, from one environment's rollout."""
    from seed001_pipeline import breakout_lstm_agent

    from understanding_rl_vision.agents.recurrent import GreydanusLSTM
    from understanding_rl_vision.envs.spec import parse_env_id

    agent = load_checkpoint(checkpoint) if checkpoint else breakout_lstm_agent(seed=0)
    if not isinstance(agent.model, GreydanusLSTM):
        raise SystemExit(f"{checkpoint} is not an 'lstm' agent (seed 001's network), which the seed's pipeline runs")
    spec = None
    if agent.env_spec is None:
        spec = parse_env_id("ALE/Breakout-v5", observation="greydanus", frame_stack=1, screen_size=80)
    trajectories = collect_trajectories(
        agent, TrajectoryConfig(num_envs=1, num_steps=frames), env_spec=spec, seed=0, progress=False
    )
    assert trajectories.states is not None
    inputs = agent.preprocess(trajectories.observations[0])
    states = torch.from_numpy(trajectories.states[0])
    actions = torch.from_numpy(trajectories.actions[0])
    return Job(agent, explain_agent(agent, states), inputs, actions, {}, batch, states)


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.abs(np.asarray(ours, dtype=np.float64) - reference).max() / np.abs(reference).max())


def mean_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over outputs and frames of the Pearson correlation of two (K, N, H, W) map stacks."""
    pairs = zip(a.flatten(0, 1).flatten(1), b.flatten(0, 1).flatten(1))
    return float(torch.stack([torch.corrcoef(torch.stack([x, y]))[0, 1] for x, y in pairs]).mean())


def gradcam(job: Job) -> Row:
    pytorch_grad_cam = import_pytorch_grad_cam()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    explained, outputs = job.explained, job.explained.outputs(list(OUTPUT_NAMES))
    (resolved,) = resolve_layers(job.agent.model, job.inputs[:1], [CAM_LAYER])
    layer = resolved.name
    module = dict(job.agent.model.named_modules())[layer]
    method = GradCAM()

    def ours(batches: list[Batch]) -> torch.Tensor:
        return torch.cat([method.attribute(explained, x, outputs, layer, actions=a) for _, x, a in batches], 1)

    def targets(name: str, rows: slice) -> list:
        return [ClassifierOutputTarget(i) for i in job.entries[name][rows]]

    cam = pytorch_grad_cam.GradCAM(model=OutputVector(job.agent), target_layers=[module])

    def peer(batches: list[Batch]) -> None:
        for rows, x, _ in batches:
            for name in OUTPUT_NAMES:
                cam(input_tensor=x, targets=targets(name, rows))

    try:
        ours_maps, ours_ms, _, peer_ms = race(job, ours, peer, repeats=GRADCAM_REPEATS)
        # Untimed: the same calls again, each map read before pytorch-grad-cam's upsampling and scaling.
        raw: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUT_NAMES}
        for rows, x, _ in job.batches():
            for name in OUTPUT_NAMES:
                raw[name].append(np.maximum(cam_before_scaling(cam, x, targets(name, rows))[1], 0))
    finally:
        cam.activations_and_grads.release()
        job.agent.model.zero_grad()
    difference = max(
        relative_difference(ours_maps[k].numpy(), np.concatenate(raw[name])) for k, name in enumerate(OUTPUT_NAMES)
    )
    return Row(f"Grad-CAM ({CAM_LAYER})", "pytorch-grad-cam GradCAM", ours_ms, peer_ms, difference)


def smoothgrad(job: Job) -> Row:
    from captum.attr import NoiseTunnel, Saliency

    explained, outputs = job.explained, job.explained.outputs(list(OUTPUT_NAMES))
    method = SmoothGrad(noise_samples=SAMPLES)
    tunnel = NoiseTunnel(Saliency(explained.forward))

    def ours(batches: list[Batch], method: SmoothGrad = method) -> torch.Tensor:
        return torch.cat([method.attribute(explained, x, outputs, actions=a) for _, x, a in batches], 1)

    def peer(batches: list[Batch]) -> torch.Tensor:
        maps = []
        for rows, x, _ in batches:
            sigma = method.noise_level * float(x.max() - x.min())
            per_output = [
                tunnel.attribute(
                    x,
                    nt_type="smoothgrad",
                    nt_samples=SAMPLES,
                    stdevs=sigma,
                    target=torch.tensor(job.entries[name][rows]),
                    abs=False,
                )
                .detach()
                .sum(dim=1)
                for name in OUTPUT_NAMES
            ]
            maps.append(torch.stack(per_output))
        return torch.cat(maps, 1)

    ours_maps, ours_ms, peer_maps, peer_ms = race(job, ours, peer)
    first = job.batches()[:1]
    floor = mean_correlation(ours_maps[:, first[0][0]], ours(first, SmoothGrad(noise_samples=SAMPLES, noise_seed=1)))
    note = (
        f"maps not compared (different noise draws); mean per-frame correlation ours-Captum "
        f"{mean_correlation(ours_maps, peer_maps):.3f}, ours-ours with another seed {floor:.3f} (first batch)"
    )
    return Row(f"SmoothGrad ({SAMPLES} samples)", "Captum NoiseTunnel(Saliency)", ours_ms, peer_ms, None, note)


def perturbation(job: Job, peer_frames: int) -> Row | None:
    if "perturbation" not in REGISTRY:
        print("perturbation: no method is registered as 'perturbation' in this checkout; section skipped")
        return None
    from scipy.ndimage import gaussian_filter
    from xaitk_saliency.impls.gen_classifier_conf_sal.squared_difference_scoring import SquaredDifferenceScoring
    from xaitk_saliency.impls.perturb_image.sliding_radial import SlidingRadial
    from xaitk_saliency.utils.masking import occlude_image_batch, weight_regions_by_scalar

    explained, outputs = job.explained, job.explained.outputs(list(OUTPUT_NAMES))
    method = REGISTRY["perturbation"]()
    radius, stride, blur = method.perturbation_radius, method.perturbation_stride, method.perturbation_blur
    perturber = SlidingRadial(radius=(radius, radius), stride=(stride, stride), sigma=(radius, radius))

    def ours(batches: list[Batch]) -> torch.Tensor:
        return torch.cat([method.attribute(explained, x, outputs, actions=a) for _, x, a in batches], 1)

    def model(image: np.ndarray) -> np.ndarray:
        """One HWC float image in, its output vector [value, logits] out: one model call."""
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
            return explained.forward(x)[0].numpy()

    def peer(batches: list[Batch]) -> list[tuple[np.ndarray, np.ndarray]]:
        predictions = []
        for rows, x, _ in batches:
            for n, frame in zip(range(rows.start, rows.stop), x.numpy()):
                image = frame.transpose(1, 2, 0)  # HWC, as xaitk takes images
                kept = perturber.perturb(image)  # 1 - mask: the part of the frame kept
                fill = gaussian_filter(image, sigma=(blur, blur, 0))  # each channel on its own
                reference = model(image)
                changed = np.stack([model(p) for p in occlude_image_batch(image, kept, fill=fill)])
                for name in OUTPUT_NAMES:
                    column = [job.entries[name][n]]
                    SquaredDifferenceScoring().generate(reference[column], changed[:, column], kept)
                predictions.append((reference, changed))
        return predictions

    ours_maps, ours_ms, predictions, peer_ms = race(job, ours, peer, peer_frames)
    # Untimed: the maps before SquaredDifferenceScoring's min-max rescaling, from the same predictions.
    kept = perturber.perturb(job.inputs[0].numpy().transpose(1, 2, 0))  # the same for every 64x64 frame
    difference = 0.0
    for n, (reference, changed) in enumerate(predictions):
        for k, name in enumerate(OUTPUT_NAMES):
            column = [job.entries[name][n]]
            diff = 0.5 * ((reference[column] - changed[:, column]) ** 2).sum(axis=1, keepdims=True)
            expected = weight_regions_by_scalar(diff, kept)[0]
            difference = max(difference, relative_difference(ours_maps[k, n].numpy(), expected))
    masks = len(kept)
    flops, peak = forward_flops(explained, job.inputs[:1]), matmul_peak()
    rate = (masks + 1) * flops / (ours_ms / 1e3)
    return Row(
        f"Perturbation (r{radius:g} s{stride} b{blur:g})",
        "seed-001: xaitk SlidingRadial, 1 call/image",
        ours_ms,
        peer_ms,
        difference,
        f"the peer ran on the first {peer_frames} of {len(job.inputs)} frames; {masks} masks a frame, "
        f"{flops / 1e6:.1f} MFLOP a forward pass: ours at {rate / 1e9:.0f} GFLOP/s, fp32 matmul peak "
        f"{peak / 1e9:.0f} GFLOP/s, so at most {peer_ms / ((masks + 1) * flops / peak * 1e3):.1f}x the peer "
        "with float32 maps",
    )


def perturbation_lstm(job: Job) -> Row | None:
    if "perturbation" not in REGISTRY:
        print("perturbation-lstm: no method is registered as 'perturbation' in this checkout; section skipped")
        return None
    from seed001_pipeline import before_rescaling, gen_sal_maps, seed_policy, split_state
    from seed001_pipeline import perturber as sliding_radial
    from xaitk_saliency.impls.gen_classifier_conf_sal.squared_difference_scoring import SquaredDifferenceScoring

    assert job.states is not None
    explained, outputs = job.explained, job.explained.outputs(list(LSTM_OUTPUT_NAMES))
    method = REGISTRY["perturbation"]()
    radius, stride, blur = method.perturbation_radius, method.perturbation_stride, method.perturbation_blur
    perturber = sliding_radial(radius, stride)
    policy = seed_policy(job.agent)  # the seed's own module, holding the agent's weights
    frames = job.inputs.numpy()

    def ours(batches: list[Batch]) -> torch.Tensor:
        return torch.cat([method.attribute(explained.on(rows), x, outputs) for rows, x, _ in batches], 1)

    def seed(rows: range) -> list:
        """The seed's gen_sal_maps on each frame: actor and critic maps, rescaled as the seed has them."""
        predictions = []
        for n in rows:
            hx, cx = split_state(job.states[n])
            scoring = SquaredDifferenceScoring()
            predictions.append(gen_sal_maps(policy, frames[n, 0], hx, cx, perturber, scoring, blur)[2])
        return predictions

    def peer(batches: list[Batch]) -> list:
        with torch.no_grad():
            return [p for rows, _, _ in batches for p in seed(range(rows.start, rows.stop))]

    ours_maps, ours_ms, predictions, peer_ms = race(job, ours, peer)
    started = time.perf_counter()
    seed(range(2))  # as the seed writes it: with autograd recording every call
    as_written_ms = 1e3 * (time.perf_counter() - started) / 2
    # Untimed: the maps before SquaredDifferenceScoring's min-max rescaling, from the same predictions.
    difference = max(
        relative_difference(ours_maps[k, n].numpy(), expected)
        for n, p in enumerate(predictions)
        for k, expected in enumerate(before_rescaling(p))
    )
    masks = len(predictions[0].pert_masks)
    flops, peak = forward_flops(explained.on(slice(0, 1)), job.inputs[:1]), matmul_peak()
    rate = (masks + 1) * flops / (ours_ms / 1e3)
    return Row(
        f"Perturbation LSTM (r{radius:g} s{stride} b{blur:g})",
        "seed-001: xaitk SlidingRadial, 1 call/image",
        ours_ms,
        peer_ms,
        difference,
        f"{len(job.inputs)} Breakout frames with their stored states, outputs {' + '.join(LSTM_OUTPUT_NAMES)}; "
        f"the seed's gen_sal_maps without torch.no_grad: {as_written_ms:.1f} ms/frame "
        f"({as_written_ms / ours_ms:.2f}x ours); {masks} masks a frame, {flops / 1e6:.1f} MFLOP a forward pass: "
        f"ours at {rate / 1e9:.0f} GFLOP/s, fp32 matmul peak {peak / 1e9:.0f} GFLOP/s, so at most "
        f"{peer_ms / ((masks + 1) * flops / peak * 1e3):.1f}x the peer with float32 maps",
    )


def forward_flops(explained: Any, frame: torch.Tensor) -> float:
    """FLOPs of one forward pass of one frame (torch's own count: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        explained.forward(frame)
    return float(counter.get_total_flops())


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a float32 matrix product on this machine, with the benchmark's threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * size**3 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256, help="frames explained (default 256)")
    parser.add_argument(
        "--seed001-frames",
        type=int,
        default=None,
        help="frames the slow seed-001 perturbation peer runs (default 16)",
    )
    parser.add_argument("--quick", action="store_true", help="32 frames, the seed-001 peer on 4")
    parser.add_argument("--batch", type=int, default=64, help="frames per call, both sides (default 64)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides")
    parser.add_argument(
        "--lstm-frames", type=int, default=None, help="Breakout frames of the perturbation-lstm job (default 32)"
    )
    parser.add_argument(
        "--lstm-checkpoint",
        default=None,
        help="an 'lstm' agent checkpoint for the perturbation-lstm job (default: a seeded random one)",
    )
    parser.add_argument(
        "--methods", default=",".join(SECTIONS), help=f"sections to run, of {', '.join(SECTIONS)} (default: all)"
    )
    args = parser.parse_args()
    frames = 32 if args.quick else args.frames
    if args.seed001_frames is not None:
        peer_frames = min(frames, args.seed001_frames)
    else:
        peer_frames = min(frames, 4 if args.quick else 16)
    lstm_frames = args.lstm_frames if args.lstm_frames is not None else 8 if args.quick else 32
    sections = {s.strip() for s in args.methods.split(",") if s.strip()}
    unknown = sections - set(SECTIONS)
    if unknown or frames < 1 or peer_frames < 1 or lstm_frames < 2:
        parser.error(f"bad --methods {sorted(unknown)} or frame counts")
    torch.set_num_threads(args.threads)

    rows: dict[str, Row | None] = {}
    if sections & {"gradcam", "smoothgrad", "perturbation"}:
        job = make_job(frames, min(args.batch, frames))
        print(
            f"job: {frames} CoinRun frames of the bundled agent, outputs {' + '.join(OUTPUT_NAMES)}, "
            f"batches of {job.batch}; torch {torch.__version__}, {torch.get_num_threads()} threads for both sides"
        )
        if "gradcam" in sections:
            rows["gradcam"] = gradcam(job)
        if "smoothgrad" in sections:
            rows["smoothgrad"] = smoothgrad(job)
        if "perturbation" in sections:
            rows["perturbation"] = perturbation(job, peer_frames)
    if "perturbation-lstm" in sections:
        lstm_job = make_lstm_job(lstm_frames, min(args.batch, lstm_frames), args.lstm_checkpoint)
        print(
            f"job perturbation-lstm: {lstm_frames} ALE Breakout frames (80x80 grey) of "
            f"{args.lstm_checkpoint or 'a seeded random lstm agent'} with their stored states, outputs "
            f"{' + '.join(LSTM_OUTPUT_NAMES)}, batches of {lstm_job.batch}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads for both sides"
        )
        rows["perturbation-lstm"] = perturbation_lstm(lstm_job)

    done = [row for row in rows.values() if row is not None]
    header = (
        f"{'method':<30} {'ours ms/frame':>13}  {'peer':<44} {'peer ms/frame':>13} {'ratio':>7} {'max rel diff':>12}"
    )
    print(header)
    print("-" * len(header))
    for row in done:
        diff = "n/a" if row.max_rel_diff is None else f"{row.max_rel_diff:.2e}"
        print(f"{row.method:<30} {row.ours_ms:13.2f}  {row.peer:<44} {row.peer_ms:13.2f} {row.ratio:6.2f}x {diff:>12}")
    for row in done:
        if row.note:
            print(f"{row.method}: {row.note}")

    def ratio(key: str) -> str:
        row = rows.get(key)
        return "nan" if row is None else f"{row.ratio:.2f}"

    compared = [row.max_rel_diff for row in done if row.max_rel_diff is not None]
    lstm = rows.get("perturbation-lstm")
    lstm_diff = "nan" if lstm is None or lstm.max_rel_diff is None else f"{lstm.max_rel_diff:.2e}"
    print(
        f"RESULT methods gradcam_vs_pytorch_gradcam={ratio('gradcam')} smoothgrad_vs_captum={ratio('smoothgrad')} "
        f"perturbation_vs_seed001={ratio('perturbation')} "
        f"max_rel_diff={f'{max(compared):.2e}' if compared else 'nan'} "
        f"perturbation_lstm_vs_seed001={ratio('perturbation-lstm')} perturbation_lstm_max_rel_diff={lstm_diff}"
    )


if __name__ == "__main__":
    main()
