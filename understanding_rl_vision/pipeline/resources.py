"""Whether a run fits in this machine's memory and disk, judged from its config before any work.

Sizes on the command line are not bounded, and a run holds arrays whose size is the product of
several of them (trajectories are ``num_envs x num_steps`` frames, a layer's fit holds its
activation for every observation of the set, ...). :func:`estimate` adds up, from the config and
the agent's shapes alone, what each job holds at its peak and what the cache and the output folder
will hold; :func:`check_resources` compares that with what this machine has and refuses, in one
line that names what to lower and how far, a run that cannot fit. No loop runs over a size, so it
takes milliseconds whatever the sizes are.

Memory, for the processes on this machine: a fixed baseline each (:data:`BASELINE_BYTES`:
interpreter, torch, scikit-learn, the environment library) and a model per lane, plus the sum
of the largest job peaks that the lanes can run at once, or the export's peak if larger. A
job's peak is the largest of its stages, each the arrays alive together (read off :mod:`.jobs`),
times :data:`ALLOCATOR_FACTOR`:

* trajectories: every frame, twice while saved (``dataclasses.asdict`` copies the arrays);
* observation-set part: its frames and environments;
* layer fit: the observation set as uint8 and as float input, the layer's value attribution
  (twice while its chunks are joined), the NMF rows, the activations, the feature pictures;
* attribution: the whole trajectories (each lane loads its own copy), one trajectory as input,
  every output's attribution (twice while joined), the NMF transform's float64 maps;
* export: the trajectories, one (layer, trajectory)'s maps of every output, dequantised.

Integrated gradients add their working chunk: the graph above the layer (the chunk is sized to
:data:`DEFAULT_MEMORY_BUDGET`, or one frame if a frame alone is larger) and the forward pass
below it, which the chunk's size does not count (at layer 3c a chunk is ~300 frames of 1a-sized
activations). Disk: the cache holds uncompressed ``.npz`` products (estimated to within 1%); the
output folder quantised payloads (deflate assumed to save only base85's 5/4, an upper bound:
trained agents' maps deflate 3.7x, a short run's 1.4x) and PNG images (:data:`PNG_RATIO`).

Measured against real runs of the bundled agent (peak RSS, output and cache bytes) the estimate
was 1.2x to 1.6x the memory, 2.3x to 2.9x the output and 1.00x to 1.02x the cache.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import torch

from ..agents.base import Agent
from ..attribution import INPUT_CHUNK, INPUT_LAYER, Layer, explain_agent
from ..attribution.hooks import forward_hooks
from ..attribution.integrated_gradients import DEFAULT_MEMORY_BUDGET
from ..config import RunConfig
from ..envs.spec import AtariSpec, EnvSpec, ProcgenSpec
from ..common.machine import available_memory, format_bytes, free_disk, resident_memory
from ..errors import UserError
from ..contract.codec import sprite_layout
from ..contract.schema import OBS_PER_SHEET, estimate_bytes
from ..feature_vis.dataset_examples import MIN_THUMBNAIL_PX, THUMBNAIL_CELLS, popup_cells
from ..reduction.nmf import CHUNK_ROWS, MAX_FIT_ROWS
from ..rollout import OBS_PART_ENVS, observation_parts
from .parallel import Workers, lanes_per_process
from .plan import Plan, choose_env, choose_layers

BASELINE_BYTES = 1_200_000_000
"""One process before any job: Python, torch, scikit-learn, the environment library (procgen
alone maps about 400 MB), the model, thread stacks. A small real run peaks at about 1.0 GB."""
ENV_BYTES = 2_000_000
"""One environment instance (a procgen env measured 0.75 MB; an ALE emulator is a few MB)."""
PNG_RATIO = 4
"""Raw pixels over PNG bytes assumed for frames, observations and feature pictures (CoinRun
frames compress 11x, feature popups 4x)."""
IG_WORKING_FACTOR = (3, 2)
"""Integrated gradients' working chunk measured up to 3/2 of its nominal budget."""
ALLOCATOR_FACTOR = (5, 4)
"""Resident memory over the arrays a job holds, 5/4: freed blocks the allocator keeps, short-lived
temporaries not counted one by one (measured runs peaked 0.8x to 1.0x of the unscaled figure).
Fractions of integers, so that no size is ever too large for a float."""
FULL_RES = 512
"""Procgen's full-resolution display frames (``full_res_frames``)."""
ATARI_SCREEN = (210, 160, 3)
"""What a person sees of an Atari game (ALE's screen, 210 x 160 for most games)."""
FILE_OVERHEAD = 4096
"""Per file on disk: the file system's block, a zip entry's headers, a payload's JSON keys."""
ARRAY_OVERHEAD = 320
"""Per array in a cached ``.npz``: its zip entry's two headers and its ``.npy`` header."""

