"""Compute issue 5's products for the bundled agent and measure what they cost on disk.

Every discovered layer gets: an NMF fitted on the value attribution of the observation set,
legend thumbnails and spatial popups from dataset examples, and the attribution of every output
over the trajectories, transformed into features and written through the export contract.
The pipeline (issue 7) will own this sequence; this script is how its sizes were measured.

    .venv/bin/python tools/feature_products.py --out /tmp/products --trajectories 1 --obs-every 32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from understanding_rl_vision.advantages import find_bookmarks, gae
from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.attribution import (
    capture,
    discover_layers,
    explain_agent,
    integrated_gradients,
)
from understanding_rl_vision.config import ObservationSetConfig, ReductionConfig, TrajectoryConfig
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.export import (
    AttributionPayload,
    Bookmark,
    FeatureInfo,
    LayerInfo,
    Manifest,
    write_feature,
    write_manifest,
    write_observations,
    write_payload,
    write_trajectory,
)
from understanding_rl_vision.features import feature_images
from understanding_rl_vision.reduction import ChannelReducer, feature_colours
from understanding_rl_vision.rollout import collect_observation_set, collect_trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for data/ (created)")
    parser.add_argument("--trajectories", type=int, default=1, help="trajectories of 512 frames")
    parser.add_argument("--steps", type=int, default=512, help="frames per trajectory")
    parser.add_argument("--num-obs", type=int, default=128, help="observation set: frames kept per env (32 envs)")
    parser.add_argument("--obs-every", type=int, default=128, help="observation set: steps between kept frames")
    args = parser.parse_args()
    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, started: float) -> None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    agent = load_checkpoint(bundled_agent_path())
    agent.model.to(memory_format=torch.channels_last)
    explained = explain_agent(agent)
    outputs = explained.outputs(["value", "logits", "groups"])

    started = time.perf_counter()
    observation_set = collect_observation_set(agent, ObservationSetConfig(num_obs=args.num_obs, obs_every=args.obs_every), seed=1)
    trajectories = collect_trajectories(agent, TrajectoryConfig(num_envs=args.trajectories, num_steps=args.steps), seed=0)
    stage("rollouts", started)
    obs_inputs = agent.preprocess(observation_set)
    layers = discover_layers(agent.model, obs_inputs[:1])

    layer_infos = []
    for l, layer in enumerate(layers):
        started = time.perf_counter()
        value_attr = integrated_gradients(explained, obs_inputs, layer.name, explained.outputs("value"))
        stage("observation-set value attribution", started)
        started = time.perf_counter()
        reducer = ChannelReducer(ReductionConfig()).fit(value_attr.values[0])
        stage("NMF fit", started)
        started = time.perf_counter()
        with capture(agent.model, [layer.name]) as captured, torch.no_grad():
            activations = torch.cat([
                (explained.forward(chunk), captured[layer.name].float())[1]
                for chunk in obs_inputs.split(512)
            ])  # fmt: skip
        images = feature_images(observation_set, activations, reducer.components)
        for f, feature in enumerate(images):
            write_feature(data, l, f, thumbnail=feature.thumbnail.image, popups=[
                (p.expand_mult, p.subdiv_mult, p.image, p.index_grid) for p in feature.popups
            ])  # fmt: skip
        stage("feature visualisation", started)
        colours = feature_colours(reducer.num_features)
        layer_infos.append(LayerInfo(name=layer.name, label=layer.label, shape=layer.shape, features=tuple(
            FeatureInfo(name=f"feature {f + 1}", color=colours[f]) for f in range(reducer.num_features)
        )))  # fmt: skip

        for t in range(args.trajectories):
            inputs = agent.preprocess(trajectories.observations[t])
            started = time.perf_counter()
            attribution = integrated_gradients(explained, inputs, layer.name, outputs)
            stage("trajectory attribution", started)
            started = time.perf_counter()
            for o in range(len(outputs)):
                maps = reducer.transform(attribution.values[o])
                payload = AttributionPayload(
                    layer=l, trajectory=t, output=o, positive=maps.positive, negative=maps.negative,
                    residual=maps.residual, totals=maps.totals, residual_totals=maps.residual_totals,
                    display_scale=maps.scale,
                )
                write_payload(data, payload.key(), payload)
            stage("transform + export", started)
        print(f"layer {layer.label} ({layer.name}) done; " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()), flush=True)

    started = time.perf_counter()
    advantages = gae(trajectories.rewards, trajectories.values, trajectories.dones,
                     agent.gamma, agent.lam, trajectories.last_values)  # fmt: skip
    marks = find_bookmarks(advantages, trajectories.firsts)
    for t in range(args.trajectories):
        write_trajectory(data, t, frames=trajectories.frames[t], rewards=trajectories.rewards[t],
                         firsts=trajectories.firsts[t], actions=trajectories.actions[t],
                         values=trajectories.values[t], logits=trajectories.logits[t],
                         advantages=advantages[t])  # fmt: skip
    observations = write_observations(data, observation_set)
    write_manifest(data, Manifest(
        env_id="coinrun", agent="bundled demo agent", action_names=tuple(agent.action_names),
        action_groups={k: tuple(v) for k, v in agent.action_groups.items()},
        outputs=tuple(o.name for o in outputs), layers=tuple(layer_infos),
        default_layer=len(layers) // 2, trajectory_lengths=(trajectories.num_steps,) * args.trajectories,
        observation_size=tuple(agent.observation_shape[:2]), fps=12.0,
        bookmarks=tuple(Bookmark(kind=kind, trajectory=b.trajectory, frame=b.frame, advantage=b.advantage)
                        for kind, group in (("high", marks.high), ("low", marks.low)) for b in group),
        observations=observations,
    ))  # fmt: skip
    stage("trajectories, observations, manifest", started)
    report(data, layers, len(outputs), args.trajectories, trajectories.num_steps)
    print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


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
