"""Bytes of each job's stages and of each product, for one config: the terms an estimate adds up."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ...attribution import INPUT_CHUNK
from ...attribution.integrated_gradients import DEFAULT_MEMORY_BUDGET
from ...config import RunConfig
from ...contract.codec import sprite_layout
from ...contract.schema import OBS_PER_SHEET, estimate_bytes
from ...feature_vis.dataset_examples import MIN_THUMBNAIL_PX, THUMBNAIL_CELLS, popup_cells
from ...reduction.nmf import CHUNK_ROWS, MAX_FIT_ROWS
from ...rollout import OBS_PART_ENVS, observation_parts
from .shapes import LayerShape, MethodShape, Shapes

ENV_BYTES = 2_000_000
"""One environment instance (a procgen env measured 0.75 MB; an ALE emulator is a few MB)."""
PNG_RATIO = 4
"""Raw pixels over PNG bytes assumed for frames, observations and feature pictures (CoinRun
frames compress 11x, feature popups 4x)."""
IG_WORKING_FACTOR = (3, 2)
"""Integrated gradients' working chunk measured up to 3/2 of its nominal budget."""
FILE_OVERHEAD = 4096
"""Per file on disk: the file system's block, a zip entry's headers, a payload's JSON keys."""
ARRAY_OVERHEAD = 320
"""Per array in a cached ``.npz``: its zip entry's two headers and its ``.npy`` header."""
_STORED = ("num_steps", "num_envs", "attr_policy", "layers")
"""What sizes the stored attribution."""


@dataclass(frozen=True)
class Part:
    """One term of an estimate: its bytes, what it is, and the settings that size it."""

    bytes: int
    what: str
    knobs: tuple[str, ...] = ()


def _total(parts: Sequence[Part]) -> int:
    return sum(p.bytes for p in parts)


