"""``evaluate-methods``: the faithfulness report card of a checkpoint's methods, or a run's card.

Given a checkpoint, it plays a few trajectories and judges every method (or those named) on
frames spread over them; given a run's output folder, it prints the card the run computed
(``run --report-frames N``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..attribution import Layer, default_layer, resolve_layers
from ..attribution.methods import REGISTRY
from ..config import EvaluationConfig, RunConfig, TrajectoryConfig
from ..contract.codec import to_json
from ..contract.reader import read_manifest
from ..contract.schema import DATA_DIRNAME, ReportCard
from ..errors import UserError
from .report import card_methods, format_card, report_card, spread_frames


def configure_evaluate_methods(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="CKPT|RUN_DIR",
        help="a checkpoint (as for run; 'bundled' for the CoinRun agent), or a run's output folder",
    )
    parser.add_argument("--env", default="", help="environment, for files that record none (e.g. ALE/Breakout-v5)")
    parser.add_argument(
        "--methods",
        default="",
        help="methods to judge, comma-separated (default: every method that applies to the agent)",
    )
    parser.add_argument("--layer", default="", help="layer for layer methods, by label or name (default: the middle)")
    parser.add_argument("--frames", type=int, default=16, help="frames judged, spread over the play (default: 16)")
    parser.add_argument("--num-envs", type=int, default=2, help="trajectories played (default: 2)")
    parser.add_argument("--num-steps", type=int, default=128, help="steps of each trajectory (default: 128)")
    defaults = EvaluationConfig()
    parser.add_argument("--report-steps", type=int, default=defaults.report_steps, help="deletion/insertion steps")
    parser.add_argument("--report-blur", type=float, default=defaults.report_blur, help="blur sigma in pixels")
    parser.add_argument(
        "--sanity-threshold", type=float, default=defaults.sanity_threshold, help="pass below this final Spearman"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the play and the random maps (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the card as one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_evaluate_methods(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if source.is_dir():
        card = _run_card(source)
    else:
        card = _checkpoint_card(args)
    print(json.dumps(to_json(card)) if args.json else format_card(card))
    return 0


def _run_card(folder: Path) -> ReportCard:
    data = folder / DATA_DIRNAME
    if not (data / "manifest.js").is_file():
        raise UserError(f"{folder} is not a run's output folder (no {DATA_DIRNAME}/manifest.js)")
    card = read_manifest(data).report
    if card is None:
        raise UserError(f"the run in {folder} has no report card; rebuild it with --report-frames 16")
    return card


def _checkpoint_card(args: argparse.Namespace) -> ReportCard:
    from .. import demo
    from ..agents import load_agent
    from ..rollout import collect_trajectories

    if args.frames < 1 or args.num_envs < 1 or args.num_steps < 1:
        raise UserError("--frames, --num-envs and --num-steps must be positive integers")
    settings = EvaluationConfig(
        report_frames=args.frames,
        report_steps=args.report_steps,
        report_blur=args.report_blur,
        sanity_threshold=args.sanity_threshold,
    )
    agent = load_agent(demo.resolve_checkpoint(args.source), env=args.env)
    if agent.env_spec is None:
        raise UserError("this agent records no environment; pass --env")
    layer = _layer(agent, args.layer)
    names = [n.strip() for n in args.methods.split(",") if n.strip()] or list(REGISTRY)
    chosen_settings = RunConfig().method_settings
    methods = card_methods(agent.model, [chosen_settings.method(name) for name in names], layer)
    if not methods:
        raise UserError("none of these methods makes maps for this agent")
    played = collect_trajectories(
        agent,
        TrajectoryConfig(num_envs=args.num_envs, num_steps=args.num_steps),
        env_spec=agent.env_spec,
        seed=args.seed,
        progress=not args.quiet,
    )
    frames = spread_frames(played, args.frames)
    return report_card(agent, agent.env_spec, frames, methods, settings, seed=args.seed, progress=not args.quiet)


def _layer(agent, wanted: str) -> Layer | None:
    if not agent.named_layers():
        if wanted:
            raise UserError("this model's layers cannot be hooked (TorchScript); only the input can be explained")
        return None
    example = agent.preprocess(torch.zeros((1, *agent.observation_shape), dtype=torch.uint8).numpy())
    layers = resolve_layers(agent.traceable(), example, [wanted] if wanted else None)
    return layers[0] if wanted else default_layer(layers)
