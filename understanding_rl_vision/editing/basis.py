"""Where a layer's feature directions come from, and how a person names one of them.

A finished run (``--run``) stores each NMF feature's direction over the layer's channels in its
manifest (``FeatureInfo.direction``), with the name the legend shows; that is the basis the
person was looking at when they chose a feature to remove. Without a run, the command fits the
basis as a run with the default settings would (``pipeline/basis.py``).

The manifest names its agent only for display, so a run cannot prove which agent made it; what
can be checked is: the actions, the observation size, and the layer with its shape.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..agents.base import Agent
from ..attribution import INPUT_LAYER, capture
from ..contract.reader import read_manifest
from ..contract.schema import MANIFEST_KEY, Manifest
from ..contract.writer import payload_path
from ..errors import UserError
from .names import feature_label


@dataclass(frozen=True)
class Basis:
    """A layer's NMF features: each one's direction over the layer's C channels and its name."""

    layer: str  # dotted module name
    label: str  # e.g. "2b"
    directions: tuple[tuple[float, ...], ...]  # (K, C)
    names: tuple[str, ...]  # "feature 1", ... or the names given
    source: str  # where the directions came from, for people
    manifest_layer: int | None = None  # index into the run's Manifest.layers

    def describe(self, index: int) -> str:
        """``feature 3`` or ``feature 3 (coin)``: the number always, the name where one was given."""
        return feature_label(index, self.names[index])


def run_data(run: str | os.PathLike[str]) -> Path:
    """The ``data`` folder of a run's output folder (or that folder itself)."""
    path = Path(run)
    for folder in (path / "data", path):
        if payload_path(folder, MANIFEST_KEY).is_file():
            return folder
    raise UserError(f"{path} is not a finished run: no data/manifest.js (the folder `run` or `demo` writes)")


def basis_from_run(agent: Agent, run: str | os.PathLike[str], layer: str = "") -> Basis:
    """The features of ``layer`` (label or dotted name; default: the run's default layer) as the
    run found them, after checking the run fits this agent."""
    manifest = read_manifest(run_data(run))
    index = _manifest_layer(manifest, layer, run)
    info = manifest.layers[index]
    _check_same_agent(agent, manifest, info.name, info.shape, run)
    directions = tuple(tuple(feature.direction) for feature in info.features)
    if not directions or not all(directions):
        raise UserError(
            f"the run {run} predates feature directions in its manifest (issue 21); "
            "rebuild it with this version (`run` or `demo` again, the cache makes it quick)"
        )
    channels = info.shape[0]
    if any(len(d) != channels for d in directions):
        raise UserError(f"the run {run} stores directions of a length other than layer {info.label}'s {channels}")
    return Basis(
        layer=info.name,
        label=info.label,
        directions=directions,
        names=tuple(feature.name for feature in info.features),
        source=f"the run {run}",
        manifest_layer=index,
    )


def fitted_basis(agent: Agent, layer: str = "", *, progress: bool = True) -> Basis:
    """The features of ``layer`` fitted as a run with the default settings fits them (minutes:
    the whole observation set is played and attributed)."""
    from ..pipeline.basis import find_layer, fit_basis  # pipeline sits above editing: only this needs it

    found = find_layer(agent, layer)
    components = fit_basis(agent, found, progress=progress)
    return Basis(
        layer=found.name,
        label=found.label,
        directions=tuple(tuple(float(x) for x in row) for row in components),
        names=tuple(f"feature {k + 1}" for k in range(len(components))),
        source="fitted as a run with the default settings would",
    )


def with_names(basis: Basis, names: Mapping[str, Mapping[int, str]]) -> Basis:
    """``basis`` with the names a feature-names file gives its layer (keyed by label or name)."""
    given = {**names.get(basis.layer, {}), **names.get(basis.label, {})}
    unknown = sorted(n for n in given if n > len(basis.names))
    if unknown:
        raise UserError(
            f"the feature-names file names feature {unknown[0]} of layer {basis.label}, which has {len(basis.names)}"
        )
    return replace(basis, names=tuple(given.get(k + 1, name) for k, name in enumerate(basis.names)))


def select_features(basis: Basis, wanted: Sequence[str]) -> list[int]:
    """Indices of the features given by 1-based number or by name (exact, else ignoring case),
    each once, in the order first given."""
    chosen: list[int] = []
    for token in wanted:
        token = token.strip()
        if token.isdecimal() and token.isascii():
            number = int(token)
            if not 1 <= number <= len(basis.names):
                raise UserError(f"layer {basis.label} has features 1 to {len(basis.names)}, not {number}")
            index = number - 1
        else:
            matches = [k for k, name in enumerate(basis.names) if name == token]
            matches = matches or [k for k, name in enumerate(basis.names) if name.casefold() == token.casefold()]
            if len(matches) != 1:
                known = ", ".join(f"{k + 1}={name}" for k, name in enumerate(basis.names))
                why = "is ambiguous" if matches else "is not a feature"
                raise UserError(f"{token!r} {why} of layer {basis.label}; its features: {known}")
            index = matches[0]
        if index not in chosen:
            chosen.append(index)
    return chosen


def layer_shape(agent: Agent, layer: str) -> tuple[int, ...]:
    """The output shape of one observation at ``layer`` (one forward pass on a blank frame)."""
    with capture(agent.model, [layer]) as captured, torch.no_grad():
        agent(np.zeros((1, *agent.observation_shape), np.uint8))
    found = captured.get(layer)
    if not isinstance(found, torch.Tensor):
        raise UserError(f"layer {layer} does not output one tensor")
    return tuple(found.shape[1:])


def _manifest_layer(manifest: Manifest, layer: str, run: str | os.PathLike[str]) -> int:
    if not layer:
        index = manifest.default_layer
    else:
        matches = [i for i, info in enumerate(manifest.layers) if layer in (info.label, info.name)]
        if not matches:
            known = ", ".join(f"{info.label}={info.name}" for info in manifest.layers)
            raise UserError(f"the run {run} has no layer {layer!r}; its layers: {known}")
        index = matches[0]
    if manifest.layers[index].name == INPUT_LAYER:
        raise UserError("the input's features cannot be removed from the model; choose a layer with --layer")
    return index


def _check_same_agent(
    agent: Agent, manifest: Manifest, layer: str, shape: tuple[int, ...], run: str | os.PathLike[str]
) -> None:
    """Refuse a run that another agent made, as far as the manifest can tell."""
    other = f"the run {run} was made from another agent"
    if tuple(manifest.action_names) != tuple(agent.action_names):
        raise UserError(f"{other}: its actions are {', '.join(manifest.action_names)}")
    if tuple(manifest.observation_size) != tuple(agent.observation_shape[:2]):
        raise UserError(
            f"{other}: it saw {manifest.observation_size} observations, this agent {agent.observation_shape[:2]}"
        )
    if layer not in agent.named_layers():
        raise UserError(f"{other}: this agent has no layer {layer}")
    found = layer_shape(agent, layer)
    if tuple(found) != tuple(shape):
        raise UserError(f"{other}: its layer {layer} has shape {tuple(shape)}, this agent's {found}")