_FLAGS = {"num_steps": "--num-steps", "num_envs": "--num-envs", "num_obs": "--num-obs",
          "obs_num_envs": "--obs-num-envs", "ig_steps": "--ig-steps", "nmf_features": "--nmf-features",
          "thumbnail_grid": "--thumbnail-grid"}  # fmt: skip
_UNITS = {"num_steps": "steps", "num_envs": "environments", "num_obs": "observations per environment",
          "obs_num_envs": "observation-set environments", "ig_steps": "integration steps",
          "nmf_features": "features", "thumbnail_grid": "thumbnail tiles per side"}  # fmt: skip
_ADVICE = {"layers": "fewer --layers", "attr_policy": "no --attr-policy", "subdiv_mults": "smaller --subdiv-mults",
           "expand_mults": "fewer --expand-mults"}  # fmt: skip
"""Settings that are not one number: named in the advice, never searched."""
_STORED = ("num_steps", "num_envs", "attr_policy", "layers")
"""What sizes the stored attribution."""


# ------------------------------------------------------------------------------------ shapes


@dataclass(frozen=True)
class LayerShape:
    label: str
    channels: int
    height: int
    width: int
    above_sum: int
    """Elements per frame of every module output after the layer (autograd keeps about these)."""
    above_max: int
    """The largest of them (the backward pass holds about three at once)."""
    below_max: int
    """The largest module output up to the layer: the forward pass below it holds about two at
    once for every frame of a chunk, which integrated gradients' chunk size does not count."""

    @property
    def size(self) -> int:
        return self.channels * self.height * self.width

    @property
    def positions(self) -> int:
        return self.height * self.width

    @property
    def is_input(self) -> bool:
        return self.label == INPUT_LAYER


@dataclass(frozen=True)
class Shapes:
    """What the estimate needs of the agent and the plan: nothing here depends on a size setting."""

    observation: tuple[int, int, int]  # (H, W, C)
    frame: tuple[int, int, int]  # (h, w, 3), what a person sees
    num_actions: int
    outputs: int
    layers: tuple[LayerShape, ...]
    model_bytes: int


_SHAPES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, Shapes]] = weakref.WeakKeyDictionary()
"""Shapes already found for a model and the settings they depend on (finding layers traces the
model, which takes a good part of a second)."""


def shapes_of(agent: Agent, plan: Plan | RunConfig) -> Shapes:
    """The agent's and plan's shapes; from a config, resolved as :func:`.plan.make_plan` does it,
    without building a job per trajectory (so a huge ``num_envs`` costs nothing here)."""
    config = plan.config if isinstance(plan, Plan) else plan
    key = (id(agent), agent.observation_shape, config.env, config.layer_selection, config.attribution.outputs,
           isinstance(plan, Plan) and (plan.env, plan.layers, plan.outputs))  # fmt: skip
    try:
        known = _SHAPES.setdefault(agent.model, {})
        hash(key)
    except TypeError:  # an environment option that cannot be hashed, a model that cannot be weakly referenced
        return _shapes_of(agent, plan)
    if key not in known:
        known[key] = _shapes_of(agent, plan)
    return known[key]


