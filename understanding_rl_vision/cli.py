"""The ``understanding-rl-vision`` command.

Bad input (any :class:`~understanding_rl_vision.errors.UserError`) ends in one line on stderr
and exit status 2; Ctrl-C ends with status 130. Tracebacks are reserved for bugs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import __version__
from .errors import NotImplementedYet, UserError
from .training.commands import configure_evaluate, configure_train, run_evaluate, run_train


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    if demo.bundled_agent_path() is None:
        raise NotImplementedYet("no bundled agent yet: this install lacks the demo agent; see README")
    return demo.run_demo()


def _run(args: argparse.Namespace) -> int:
    from .agents import load_checkpoint

    load_checkpoint(args.checkpoint)  # fails now, with one line, on a bad checkpoint
    raise NotImplementedYet("run: the interface is not implemented yet: see README")


def _not_yet(args: argparse.Namespace) -> int:
    raise NotImplementedYet(f"{args.command}: not implemented yet: see README")


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="native .safetensors checkpoint")


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Command:
    help: str
    handler: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] = _no_arguments


COMMANDS: dict[str, Command] = {
    "demo": Command("build the interface for the bundled CoinRun agent", _demo),
    "run": Command("build the interface for a checkpoint", _run, _configure_run),
    "train": Command("train a PPO agent and save native checkpoints", run_train, configure_train),
    "evaluate": Command(
        "measure a checkpoint's episode returns against a random policy",
        run_evaluate,
        configure_evaluate,
    ),
    "serve": Command("serve an output folder on localhost", _not_yet),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="understanding-rl-vision",
        description="Show why a pixel-based reinforcement-learning agent does what it does.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command_parser = sub.add_parser(name, help=command.help, description=command.help)
        command_parser.set_defaults(handler=command.handler)
        command.configure(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
