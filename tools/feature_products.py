"""Compute issue 5's products for the bundled agent and measure what they cost on disk.

Every discovered layer gets: an NMF fitted on the value attribution of the observation set,
legend thumbnails and spatial popups from dataset examples, and the attribution of every output
over the trajectories, transformed into features and written through the export contract.
The stages run in ``pipeline.write_interface``; this script runs them on the bundled agent and prints
the bytes on disk per frame and layer.

    .venv/bin/python tools/feature_products.py --out /tmp/products --trajectories 1 --obs-every 32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.attribution import default_layer, discover_layers
from understanding_rl_vision.config import ObservationSetConfig, TrajectoryConfig
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.export import read_manifest
from understanding_rl_vision.pipeline import write_interface
from understanding_rl_vision.rollout import collect_observation_set, collect_trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (replaced when complete)")
    parser.add_argument("--trajectories", type=int, default=1, help="trajectories of 512 frames")
    parser.add_argument("--steps", type=int, default=512, help="frames per trajectory")
    parser.add_argument("--num-obs", type=int, default=128, help="observation set: frames kept per env (32 envs)")
    parser.add_argument("--obs-every", type=int, default=128, help="observation set: steps between kept frames")
    args = parser.parse_args()

    agent = load_checkpoint(bundled_agent_path())
    agent.model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    observation_set = collect_observation_set(
        agent, ObservationSetConfig(num_obs=args.num_obs, obs_every=args.obs_every), seed=1
    )
    trajectories = collect_trajectories(agent, TrajectoryConfig(num_envs=args.trajectories, num_steps=args.steps))
    rollouts = time.perf_counter() - started
    layers = discover_layers(agent.model, agent.preprocess(observation_set[:1]))
    started = time.perf_counter()
    html = write_interface(
        agent, args.out, trajectories=trajectories, observation_set=observation_set, layers=layers,
        default_layer=layers.index(default_layer(layers)), env_id="coinrun", title="bundled demo agent",
    )  # fmt: skip
    print(f"rollouts {rollouts:.0f} s; attribution, NMF, feature images and export {time.perf_counter() - started:.0f} s")
    print(f"wrote {html}")
    data = html.parent / "data"
    report(data, layers, len(read_manifest(data).outputs), args.trajectories, args.steps)


def report(data: Path, layers, num_outputs: int, num_trajectories: int, num_steps: int) -> None:
    """Bytes on disk per frame per layer (one output, averaged over outputs) and the 8x512 total."""
    frames = num_trajectories * num_steps
    total_8x512 = 0.0
    print(f"{'layer':>6} {'shape':>12} {'B/frame/output':>15} {'B/frame, all outputs':>21} {'features (KB)':>14}")
    for l, layer in enumerate(layers):
        attr = sum(p.stat().st_size for p in data.glob(f"attr-{l}-*.js"))
        feats = sum(p.stat().st_size for p in data.glob(f"feat-{l}-*"))
        per_frame = attr / frames
        total_8x512 += per_frame * 8 * 512 + feats
        print(f"{layer.label:>6} {layer.shape!s:>12} {per_frame / num_outputs:15,.0f} {per_frame:21,.0f} {feats / 1e3:14,.0f}")
    fixed = sum(p.stat().st_size for p in data.glob("obs-*")) + (data / "manifest.js").stat().st_size
    traj = sum(p.stat().st_size for p in data.glob("traj-*")) / num_trajectories
    total_8x512 += fixed + 8 * traj
    print(f"per trajectory (frames + arrays): {traj / 1e6:.2f} MB; observation set + manifest: {fixed / 1e6:.2f} MB")
    print(f"estimated total for 8 x 512 frames, {len(layers)} layers, {num_outputs} outputs: {total_8x512 / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
