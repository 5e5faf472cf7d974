"""The ``understanding-rl-vision`` command.

Bad input (any :class:`~understanding_rl_vision.errors.UserError`) ends in one line on stderr
and exit status 2; Ctrl-C ends with status 130. Tracebacks are reserved for bugs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from . import __version__
from .common.flags import add_config_flags, settings_from_args
from .config import RunConfig
from .editing.commands import configure_ablate, configure_edit, run_ablate, run_edit
from .errors import UserError, first_line
from .evaluation.commands import configure_evaluate_methods, run_evaluate_methods
from .states.commands import configure_states, run_states
from .training.commands import configure_evaluate, configure_train, run_evaluate, run_train


def _add_output_flags(parser: argparse.ArgumentParser, default_output: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        default=default_output,
        help=f"output folder for interface.html and its data (default: {default_output})",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where computed products are cached (default: <output>.cache beside the output)",
    )
    parser.add_argument(
        "--no-resample",
        dest="resample",
        action="store_false",
        help="only rebuild the interface from the cache; fail if anything is missing",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        help="checkpoint: ours (.safetensors), a Stable-Baselines3 .zip, a CleanRL "
        "state dict or TorchScript (these need --env)",
    )
    _add_output_flags(parser, "rl-vision")
    add_config_flags(parser, RunConfig, "run")


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    from .demo import DEMOS

    parser.add_argument(
        "--agent",
        choices=tuple(DEMOS),
        default="coinrun",
        help="the bundled agent: coinrun (the original's) or attention (seed 002's, on Breakout)",
    )
    _add_output_flags(parser, "rl-vision-demo")
    add_config_flags(parser, RunConfig, "run")


def _build(checkpoint, args: argparse.Namespace, base=None) -> int:
    from . import rl_clarity

    result = rl_clarity.run(
        checkpoint,
        args.output,
        config=base,
        cache_dir=args.cache_dir,
        resample=args.resample,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **settings_from_args(args),
    )
    if result.rank == 0:
        print(f"wrote {result.path}")
        print(
            f"open it in a browser ({result.path.as_uri()}), or serve the folder: "
            f"understanding-rl-vision serve {shlex.quote(str(result.directory))}"
        )
    return 0


def _run(args: argparse.Namespace) -> int:
    from . import demo

    return _build(demo.resolve_checkpoint(args.checkpoint), args)


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    name, config = demo.DEMOS[args.agent]
    path = demo.resolve_checkpoint(name)
    print(f"bundled agent: {demo.describe_agent(path)}")
    return _build(path, args, config)


def _configure_video(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        nargs="?",
        help="checkpoint as for run, 'bundled' (CoinRun) or bundled:breakout-lstm; leave out with --from",
    )
    parser.add_argument("-o", "--output", default="video.mp4", help="video file, .mp4 or .gif (default: video.mp4)")
    parser.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN_DIR",
        help="reuse a finished run's maps (its output folder) instead of computing",
    )
    parser.add_argument(
        "--run-dir", help="where the computed run and its page go (default: <video name>-run beside the video)"
    )
    parser.add_argument(
        "--frames", type=int, default=512, help="frames: the trajectory's length, or the most drawn with --from"
    )
    parser.add_argument("--layout", choices=("row", "grid"), default="row", help="panels in one row or a grid")
    parser.add_argument("--layer", default="", help="layer (label or name) of layer methods (default: the page's)")
    parser.add_argument(
        "--outputs",
        type=lambda text: tuple(part for part in text.split(",") if part),
        default=(),
        metavar="A,B,...",
        help="outputs to draw (default: all computed); when computing, also what is explained unless --explain",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="where computed products are cached (default: beside the run)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a video and run folder this tool wrote")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(parser, RunConfig, "run")
    parser.epilog = (
        "The run settings apply when computing. --fps is also the video's frame rate (default 15 here); "
        "--trajectory, --gain and --observation-opacity choose and draw as on the page, with --from too."
    )


def _video(args: argparse.Namespace) -> int:
    from . import demo, rl_clarity

    bundled = args.checkpoint in demo.BUNDLED_NAMES
    result = rl_clarity.video(
        None if args.checkpoint is None else demo.resolve_checkpoint(args.checkpoint),
        args.output,
        from_run=args.from_run,
        run_dir=args.run_dir,
        frames=args.frames,
        layout=args.layout,
        layer=args.layer,
        outputs=args.outputs,
        config=demo.DEMO_CONFIG if bundled else None,
        cache_dir=args.cache_dir,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **settings_from_args(args),
    )
    if result is not None:
        height, width = result.size
        print(f"wrote {result.path} ({result.frames} frames, {width}x{height}): frame, {', '.join(result.panels)}")
    return 0


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory", nargs="?", default="rl-vision-demo", help="an output folder or a site (default: rl-vision-demo)"
    )
    parser.add_argument("--port", type=_port, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def _serve(args: argparse.Namespace) -> int:
    from .serve import make_server, url_of

    server = make_server(args.directory, args.host, args.port)
    print(f"serving {args.directory} at {url_of(server)} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _configure_site(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished runs: output folders of run or demo")
    parser.add_argument("-o", "--output", default="site", help="the site folder (default: site)")
    parser.add_argument("--title", default="Understanding RL Vision", help="the index page's title")
    parser.add_argument("--overwrite", action="store_true", help="replace a site this tool wrote")


def _site(args: argparse.Namespace) -> int:
    from . import rl_clarity

    index = rl_clarity.site(args.runs, args.output, title=args.title, overwrite=args.overwrite)
    print(f"wrote {index} ({len(args.runs)} runs); host the folder as it is, or open the file")
    return 0


def _configure_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="any checkpoint run accepts, bundled agents (bundled:NAME) too")
    parser.add_argument("--env", default="", help="environment, for files that record none (action names, full check)")
    parser.add_argument(
        "--frame-stack", type=int, default=0, help="Atari frames per observation (default: from the weights)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _inspect(args: argparse.Namespace) -> int:
    import json

    from . import demo
    from .agents import describe_file

    path = demo.resolve_checkpoint(args.checkpoint)
    report = describe_file(path, env=args.env, frame_stack=args.frame_stack)
    if report["format"] == "understanding-rl-vision":
        from .agents import read_checkpoint_metadata

        report["edits"] = read_checkpoint_metadata(path).get("edits", [])  # features projected out (`edit`)
    print(json.dumps(report) if args.json else _format_report(report))
    return 0


def _format_report(report: dict) -> str:
    arch = report.get("architecture")
    env = report.get("env")
    names = report.get("action_names")
    lines = [
        f"file:          {report['path']}",
        f"format:        {report['format']}" + (f" ({report['layout']})" if report.get("layout") else ""),
        f"architecture:  {arch['name']} {arch['kwargs']}" if arch else "architecture:  (not one of ours)",
        f"observations:  {tuple(report['observation_shape'])} (H, W, C) uint8"
        if report.get("observation_shape")
        else "",
        f"outputs:       {report.get('action_outputs', 'logits')} and a value",
        f"actions:       {', '.join(names)}"
        if names
        else f"actions:       {report.get('num_actions', '?')} (names come from --env)",
        f"environment:   {env['family']} {env}" if env else "environment:   not recorded (pass --env)",
    ]
    recurrent = report.get("recurrent")
    if recurrent:
        parts = ", ".join(f"{part['name']} {part['size']}" for part in recurrent.get("state_parts", []))
        lines.append(f"recurrent:     state of {recurrent['state_size']} values" + (f" ({parts})" if parts else ""))
        if recurrent.get("note"):
            lines.append(f"               {recurrent['note']}")
    attention = report.get("attention")
    if attention:
        lines.append(f"attention:     {attention['layer']} (the attention map, its tree and entropy penalty read it)")
    if report.get("layers"):
        lines.append("layers:")
        lines += [
            f"  {layer['name']:<28} {layer['type']:<12} {tuple(layer['shape']) if layer['shape'] else ''}"
            + ("  <- attention" if attention and layer["name"] == attention["layer"] else "")
            for layer in report["layers"]
        ]
    for edit in report.get("edits") or []:
        lines.append(f"edit:          {edit['layer']} without {edit.get('name') or 'a direction'} (projected out)")
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class Command:
    help: str
    handler: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None]


COMMANDS: dict[str, Command] = {
    "demo": Command("build the interface for a bundled agent (CoinRun, or --agent attention)", _demo, _configure_demo),
    "run": Command("build the interface for a checkpoint", _run, _configure_run),
    "video": Command("write a video of a trajectory with its explanations drawn over it", _video, _configure_video),
    "train": Command("train a PPO agent and save native checkpoints", run_train, configure_train),
    "evaluate": Command(
        "measure a checkpoint's episode returns against a random policy",
        run_evaluate,
        configure_evaluate,
    ),
    "evaluate-methods": Command(
        "the faithfulness report card of a checkpoint's explanation methods (or print a run's)",
        run_evaluate_methods,
        configure_evaluate_methods,
    ),
    "edit": Command("write a checkpoint with NMF features of a layer projected out", run_edit, configure_edit),
    "ablate": Command(
        "play the agent without each NMF feature of a layer: how its returns and failures change",
        run_ablate,
        configure_ablate,
    ),
    "states": Command(
        "states of interest (seed 003): train a generator of an agent's states, or measure one",
        run_states,
        configure_states,
    ),
    "site": Command("gather finished runs into one static site with an index page", _site, _configure_site),
    "serve": Command("serve an output folder or a site on localhost", _serve, _configure_serve),
    "inspect": Command("say what a checkpoint file was recognised as", _inspect, _configure_inspect),
}


class _Parser(argparse.ArgumentParser):
    """Bad flags end like every other bad input: one ``error:`` line and status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="understanding-rl-vision",
        description="Show why a pixel-based reinforcement-learning agent does what it does.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        command_parser = sub.add_parser(name, help=command.help, description=command.help)
        command_parser.set_defaults(handler=command.handler)
        command.configure(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return args.handler(args)
    except UserError as error:
        if _reports(error):
            print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine, not a bug: a full disk, a permission, a file in the way
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or first_line(error)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; lower the sizes (see --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        if _reports(None):
            print("terminated" if terminated else "interrupted", file=sys.stderr)
        return _exit_now_if_lanes_run(143 if terminated else 130)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _exit_now_if_lanes_run(code: int) -> int:
    runner = sys.modules.get("understanding_rl_vision.pipeline.runner")  # no run, no lanes
    if runner is not None and runner.lanes_running():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _reports(error: UserError | None) -> bool:
    """Under mpiexec every rank meets the same bad input; rank 0 alone reports it, unless the
    failure is this rank's own (then rank 0 may be stopped before it can)."""
    from .pipeline.parallel import RankError, launched_rank

    return launched_rank() == 0 or isinstance(error, RankError)


if __name__ == "__main__":
    sys.exit(main())