def _shapes_of(agent: Agent, plan: Plan | RunConfig) -> Shapes:
    layers: Sequence[Layer]
    if isinstance(plan, Plan):
        env, layers, outputs = plan.env, plan.layers, len(plan.outputs)
    else:
        env = choose_env(agent, plan.env)
        layers = choose_layers(agent, plan)[0]
        outputs = len(explain_agent(agent).outputs(plan.attribution.outputs))
    sizes = _module_sizes(agent)
    shapes = []
    for layer in layers:
        c, h, w = layer.shape
        names = [name for name, _ in sizes]
        if layer.name == INPUT_LAYER or layer.name not in names:
            above, below = ([size for _, size in sizes] if layer.name == INPUT_LAYER else []), []
        else:
            position = len(names) - 1 - names[::-1].index(layer.name)
            above, below = [size for _, size in sizes[position + 1 :]], [size for _, size in sizes[: position + 1]]
        above = above or [8 * c * h * w]  # unknown (a model we cannot hook): a guess of its size
        below = below or [c * h * w, math.prod(agent.observation_shape)]
        shapes.append(LayerShape(layer.label, c, h, w, sum(above), max(above), max(below)))
    params = sum(p.numel() * p.element_size() for p in agent.model.parameters())
    observation = cast("tuple[int, int, int]", tuple(agent.observation_shape))  # an (H, W, C) shape
    return Shapes(observation, _frame_shape(env, agent.observation_shape), agent.num_actions,
                  outputs, tuple(shapes), params)  # fmt: skip