class _Sizes:
    """Bytes of each job's stages and of each product, for one config."""

    def __init__(self, s: Shapes, config: RunConfig) -> None:
        self.s, self.config = s, config
        self.E, self.T = config.trajectories.num_envs, config.trajectories.num_steps
        o = config.observation_set
        self.N = o.obs_num_envs * o.num_obs
        H, W, C = s.observation
        self.ob, self.fr = H * W * C, math.prod(s.frame)
        self.K_out = s.outputs
        per_step = self.ob + self.fr + 8 + 4 + 1 + 1 + 4 * s.num_actions + 4  # frames, actions ... values
        self.traj = self.E * self.T * per_step + 4 * self.E
        frames = f"frames of {_shape(s.observation)}"
        self.traj_part = Part(self.traj, f"trajectories {_count(self.E)} x {_count(self.T)} {frames}",
                              ("num_steps", "num_envs"))  # fmt: skip
        states = config.states_of_interest
        # (targets, states per target) of the states of interest: each target is one more trajectory
        self.states = (len(states.state_targets), states.state_count) if states.states else None
        self.obs_what = f"observation set {_count(o.obs_num_envs)} x {_count(o.num_obs)} {frames}"

    # ---------------------------------------------------------------- memory

    def ig_working(self, layer: LayerShape, frames: int, outputs: int, what: str) -> Part:
        """Integrated gradients' working chunk (as ``integrated_gradients._chunk_size`` sizes it)."""

        def per_frame(steps: int) -> int:
            return 4 * (steps * (layer.above_sum + 3 * layer.above_max + layer.size) + 2 * outputs * layer.size)

        steps = 1 if layer.is_input else int(self.config.setting("ig_steps"))
        budget = DEFAULT_MEMORY_BUDGET if not layer.is_input else INPUT_CHUNK * per_frame(1)
        # A chunk is as many frames as the budget allows, at least one: its graph takes at most
        # max(budget, one frame's). The forward pass below the layer holds every frame of the
        # chunk, so fewer steps (larger chunks) can take more memory there.
        chunk = min(frames, max(1, budget // per_frame(steps)))
        graph = min(frames * per_frame(steps), max(budget, per_frame(steps)))
        below = chunk * 4 * 2 * layer.below_max
        knobs = ("ig_steps",) if per_frame(steps) > budget else ()
        working = graph * IG_WORKING_FACTOR[0] // IG_WORKING_FACTOR[1] + below
        return Part(working, f"integrated gradients at layer {layer.label} ({what})", knobs)

    def trajectories_job(self) -> list[Part]:
        envs = Part(self.E * (ENV_BYTES + 2 * (self.ob + self.fr)), f"{_count(self.E)} environments",
                    ("num_envs",))  # fmt: skip
        return [replace(self.traj_part, bytes=2 * self.traj), envs]  # saved: asdict copies every array

    def observation_part_job(self) -> list[Part]:
        count = min(OBS_PART_ENVS, self.config.observation_set.obs_num_envs)
        kept = count * self.config.observation_set.num_obs * self.ob
        return [Part(kept, self.obs_what, ("num_obs", "obs_num_envs")),
                Part(count * ENV_BYTES, f"{count} environments")]  # fmt: skip

    def fit_job(self, layer: LayerShape) -> list[Part]:
        N, S, hw = self.N, layer.size, layer.positions
        K = min(self.config.reduction.nmf_features, layer.channels)
        knobs = ("num_obs", "obs_num_envs", "layers")
        shape = f"{layer.channels}x{layer.height}x{layer.width}"
        what = f"layer {layer.label}'s fit on {_count(N)} observations of {shape}"
        obs = Part(5 * N * self.ob, self.obs_what, ("num_obs", "obs_num_envs"))  # uint8 and the float input
        rows = min(2 * N * hw, MAX_FIT_ROWS)
        stages = {
            "attribution": [Part(8 * N * S, what, knobs), self.ig_working(layer, N, 1, f"{_count(N)} observations")],
            "nmf": [Part(10 * N * S + 18 * N * hw, what, knobs),
                    Part(rows * (layer.channels * 8 * 6 + K * 8 * 3), f"NMF of layer {layer.label}")],
            "activations": [Part(12 * N * S, what, knobs),
                            Part(INPUT_CHUNK * 8 * max(layer.below_max, layer.above_max),
                                 f"layer {layer.label}'s activations")],
            "pictures": [Part(8 * N * S + 4 * N * K * hw + 4 * N * hw, what, knobs),
                         self._pictures_work(layer, K), self._pictures(layer, K)],
        }  # fmt: skip
        if self.s.observation[2] != 3:  # viewable() copies stacked or grey frames to RGB
            stages["pictures"].append(Part(N * self.s.observation[0] * self.s.observation[1] * 3, self.obs_what,
                                           ("num_obs", "obs_num_envs")))  # fmt: skip
        peak = max(stages.values(), key=_total)
        return [obs, *peak]

    def _popups(self, layer: LayerShape) -> list[tuple[int, int, int]]:
        fv = self.config.feature_vis
        return _popups(self.s.observation[0], layer.height, fv.expand_mults, fv.subdiv_mults)

    def _thumbnail(self, layer: LayerShape) -> int:
        H = self.s.observation[0]
        patch = max(MIN_THUMBNAIL_PX, min(math.floor(THUMBNAIL_CELLS * H / layer.height + 0.5), H))
        return (self.config.feature_vis.thumbnail_grid * patch) ** 2 * 3

    def _pictures(self, layer: LayerShape, K: int) -> Part:
        """Every feature's thumbnail and popups, kept until the fit is saved."""
        size = K * (self._thumbnail(layer) + sum(canvas + 9 * g * g for g, _, canvas in self._popups(layer)))
        knobs = ("thumbnail_grid", "subdiv_mults", "nmf_features")
        return Part(size, f"feature pictures of layer {layer.label}", knobs)

    def _pictures_work(self, layer: LayerShape, K: int) -> Part:
        """The largest popup being made: interpolated maps, cells, the mosaic, the greedy heap."""
        work = max((4 * g * g * self.N + 3 * canvas + 300 * g * g for g, _, canvas in self._popups(layer)), default=0)
        return Part(work, f"feature popups of layer {layer.label}", ("subdiv_mults", "num_obs"))

    def attribution_job(self, method: MethodShape, site: int) -> list[Part]:
        """One method's job over one trajectory at one site."""
        T, Ko = self.T, method.outputs
        inputs = Part(4 * T * self.ob, f"one trajectory of {_count(T)} frames", ("num_steps",))
        lane = replace(self.traj_part, what=self.traj_part.what + " (one copy per lane)")
        if method.produces == "channels":
            return [lane, inputs, *self._channels_job(self.s.layers[site], Ko)]
        layer = self.s.network if site == -1 else self.s.layers[site]
        what = f"{method.name} maps of {Ko} output{'s' * (Ko > 1)} x {_count(T)} frames"
        maps = Part(3 * 4 * Ko * T * layer.positions, what, ("num_steps", "attr_policy"))
        network = self.s.network  # every method runs the whole network, in chunks of INPUT_CHUNK rows
        rows = min(INPUT_CHUNK, T * method.rows_per_frame)
        working = rows * 4 * (network.above_sum + 3 * network.above_max + network.size)
        return [lane, inputs, maps, Part(working, f"{method.name}'s working chunk")]

    def _channels_job(self, layer: LayerShape, Ko: int) -> list[Part]:
        T, S, hw = self.T, layer.size, layer.positions
        K = min(self.config.reduction.nmf_features, layer.channels)
        what = f"attribution of {Ko} output{'s' * (Ko > 1)} x {_count(T)} frames at layer {layer.label}"
        knobs = ("num_steps", "attr_policy", "layers")
        transform_rows = min(T * hw, CHUNK_ROWS)
        stages = [
            [Part(8 * Ko * T * S, what, knobs), self.ig_working(layer, T, Ko, f"{_count(T)} frames")],
            [Part(4 * Ko * T * S + 5 * T * S + T * hw * (48 * K + 16) + Ko * T * hw * (2 * K + 1)
                  + transform_rows * layer.channels * 16, what, knobs)],
        ]  # fmt: skip
        return max(stages, key=_total)

    def export(self) -> list[Part]:
        T, N = self.T, self.N
        stages: list[list[Part]] = [[]]
        for layer in self.s.layers:
            K = min(self.config.reduction.nmf_features, layer.channels)
            maps = T * layer.positions * (2 * K + 1)
            outputs = f"{self.K_out} output{'s' * (self.K_out > 1)}"
            what = f"export of {outputs} x {_count(T)} frames at layer {layer.label}"
            stages.append([Part(self.K_out * maps * 5 + 27 * maps, what, ("num_steps", "attr_policy", "layers")),
                           self._pictures(layer, K)])  # fmt: skip
        largest = max((self.s.network.positions, *(layer.positions for layer in self.s.layers)))
        stages.append([Part(27 * T * largest, f"export of heat maps of {_count(T)} frames", ("num_steps",))])
        H, W, _ = self.s.observation
        stages.append([Part(2 * T * self.fr, f"sprite sheets of {_count(T)} frames", ("num_steps",))])
        stages.append([Part(N * (2 * self.ob + 2 * H * W * 3), self.obs_what, ("num_obs", "obs_num_envs"))])
        return [self.traj_part, *max(stages, key=_total)]

    # ---------------------------------------------------------------- disk

    def _stored(self, method: MethodShape, site: int) -> str:
        outputs = f"{method.outputs} output{'s' * (method.outputs > 1)}"
        where = "the input" if site == -1 else f"layer {self.s.layers[site].label}"
        return f"{method.name} of {outputs} x {_count(self.E)} x {_count(self.T)} frames at {where}"

    def _stored_bytes(self, method: MethodShape, site: int, frames: int | None = None) -> int:
        """One output's payload of one job (of a played trajectory, or of ``frames``), as the output
        folder and the cache both hold it (:mod:`...pipeline.payloads`)."""
        T = self.T if frames is None else frames
        if method.produces == "channels":
            layer = self.s.layers[site]
            K = min(self.config.reduction.nmf_features, layer.channels)
            return estimate_bytes(layer.height, layer.width, K, T).quantised + FILE_OVERHEAD
        layer = self.s.network if site == -1 else self.s.layers[site]
        return (2 * T * layer.positions + 4 * T) * 5 // 4 + FILE_OVERHEAD

    def cache(self, missing: dict | None) -> list[Part]:
        E, N = self.E, self.N
        parts = []
        # products are deflated (pipeline/cache.write_npz): frames and pictures about as PNG shrinks them
        if missing is None or missing["trajectories"]:
            parts.append(replace(self.traj_part, bytes=self.traj // PNG_RATIO + FILE_OVERHEAD))
        count = observation_parts(self.config.observation_set) if missing is None else missing["observations"]
        if count:
            obs = N * self.ob // PNG_RATIO + count * FILE_OVERHEAD
            parts.append(Part(obs, self.obs_what, ("num_obs", "obs_num_envs")))
        for index, layer in enumerate(self.s.layers):
            K = min(self.config.reduction.nmf_features, layer.channels)
            if missing is None or index in missing["fit"]:
                pictures = self._pictures(layer, K)
                arrays = 1 + K * (3 + 7 * len(self._popups(layer)))  # each with a zip entry and a .npy header
                extra = K * layer.channels * 4 + arrays * ARRAY_OVERHEAD + FILE_OVERHEAD
                parts.append(replace(pictures, bytes=pictures.bytes // PNG_RATIO + extra))
        for m, method in enumerate(self.s.methods):
            for site in method.sites:
                count = E if missing is None else missing["attribution"][m, site]  # a states job counts as played
                # an attribution job stores its payload scripts (pipeline/payloads.py): the output's bytes
                per_job = method.outputs * self._stored_bytes(method, site) + FILE_OVERHEAD
                parts.append(Part(count * per_job, self._stored(method, site), _STORED))
                if missing is None and self.states:
                    per_target = method.outputs * self._stored_bytes(method, site, self.states[1]) + FILE_OVERHEAD
                    parts.append(Part(self.states[0] * per_target, f"{method.name} of the states of interest"))
        return parts

    def output(self) -> list[Part]:
        E, T, N, s = self.E, self.T, self.N, self.s
        parts = []
        for layer in s.layers:
            K = min(self.config.reduction.nmf_features, layer.channels)
            pictures = self._pictures(layer, K)
            files = K * (2 + len(self._popups(layer)))
            grids = K * sum(4 * g * g * 5 // 4 for g, _, _ in self._popups(layer))
            parts.append(replace(pictures, bytes=pictures.bytes // PNG_RATIO + grids + files * FILE_OVERHEAD))
        for method in s.methods:
            for site in method.sites:
                per_job = method.outputs * self._stored_bytes(method, site)
                parts.append(Part(E * per_job, self._stored(method, site), _STORED))
                if self.states:
                    per_target = method.outputs * self._stored_bytes(method, site, self.states[1])
                    parts.append(Part(self.states[0] * per_target, f"{method.name} of the states of interest"))
        per_sheet, _ = sprite_layout(T, s.frame[0], s.frame[1])
        sheets = E * -(-T // per_sheet)
        per_step = (17 + 4 * s.num_actions) * 5 // 4
        parts.append(Part(E * T * (self.fr // PNG_RATIO + per_step) + (sheets + E) * FILE_OVERHEAD,
                          f"trajectories {_count(E)} x {_count(T)} frames of {_shape(s.frame)}",
                          ("num_steps", "num_envs")))  # fmt: skip
        H, W, _ = s.observation
        parts.append(Part(N * H * W * 3 // PNG_RATIO + -(-N // OBS_PER_SHEET) * FILE_OVERHEAD, self.obs_what,
                          ("num_obs", "obs_num_envs")))  # fmt: skip
        parts.append(Part(300_000 + 100 * E, "the page and its manifest"))  # interface.html is about 100 KB
        return parts


@functools.lru_cache(maxsize=256)
def _popups(size: int, layer_size: int, expand_mults: tuple[int, ...], subdiv_mults: tuple[float, ...]
            ) -> list[tuple[int, int, int]]:  # fmt: skip
    """(cells per side, patch px per side, canvas bytes) of each popup of one feature, as
    :func:`...feature_vis.dataset_examples.popup` cuts them from ``size``-pixel observations."""
    out = []
    for e in expand_mults:
        for d in subdiv_mults:
            g = popup_cells(layer_size, e, d)
            p = min(size, max(1, math.floor(e * size / layer_size + 0.5)))
            out.append((g, p, (g * p) ** 2 * 4))
    return out


def _count(n: int) -> str:
    """1,000,000,000,000 as written; beyond a quadrillion, 10^400 (the user typed it anyway)."""
    return f"{n:,}" if n < 10**15 else f"~10^{len(str(n)) - 1}"


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)
