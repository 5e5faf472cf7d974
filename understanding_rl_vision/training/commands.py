"""The ``train`` and ``evaluate`` commands: flags and handlers for :mod:`understanding_rl_vision.cli`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..common.device import check_device
from ..common.flags import add_config_flags, settings_from_args
from .config import PPOConfig, make_config
from .evaluate import evaluate, format_table
from .ppo import check_memory, train
from .run_dir import saved_config


def configure_train(parser: argparse.ArgumentParser) -> None:
    """A flag per :class:`PPOConfig` field, named after it and documented by its docstring."""
    parser.add_argument("--save-dir", required=True, type=Path, help="run directory: checkpoint, resume state and log")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --save-dir; flags given change its saved config",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(parser, PPOConfig, "training")


def run_train(args: argparse.Namespace) -> int:
    """A resumed run starts from its saved config, changed only by the flags given."""
    options = settings_from_args(args)
    config = replace(saved_config(args.save_dir), **options) if args.resume else make_config(**options)
    path = train(config, args.save_dir, resume=args.resume, progress=not args.quiet)
    print(f"checkpoint: {path}")
    return 0


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", help="checkpoint (ours, Stable-Baselines3 .zip, CleanRL, TorchScript), or bundled"
    )
    parser.add_argument("--env", default="", help="environment, for files that record none (e.g. ALE/Breakout-v5)")
    parser.add_argument("--episodes", type=int, default=500, help="episodes per policy (default: 500)")
    parser.add_argument("--num-envs", type=int, default=32, help="parallel envs (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    parser.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_evaluate(args: argparse.Namespace) -> int:
    """Print the result as a small table, or as exactly one JSON object with ``--json``."""
    from .. import demo

    checkpoint = demo.resolve_checkpoint(args.checkpoint)
    from ..agents import load_agent

    check_memory(args.num_envs, 1, "evaluating")
    agent = load_agent(checkpoint, env=args.env, device=check_device(args.device))
    result = evaluate(
        agent,
        args.episodes,
        num_envs=args.num_envs,
        seed=args.seed,
        greedy=args.greedy,
        device=args.device,
        progress=not args.quiet,
    )
    print(json.dumps(result.to_dict()) if args.json else format_table(result))
    return 0