def _module_sizes(agent: Agent) -> list[tuple[str, int]]:
    """(module name, output elements per frame) of every leaf module, in execution order."""
    explained = explain_agent(agent)
    sizes: list[tuple[str, int]] = []

    def measure(name: str):
        def hook(module: torch.nn.Module, args: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.dim() > 0:
                sizes.append((name, output[0].numel()))

        return hook

    try:
        modules = [name for name, module in explained.model.named_modules() if name]
        example = agent.preprocess(torch.zeros((1, *agent.observation_shape), dtype=torch.uint8))
        with torch.no_grad(), forward_hooks(explained.model, {name: measure(name) for name in modules}):
            explained.forward(example)
    except (RuntimeError, AttributeError, TypeError, UserError):  # TorchScript and other models we cannot hook
        return []
    return sizes


def _frame_shape(env: EnvSpec, observation: Sequence[int]) -> tuple[int, int, int]:
    if isinstance(env, ProcgenSpec):
        size = FULL_RES if env.full_res_frames else observation[0]
        return (size, size, 3)
    if isinstance(env, AtariSpec):
        return ATARI_SCREEN
    return (observation[0], observation[1], 3)


# ------------------------------------------------------------------------------------ the estimate


@dataclass(frozen=True)
class Part:
    """One term of an estimate: its bytes, what it is, and the settings that size it."""

    bytes: int
    what: str
    knobs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Estimate:
    peak_memory_bytes: int
    """Resident memory at the run's peak, every process on this machine together."""
    cache_bytes: int
    """What the missing products add to the cache."""
    output_bytes: int
    """The output folder."""
    memory_parts: tuple[Part, ...]
    """The terms of the peak that grow with the settings, largest first (a refusal names the
    first and searches the settings of each)."""
    cache_parts: tuple[Part, ...]
    output_parts: tuple[Part, ...]

    @property
    def memory_part(self) -> Part:
        return self.memory_parts[0]

    @property
    def cache_part(self) -> Part:
        return self.cache_parts[0]

    @property
    def output_part(self) -> Part:
        return self.output_parts[0]


def estimate(agent: Agent, plan: Plan | RunConfig, lanes: int = 1, processes: int = 1,
             cached: Collection[str] = (), *, shapes: Shapes | None = None) -> Estimate:  # fmt: skip
    """What ``plan`` (or a config, planned as :func:`.plan.make_plan` would) needs, run by
    ``processes`` ranks on this machine with ``lanes`` lanes each; ``cached`` names products
    already in the cache (only a plan's job names mean anything there)."""
    shapes = shapes or shapes_of(agent, plan)
    config = plan.config if isinstance(plan, Plan) else plan
    missing = _missing_jobs(plan, cached) if isinstance(plan, Plan) and cached else None
    return _estimate(shapes, config, max(1, lanes), max(1, processes), missing)


def _missing_jobs(plan: Plan, cached: Collection[str]) -> dict[str, object]:
    """Which products still have to be computed: kinds, and for attribution the per-layer counts."""
    jobs = [job for job in plan.jobs if job.name not in cached]
    attribution = Counter(job.layer for job in jobs if job.kind == "attribution")
    return {
        "trajectories": any(job.kind == "trajectories" for job in jobs),
        "observations": sum(job.kind == "observations" for job in jobs),
        "fit": {job.layer for job in jobs if job.kind == "fit"},
        "attribution": [attribution[i] for i in range(len(plan.layers))],
    }


def _estimate(s: Shapes, config: RunConfig, lanes: int, processes: int, missing: dict | None) -> Estimate:
    c = _Sizes(s, config)
    jobs: list[tuple[list[Part], int]] = []  # (a job's peak stage, how many such jobs)
    parts = observation_parts(config.observation_set)
    if missing is None or missing["trajectories"]:
        jobs.append((c.trajectories_job(), 1))
    count = parts if missing is None else missing["observations"]
    if count:
        jobs.append((c.observation_part_job(), count))
    for index, layer in enumerate(s.layers):
        if missing is None or index in missing["fit"]:
            jobs.append((c.fit_job(layer), 1))
        count = config.trajectories.num_envs if missing is None else missing["attribution"][index]
        if count:
            jobs.append((c.attribution_job(layer), count))
    slots = lanes * processes  # jobs that can run at once on this machine
    running: list[list[Part]] = []
    for stage, count in sorted(jobs, key=lambda job: -_total(job[0])):
        running += [stage] * min(count, slots - len(running))
        if len(running) >= slots:
            break
    fixed = Part(processes * (BASELINE_BYTES + lanes * s.model_bytes), "the program itself")  # a model per lane
    compute = [fixed, *(_scaled(part) for stage in running for part in stage)]
    export = [fixed, *map(_scaled, c.export())]
    peak = max(compute, export, key=_total)
    cache, output = c.cache(missing), c.output()
    return Estimate(_total(peak), _total(cache), _total(output), _merged(peak[1:] or [fixed]), _merged(cache),
                    _merged(output))


def _scaled(part: Part) -> Part:
    return replace(part, bytes=part.bytes * ALLOCATOR_FACTOR[0] // ALLOCATOR_FACTOR[1])


def _merged(parts: Sequence[Part]) -> tuple[Part, ...]:
    """Equal terms added up (each lane's copy of the trajectories is one term, several times),
    largest first."""
    merged: dict[tuple[str, tuple[str, ...]], int] = {}
    for part in parts:
        merged[part.what, part.knobs] = merged.get((part.what, part.knobs), 0) + part.bytes
    found = [Part(size, what, knobs) for (what, knobs), size in merged.items()]
    return tuple(sorted(found, key=lambda p: -p.bytes)) or (Part(0, "nothing"),)


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
        self.obs_what = f"observation set {_count(o.obs_num_envs)} x {_count(o.num_obs)} {frames}"

    # ---------------------------------------------------------------- memory

    def ig_working(self, layer: LayerShape, frames: int, outputs: int, what: str) -> Part:
        """Integrated gradients' working chunk (as ``integrated_gradients._chunk_size`` sizes it)."""
        def per_frame(steps: int) -> int:
            return 4 * (steps * (layer.above_sum + 3 * layer.above_max + layer.size) + 2 * outputs * layer.size)

        steps = 1 if layer.is_input else self.config.attribution.ig_steps
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

    def attribution_job(self, layer: LayerShape) -> list[Part]:
        T, S, hw, Ko = self.T, layer.size, layer.positions, self.K_out
        K = min(self.config.reduction.nmf_features, layer.channels)
        what = f"attribution of {Ko} output{'s' * (Ko > 1)} x {_count(T)} frames at layer {layer.label}"
        knobs = ("num_steps", "attr_policy", "layers")
        transform_rows = min(T * hw, CHUNK_ROWS)
        stages = [
            [Part(8 * Ko * T * S, what, knobs), self.ig_working(layer, T, Ko, f"{_count(T)} frames")],
            [Part(4 * Ko * T * S + 5 * T * S + T * hw * (48 * K + 16) + Ko * T * hw * (2 * K + 1)
                  + transform_rows * layer.channels * 16, what, knobs)],
        ]  # fmt: skip
        inputs = Part(4 * T * self.ob, f"one trajectory of {_count(T)} frames", ("num_steps",))
        return [replace(self.traj_part, what=self.traj_part.what + " (one copy per lane)"), inputs,
                *max(stages, key=_total)]  # fmt: skip

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
        H, W, _ = self.s.observation
        stages.append([Part(2 * T * self.fr, f"sprite sheets of {_count(T)} frames", ("num_steps",))])
        stages.append([Part(N * (2 * self.ob + 2 * H * W * 3), self.obs_what, ("num_obs", "obs_num_envs"))])
        return [self.traj_part, *max(stages, key=_total)]

    # ---------------------------------------------------------------- disk

    def _stored(self, layer: LayerShape) -> str:
        outputs = f"{self.K_out} output{'s' * (self.K_out > 1)}"
        return f"attribution of {outputs} x {_count(self.E)} x {_count(self.T)} frames at layer {layer.label}"

    def cache(self, missing: dict | None) -> list[Part]:
        E, T, N = self.E, self.T, self.N
        parts = []
        if missing is None or missing["trajectories"]:
            parts.append(replace(self.traj_part, bytes=self.traj + FILE_OVERHEAD))
        count = observation_parts(self.config.observation_set) if missing is None else missing["observations"]
        if count:
            parts.append(Part(N * self.ob + count * FILE_OVERHEAD, self.obs_what, ("num_obs", "obs_num_envs")))
        for index, layer in enumerate(self.s.layers):
            K = min(self.config.reduction.nmf_features, layer.channels)
            if missing is None or index in missing["fit"]:
                pictures = self._pictures(layer, K)
                arrays = 1 + K * (3 + 7 * len(self._popups(layer)))  # each with a zip entry and a .npy header
                extra = K * layer.channels * 4 + arrays * ARRAY_OVERHEAD + FILE_OVERHEAD
                parts.append(replace(pictures, bytes=pictures.bytes + extra))
            count = E if missing is None else missing["attribution"][index]
            per_output = T * layer.positions * (2 * K + 1) + 4 * T * (K + 1) + 9 * ARRAY_OVERHEAD  # 9 arrays
            parts.append(Part(count * (self.K_out * per_output + FILE_OVERHEAD), self._stored(layer), _STORED))
        return parts

    def output(self) -> list[Part]:
        E, T, N, s = self.E, self.T, self.N, self.s
        parts = []
        for layer in s.layers:
            K = min(self.config.reduction.nmf_features, layer.channels)
            payload = estimate_bytes(layer.height, layer.width, K, T).quantised  # deflate >= base85's 5/4 assumed
            parts.append(Part(E * self.K_out * (payload + FILE_OVERHEAD), self._stored(layer), _STORED))
            pictures = self._pictures(layer, K)
            files = K * (2 + len(self._popups(layer)))
            grids = K * sum(4 * g * g * 5 // 4 for g, _, _ in self._popups(layer))
            parts.append(replace(pictures, bytes=pictures.bytes // PNG_RATIO + grids + files * FILE_OVERHEAD))
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
    :func:`..features.dataset_examples.popup` cuts them from ``size``-pixel observations."""
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


# ------------------------------------------------------------------------------------ the check

MAX_PLANNED_JOBS = 20_000
"""Above this many jobs the cache is not consulted (planning them would take long): a run that
large only fits if its sizes do, cached or not."""


def check_resources(agent: Agent, config: RunConfig | Plan, cache_dir: str | os.PathLike[str],
                    output_dir: str | os.PathLike[str], *, checkpoint_digest: str = "",
                    workers: Workers | None = None) -> None:  # fmt: skip
    """Refuse, with one line that says what to lower and how far, a run whose estimated memory or
    disk exceeds what this machine has; before any work, in milliseconds.

    Call it before :func:`.plan.make_plan` (which builds a job per trajectory and layer, so a huge
    ``num_envs`` would stall there): from a config it plans nothing unless the run does not fit
    as if nothing were cached, and then (given ``checkpoint_digest``, and for a plan of at most
    :data:`MAX_PLANNED_JOBS` jobs) it counts the products already in the cache as done. Rank 0
    judges and every rank raises the same error, so no rank waits for one that left.
    """
    workers = workers or Workers.detect()
    lanes, processes = lanes_per_process(agent, workers), workers.local_size()
    verdict: str | UserError | None = None
    if workers.is_root:
        try:
            verdict = _verdict(agent, config, Path(cache_dir), Path(output_dir), checkpoint_digest, lanes,
                               processes, workers.rank)  # fmt: skip
        except Exception as exc:  # the other ranks wait in the broadcast: they fail too
            workers.broadcast(exc if isinstance(exc, UserError) else UserError(f"rank 0 failed: {exc!r}"))
            raise
    verdict = workers.broadcast(verdict)
    if isinstance(verdict, UserError):
        raise verdict
    if verdict is not None:
        raise UserError(verdict)


@dataclass(frozen=True)
class _Room:
    memory: int | None  # bytes the run may hold, its processes' current memory included
    fixed: int  # what the processes hold before any job (refusals never rest on this alone)
    disks: tuple[tuple[int, int, Path, str], ...]  # (device, free bytes, folder, "cache" | "output")


def _verdict(agent: Agent, config: RunConfig | Plan, cache_dir: Path, output_dir: Path, checkpoint_digest: str,
             lanes: int, processes: int, rank: int) -> str | None:  # fmt: skip
    """The refusal, or None if the run fits."""
    shapes = shapes_of(agent, config)
    base = config.config if isinstance(config, Plan) else config
    memory = available_memory()
    room = _Room(None if memory is None else memory + processes * resident_memory(), processes * BASELINE_BYTES,
                 ((*free_disk(cache_dir), "cache"), (*free_disk(output_dir.parent), "output")))  # fmt: skip
    found = _estimate(shapes, base, lanes, processes, None)
    if _problem(found, room) is None:
        return None
    cached = _cached_products(agent, config, cache_dir, checkpoint_digest, rank, len(shapes.layers))
    if cached is not None:
        plan, names = cached
        found = _estimate(shapes, base, lanes, processes, _missing_jobs(plan, names))
        if _problem(found, room) is None:
            return None
    return _message(found, room, shapes, base, lanes, processes)


def _cached_products(agent: Agent, config: RunConfig | Plan, cache_dir: Path, checkpoint_digest: str, rank: int,
                     layers: int) -> tuple[Plan, set[str]] | None:  # fmt: skip
    """The plan and the names of its products already in the cache, where that is cheap to know."""
    from .cache import Cache
    from .plan import make_plan

    if not checkpoint_digest:
        return None
    if not isinstance(config, Plan):
        jobs = observation_parts(config.observation_set) + 1 + layers * (1 + config.trajectories.num_envs)
        if jobs > MAX_PLANNED_JOBS:
            return None
    directory = Cache(cache_dir, checkpoint_digest, rank).directory
    names = {path.name[: -len(".npz")] for path in directory.glob("*.npz")} if directory.is_dir() else set()
    if not names:
        return None
    return (config if isinstance(config, Plan) else make_plan(agent, config, checkpoint_digest)), names


def _problem(found: Estimate, room: _Room) -> str | None:
    """"memory", "disk" or None: what this estimate does not fit in."""
    if room.memory is not None and found.peak_memory_bytes > room.memory and room.fixed < room.memory:
        return "memory"
    if _disk_shortage(found, room):
        return "disk"
    return None


def _disk_shortage(found: Estimate, room: _Room) -> list[tuple[int, int, Path, str]]:
    """(needed, free, folder, "cache" / "output" / "cache and output") of each file system the
    run's files do not fit on."""
    needs: dict[int, list] = {}
    for device, free, folder, what in room.disks:
        entry = needs.setdefault(device, [0, free, folder, []])
        entry[0] += found.cache_bytes if what == "cache" else found.output_bytes
        entry[3].append(what)
    return [(need, free, folder, " and ".join(whats)) for need, free, folder, whats in needs.values() if need > free]


def _message(found: Estimate, room: _Room, shapes: Shapes, config: RunConfig, lanes: int, processes: int) -> str:
    def fits(settings: dict[str, int], lanes: int = lanes) -> bool:
        return _problem(_estimate(shapes, config.replace(**settings), lanes, processes, None), room) is None

    parts: Sequence[Part]
    if _problem(found, room) == "memory":
        parts = found.memory_parts
        head = (f"this run needs about {format_bytes(found.peak_memory_bytes)} of memory ({parts[0].what}) "
                f"but {format_bytes(room.memory or 0)} is available")  # fmt: skip
        elsewhere = ""
        if lanes > 1 and fits({}, lanes=1):  # each core runs a job at once (a lane): fewer cores fit
            cores = max(n for n in range(1, lanes) if fits({}, lanes=n))
            elsewhere = f", or give it at most {cores} of its {lanes} cores (taskset -c 0-{cores - 1})"
    else:
        need, free, folder, what = _disk_shortage(found, room)[0]
        parts = sorted(found.cache_parts * ("cache" in what) + found.output_parts * ("output" in what),
                       key=lambda p: -p.bytes)  # fmt: skip
        head = (f"this run needs about {format_bytes(need)} of disk for its {what} ({parts[0].what}) "
                f"but {format_bytes(free)} is free in {folder}")  # fmt: skip
        where = {"cache": "choose a --cache-dir", "output": "write the output (-o)"}.get(what, "choose a --cache-dir "
                                                                                          "and output (-o)")
        elsewhere = f", or {where} on a disk with more room"
    return f"{head}; {_advice(parts, shapes, config, fits)}{elsewhere}"


def _advice(parts: Sequence[Part], shapes: Shapes, config: RunConfig, fits: Callable[[dict[str, int]], bool]) -> str:
    """"lower --num-steps or --num-envs (at most ~N steps fit)": the settings that size the
    largest terms, those that alone can make the run fit first, and the first one's limit."""
    knobs = list(dict.fromkeys(k for part in parts[:4] for k in part.knobs))
    numbers = [k for k in knobs if k in _FLAGS and _setting(config, k) > 1]
    others = [_ADVICE[k] for k in parts[0].knobs if k in _ADVICE and _applies(k, shapes, config)]
    largest = {k: _largest_fitting(k, _setting(config, k), fits) for k in numbers}
    helpful = [k for k in numbers if largest[k] is not None]
    if helpful:
        knob = helpful[0]
        limit = f"at most ~{_round_down(cast(int, largest[knob])):,} {_UNITS[knob]} fit"  # helpful: not None
        text = f"lower {' or '.join(_FLAGS[k] for k in helpful)} ({limit})"
    elif numbers and not others:  # the largest term's own settings, all of them
        first = [k for k in parts[0].knobs if k in numbers] or numbers
        text = f"lower {' and '.join(_FLAGS[k] for k in first)}"
        text += " (no one of them alone is enough)" * (len(first) > 1)
    else:
        text = ""
    if others:
        text += (", or use " if text else "use ") + " or ".join(others)
    return text or "free some memory or disk, or run on a larger machine"


def _setting(config: RunConfig, name: str) -> int:
    owner = {"num_steps": config.trajectories, "num_envs": config.trajectories, "num_obs": config.observation_set,
             "obs_num_envs": config.observation_set, "ig_steps": config.attribution,
             "nmf_features": config.reduction, "thumbnail_grid": config.feature_vis}[name]  # fmt: skip
    return getattr(owner, name)


def _applies(name: str, shapes: Shapes, config: RunConfig) -> bool:
    if name == "layers":
        return len(shapes.layers) > 1
    if name == "attr_policy":
        return config.attribution.attr_policy
    if name == "expand_mults":
        return len(config.feature_vis.expand_mults) > 1
    return True


def _largest_fitting(knob: str, current: int, fits: Callable[[dict[str, int]], bool]) -> int | None:
    """The largest value below ``current`` with which the run fits (estimates grow with every
    size, so a bisection finds it in at most ~64 estimates); None if even 1 does not."""
    if not fits({knob: 1}):
        return None
    low, high = 1, min(current - 1, 1 << 64)  # nothing of 2**64 fits anywhere
    while low < high:
        middle = (low + high + 1) // 2
        if fits({knob: middle}):
            low = middle
        else:
            high = middle - 1
    return low


def _round_down(n: int) -> int:
    """Two significant digits, rounded down (an "at most" stays true)."""
    if n < 100:
        return n
    unit = 10 ** (len(str(n)) - 2)
    return n // unit * unit
