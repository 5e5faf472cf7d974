"""The ``edit`` and ``ablate`` commands: flags and handlers for :mod:`understanding_rl_vision.cli`.

``edit`` writes a checkpoint with features projected out of a layer (it loads edited wherever a
checkpoint is accepted); ``ablate`` plays the agent without each feature of a layer in turn.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..agents import Agent, load_agent, read_checkpoint_metadata, save_checkpoint
from ..agents.edits import FeatureEdit, apply_edits, check_edits, model_edits
from ..errors import UserError
from ..training.ppo import check_memory
from .ablation import ablate, format_table
from .basis import Basis, basis_from_run, fitted_basis, select_features, with_names
from .names import read_feature_names

SUFFIX = ".safetensors"


def _basis_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="our checkpoint (.safetensors), another file run accepts, or bundled")
    parser.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="a finished run of this agent (the output folder of run or demo): its features, as its page shows them; "
        "without it the layer's features are fitted as a run with the default settings would (minutes)",
    )
    parser.add_argument("--layer", default="", help="layer label (2b) or dotted name (default: the run's default)")
    parser.add_argument(
        "--feature-names", metavar="FILE", help="names given to features in the page's legend (its JSON download)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def configure_edit(parser: argparse.ArgumentParser) -> None:
    _basis_flags(parser)
    parser.add_argument(
        "--remove-feature",
        action="append",
        required=True,
        metavar="FEATURE",
        help="a feature to project out of the layer: its number (1, 2, ...) or its name; repeat for more",
    )
    parser.add_argument("-o", "--output", required=True, help=f"the edited checkpoint to write ({SUFFIX})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint this tool wrote")


def run_edit(args: argparse.Namespace) -> int:
    """Load, choose the features, hook them out, save; the input is never written over."""
    from .. import demo

    source = Path(demo.resolve_checkpoint(args.checkpoint))
    output = Path(args.output)
    check_output(output, source, overwrite=args.overwrite)
    names = read_feature_names(args.feature_names) if args.feature_names else {}
    agent = load_agent(source)
    if agent.architecture is None:
        raise UserError("only agents with a built-in architecture can be saved edited; this file's model is not one")
    basis = with_names(_basis(agent, args), names)
    chosen = select_features(basis, args.remove_feature)
    before = len(model_edits(agent.model))
    apply_edits(agent.model, [FeatureEdit(basis.layer, basis.directions[k], basis.names[k]) for k in chosen])
    check_edits(agent)
    extra = read_checkpoint_metadata(source).get("extra", {}) if _is_ours(source) else {}
    save_checkpoint(agent, output, extra=extra)
    removed = ", ".join(basis.describe(k) for k in chosen)
    print(f"removed {removed} of layer {basis.label} ({basis.layer}); features from {basis.source}")
    if before:
        print(f"kept the {before} edit(s) {source.name} already had")
    print(f"wrote {output}")
    return 0


def configure_ablate(parser: argparse.ArgumentParser) -> None:
    _basis_flags(parser)
    parser.add_argument("--episodes", type=int, default=100, help="episodes per agent (default: 100)")
    parser.add_argument("--num-envs", type=int, default=32, help="parallel envs (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed: which levels (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run_ablate(args: argparse.Namespace) -> int:
    """Print the ablation table, or exactly one JSON object with ``--json``."""
    from .. import demo

    names = read_feature_names(args.feature_names) if args.feature_names else {}
    check_memory(args.num_envs, 1, "ablating")
    agent = load_agent(demo.resolve_checkpoint(args.checkpoint))
    basis = with_names(_basis(agent, args), names)
    result = ablate(
        agent,
        basis.layer,
        basis.directions,
        args.episodes,
        names=basis.names,
        seed=args.seed,
        num_envs=args.num_envs,
        progress=not args.quiet,
    )
    if args.json:
        print(json.dumps({**result.to_dict(), "label": basis.label, "source": basis.source}))
    else:
        print(format_table(result, f"layer {basis.label} ({basis.layer}), features from {basis.source}"))
    return 0


def _basis(agent: Agent, args: argparse.Namespace) -> Basis:
    if args.run:
        return basis_from_run(agent, args.run, args.layer)
    return fitted_basis(agent, args.layer, progress=not args.quiet)


def check_output(output: Path, source: Path, *, overwrite: bool) -> None:
    """Write only a new ``.safetensors`` file, or with ``overwrite`` one of our checkpoints;
    never the input checkpoint, whatever the flags."""
    if output.suffix != SUFFIX:
        raise UserError(f"the edited checkpoint must be a {SUFFIX} file, got {output}")
    if output.exists() and (output.resolve() == source.resolve() or os.path.samefile(output, source)):
        raise UserError(f"{output} is the input checkpoint; write the edited one to another file")
    if output.is_dir():
        raise UserError(f"{output} is a directory")
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise UserError(f"{output} exists; --overwrite replaces a checkpoint this tool wrote")
        if not output.is_file() or not _is_ours(output):
            raise UserError(f"{output} exists and is not a checkpoint this tool wrote; it is never overwritten")


def _is_ours(path: Path) -> bool:
    try:
        read_checkpoint_metadata(path)
    except UserError:
        return False
    return True
