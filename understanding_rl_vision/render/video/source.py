"""What a video shows, read back from a finished run's data folder through the contract reader.

A run's page and its video draw the same arrays: the trajectory's frames and the maps of every
method the manifest lists. :func:`read_panels` picks the panels (one per method and output; the
actor and the critic of an ``actor-critic`` method share one) without naming any method: each
method's look comes from its registry declaration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...attribution.methods import REGISTRY
from ...contract import Manifest, MethodEntry
from ...contract.reader import read_manifest, read_payload, read_sprites
from ...contract.schema import attribution_key, map_key, trajectory_key
from ...errors import UserError
from . import overlays
from .colors import hex_rgb

CRITIC_OUTPUT = "value"
ACTOR_OUTPUT = "actor"


@dataclass(frozen=True)
class Trajectory:
    """One trajectory's frames and what the agent did, (N, ...) arrays."""

    frames: np.ndarray  # (N, h, w, 3) uint8, what a person sees
    actions: np.ndarray  # (N,) int
    values: np.ndarray  # (N,) float
    rewards: np.ndarray  # (N,) float
    action_names: tuple[str, ...]

    def caption(self, index: int) -> str:
        action = self.action_names[int(self.actions[index])]
        return f"frame {index}   action {action}   value {self.values[index]:.2f}   reward {self.rewards[index]:g}"


@dataclass(frozen=True)
class Panel:
    """One picture beside the frame: a look and the arrays it draws, for every frame."""

    title: str
    look: str  # a methods.base.Look, or "features" (a channels method, drawn as the page does)
    maps: tuple[np.ndarray, ...]  # (N, h, w) each; features: one (N, K, h, w) strength array
    scales: tuple[float, ...]  # value drawn at full colour, per array
    channels: tuple[int, ...] = ()  # actor-critic: the colour channel of each array
    signed: bool = False
    colors: np.ndarray | None = None  # features: (K, 3)

    def draw(self, frames: np.ndarray, at: slice, opacity: float) -> np.ndarray:
        """This panel for frames ``at`` over ``frames`` (the same frames, already at panel size)."""
        maps = [m[at] for m in self.maps]
        if self.look == "jet":
            return overlays.jet_blend(frames, maps[0])
        if self.look == "actor-critic":
            return overlays.add_channels(frames, list(zip(maps, self.scales, self.channels, strict=True)))
        if self.look == "features":
            assert self.colors is not None
            return overlays.features_overlay(frames, maps[0], self.colors, self.scales[0], opacity)
        return overlays.table_overlay(frames, maps[0], self.scales[0], self.signed, opacity)


def read_trajectory(data: Path, manifest: Manifest, index: int) -> Trajectory:
    """The trajectory's frames, as the page shows them."""
    if not 0 <= index < len(manifest.trajectory_lengths):
        raise UserError(f"trajectory {index} does not exist: the run has {len(manifest.trajectory_lengths)}")
    payload = read_payload(data, trajectory_key(index))
    frames = read_sprites(data, payload.frames)[..., :3]
    return Trajectory(frames, payload.actions, payload.values, payload.rewards, tuple(manifest.action_names))


def _look(entry: MethodEntry) -> str:
    if entry.produces == "channels":
        return "features"
    known = REGISTRY.get(entry.name)
    return known.info.look if known is not None else "table"  # a method this version lacks: the page's look


def _chosen(names: Sequence[str], available: Sequence[str], what: str) -> list[str]:
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UserError(f"{what} {', '.join(unknown)} not in this run; it has {', '.join(available)}")
    return [n for n in available if n in names] if names else list(available)


def _site(manifest: Manifest, entry: MethodEntry, layer: str) -> int:
    """-1 for an input method; else the chosen layer (by label or name), which it must have."""
    if not entry.layers:
        return -1
    if not layer:
        site = manifest.default_layer if manifest.default_layer in entry.layers else entry.layers[0]
        return site
    for site in entry.layers:
        if layer in (manifest.layers[site].label, manifest.layers[site].name):
            return site
    labels = ", ".join(manifest.layers[s].label for s in entry.layers)
    raise UserError(f"{entry.title} was not computed at layer {layer!r}; its layers: {labels}")


