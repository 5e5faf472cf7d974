"""The ``states`` command (seed 003's states of interest): ``states train`` fits a generator of an
agent's states, ``states measure`` scores it; flags and handlers for :mod:`understanding_rl_vision.cli`."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..agents.base import Agent
from ..common.device import check_device
from ..common.flags import add_config_flags, settings_from_args
from ..errors import UserError
from .config import GeneratorConfig, make_generator_config
from .store import GENERATOR, read_header


def configure_states(parser: argparse.ArgumentParser) -> None:
    """``states train`` and ``states measure``, each a parser of the same kind as ``parser``."""
    sub = parser.add_subparsers(dest="states_command", metavar="SUBCOMMAND", required=True)
    for name, (help_text, handler, configure) in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        subparser.set_defaults(states_handler=handler)
        configure(subparser)


def run_states(args: argparse.Namespace) -> int:
    return args.states_handler(args)


def configure_train(parser: argparse.ArgumentParser) -> None:
    """A flag per :class:`GeneratorConfig` field, named after it and documented by its docstring."""
    parser.add_argument("checkpoint", help="the agent: a checkpoint as for run, or bundled:coinrun")
    parser.add_argument(
        "--save-dir", required=True, type=Path, help="folder for the generator, its resume state, frames and log"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the training in --save-dir; flags given change its saved config",
    )
    parser.add_argument("--env", default="", help="environment, for files that record none (e.g. ALE/Breakout-v5)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(parser, GeneratorConfig, "generator")


def run_train(args: argparse.Namespace) -> int:
    """A resumed training starts from its saved config, changed only by the flags given."""
    from ..training.ppo import check_memory
    from .train import saved_generator_config, train_generator

    options = settings_from_args(args)
    if args.resume:
        config = replace(saved_generator_config(args.save_dir), **options)
    else:
        config = make_generator_config(**options)
        check_memory(config.num_envs, 1, "collecting frames")
    agent, identity = _load_agent(args.checkpoint, args.env, config.device)
    if args.resume:
        _check_same_agent(args.save_dir / GENERATOR, identity)
    path = train_generator(agent, identity, args.save_dir, config, resume=args.resume, progress=not args.quiet)
    print(f"generator: {path}")
    return 0


def configure_measure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the agent the generator was trained for")
    parser.add_argument(
        "--generator", required=True, type=Path, help="the generator: a states train --save-dir, or its file"
    )
    parser.add_argument("--env", default="", help="environment, for files that record none (e.g. ALE/Breakout-v5)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per policy (default: 100)")
    parser.add_argument("--num-envs", type=int, default=16, help="parallel envs (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    parser.add_argument("--real", action="store_true", help="also play on real frames, and report goggles / real")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_measure(args: argparse.Namespace) -> int:
    """The generator's header and its goggles score (seed 003, table 1): the agent playing on the
    generator's reconstructions of its observations; with ``--real`` also on the observations."""
    from ..training.ppo import check_memory
    from .measures import goggles_score
    from .store import load_generator

    agent, identity = _load_agent(args.checkpoint, args.env, args.device)
    vae, header = load_generator(args.generator, identity, device=agent.device)
    check_memory(args.num_envs, 1, "evaluating")
    options = {"num_envs": args.num_envs, "seed": args.seed, "progress": not args.quiet}
    goggles = goggles_score(agent, vae, args.episodes, baseline=not args.real, **options)
    real = goggles_score(agent, None, args.episodes, baseline=True, **options) if args.real else None
    played_random = real or goggles  # the random policy is played once, on the same envs
    extra = header.get("extra") or {}
    report: dict[str, Any] = {
        "generator": str(args.generator / GENERATOR if args.generator.is_dir() else args.generator),
        "epochs": extra.get("epochs"),
        "heldout_psnr": extra.get("heldout_psnr"),
        "heldout_saliency_psnr": extra.get("heldout_saliency_psnr"),
        "heldout_action_agreement": extra.get("heldout_action_agreement"),
        "env": goggles.env,
        "levels": goggles.levels,
        "episodes": goggles.episodes,
        "goggles_mean_return": goggles.mean_return,
        "goggles_std_return": goggles.std_return,
    }
    if real is not None:
        report |= {
            "real_mean_return": real.mean_return,
            "real_std_return": real.std_return,
            "ratio": goggles.mean_return / real.mean_return if real.mean_return else None,
        }
    report |= {
        "random_mean_return": played_random.random_mean_return,
        "random_std_return": played_random.random_std_return,
        "seconds": round(goggles.seconds + (real.seconds if real else 0.0), 3),
    }
    report = {key: _finite(value) for key, value in report.items()}
    print(json.dumps(report) if args.json else format_measures(report))
    return 0


def format_measures(report: dict[str, Any]) -> str:
    """A few aligned lines: what the generator measured on held-out frames, then the returns of
    the agent through its goggles, on real frames (with ``--real``) and of a random policy."""

    def number(value: Any, form: str = ".2f", unit: str = "") -> str:
        return "n/a" if value is None else f"{value:{form}}{unit}"

    lines = [
        f"{'generator':<18}{report['generator']}",
        f"{'trained':<18}{number(report['epochs'], 'd')} epochs",
        f"{'held-out PSNR':<18}{number(report['heldout_psnr'], '.2f', ' dB')} "
        f"(saliency-weighted {number(report['heldout_saliency_psnr'], '.2f', ' dB')})",
        f"{'action agreement':<18}{number(_percent(report['heldout_action_agreement']), '.1f', '%')} "
        "(held-out frames, original vs reconstruction)",
        f"{report['env']}: {report['levels']}; {report['seconds']:.1f} s",
    ]
    real = "real_mean_return" in report
    columns = ("goggles", "real", "random") if real else ("goggles", "random")
    rows = [
        ("", *columns),
        ("episodes", *[str(report["episodes"])] * len(columns)),
        ("mean return", *[number(report[f"{c}_mean_return"]) for c in columns]),
        ("std return", *[number(report[f"{c}_std_return"]) for c in columns]),
    ]
    lines += [f"{name:<18}" + "".join(f"{value:>10}" for value in values) for name, *values in rows]
    if real:
        lines.append(f"{'goggles / real':<18}{number(report['ratio']):>10}")
    return "\n".join(lines)


def _load_agent(checkpoint: str, env: str, device: str) -> tuple[Agent, str]:
    """The agent (feed-forward only) and the sha256 a generator records it by."""
    from .. import demo
    from ..agents import load_agent
    from ..agents.formats import checkpoint_identity
    from .perception import check_agent

    path = demo.resolve_checkpoint(checkpoint)
    agent = load_agent(path, env=env, device=check_device(device))
    check_agent(agent)
    return agent, checkpoint_identity(path)


def _check_same_agent(generator: Path, identity: str) -> None:
    """Resuming continues one agent's generator, never another's (where one was saved)."""
    if not generator.is_file():
        return  # nothing saved yet: train_generator reports what is missing
    recorded = str(read_header(generator).get("agent"))
    if recorded != identity:
        raise UserError(
            f"{generator.parent} holds a generator trained for another agent (sha256 {recorded[:12]}, "
            f"this one's is {identity[:12]}); resume it with that agent or choose another --save-dir"
        )


def _finite(value: Any) -> Any:
    """NaN and infinities as None, so that ``--json`` prints strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


SUBCOMMANDS = {
    "train": ("train a generator of an agent's states (seed 003)", run_train, configure_train),
    "measure": ("score a generator: the agent playing through its reconstructions", run_measure, configure_measure),
}