def read_panels(
    data: Path,
    manifest: Manifest,
    trajectory: int,
    *,
    methods: Sequence[str] = (),
    outputs: Sequence[str] = (),
    layer: str = "",
    gain: float = 1.0,
) -> list[Panel]:
    """Every (method, output) panel of one trajectory, in the manifest's method order."""
    entries = {e.name: e for e in manifest.all_methods}
    chosen_methods = _chosen(methods, list(entries), "method(s)")
    chosen_outputs = _chosen(outputs, list(manifest.outputs), "output(s)")
    panels: list[Panel] = []
    for name in chosen_methods:
        entry = entries[name]
        if entry.produces == "tree":  # nodes and edges, not a map: the page draws them
            if name in methods:
                raise UserError(f"{entry.title} is drawn on the page only; a video draws maps")
            continue
        look = _look(entry)
        site = _site(manifest, entry, layer)
        where = f" @ {manifest.layers[site].label}" if site >= 0 else ""
        wanted = [o for o in entry.outputs if manifest.outputs[o] in chosen_outputs]
        if look == "actor-critic":
            panels += _actor_critic(data, manifest, entry, site, trajectory, wanted, gain, where)
            continue
        for o in wanted:
            title = f"{entry.title} · {manifest.outputs[o]}{where}"
            if look == "features":
                payload = read_payload(data, attribution_key(site, trajectory, o, entry.key_prefix))
                strength = payload.positive + payload.negative  # the page's "positive + negative"
                colors = np.array([hex_rgb(f.color) for f in manifest.layers[site].features], np.float32)
                scale = overlays.robust_scale(payload.positive, payload.negative, gain=gain)
                panels.append(Panel(title, look, (strength,), (scale,), colors=colors))
            else:
                maps = _signed_maps(data, entry, site, trajectory, o)
                panels.append(
                    Panel(title, look, (maps,), (overlays.robust_scale(maps, gain=gain),), signed=entry.signed)
                )
    if not panels:
        raise UserError("nothing to draw: no chosen method explains the chosen outputs")
    return panels


def _signed_maps(data: Path, entry: MethodEntry, site: int, trajectory: int, output: int) -> np.ndarray:
    payload = read_payload(data, map_key(entry.key_prefix, site, trajectory, output))
    return np.asarray(payload.positive - payload.negative, np.float32)


def _actor_critic(
    data: Path,
    manifest: Manifest,
    entry: MethodEntry,
    site: int,
    trajectory: int,
    wanted: list[int],
    gain: float,
    where: str,
) -> list[Panel]:
    """The actor in blue and the critic in red in one panel, as seed 001 drew them; any other
    output gets a panel of its own in red."""
    names = [manifest.outputs[o] for o in wanted]
    if ACTOR_OUTPUT in names and CRITIC_OUTPUT in names:
        pair = [wanted[names.index(ACTOR_OUTPUT)], wanted[names.index(CRITIC_OUTPUT)]]
        groups = [pair, *([o] for o in wanted if o not in pair)]
    else:
        groups = [[o] for o in wanted]
    panels = []
    for group in groups:
        maps = tuple(_signed_maps(data, entry, site, trajectory, o) for o in group)
        labels = [manifest.outputs[o] for o in group]
        channels = tuple(
            overlays.ACTOR_CHANNEL if label == ACTOR_OUTPUT else overlays.CRITIC_CHANNEL for label in labels
        )
        described = " + ".join(
            f"{label} ({'blue' if c == overlays.ACTOR_CHANNEL else 'red'})"
            for label, c in zip(labels, channels, strict=True)
        )
        scales = tuple(overlays.robust_scale(m, gain=gain) for m in maps)
        panels.append(Panel(f"{entry.title} · {described}{where}", "actor-critic", maps, scales, channels))
    return panels


def read_run(directory: Path) -> tuple[Path, Manifest]:
    """The data folder of a run's output folder (or the data folder itself) and its manifest."""
    data = directory / "data" if (directory / "data").is_dir() else directory
    if not (data / "manifest.js").is_file():
        raise UserError(f"{directory} is not a finished run: no data/manifest.js (run `understanding-rl-vision run`)")
    return data, read_manifest(data)
