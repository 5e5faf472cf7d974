"""The data contract between Python and the interface page: everything the page reads.

Why this shape
--------------
The page is opened from disk (``file://``), where Chromium blocks ``fetch`` and reading pixels
back from a canvas. So numbers travel in ``<script>`` tags: every payload is one file
``data/<key>.js`` holding a single call ``window.__rlv_receive("<key>", {...json...});``, and
the page adds the tag only when it needs that key (one layer x trajectory x output at a time).
Images are PNG files in ``data/`` (an ``<img>`` from ``file://`` loads fine; it is only drawn,
never read back), or ``data:`` URLs; an :data:`ImageRef` is either.

Arrays are JSON objects (:class:`~.codec.EncodedArray` on the wire): stored dtype, shape,
``scale``, ``compression`` (``"none"`` or ``"deflate"``, i.e. zlib, which the browser inflates
with ``DecompressionStream("deflate")``) and base85 ``data``, little-endian, C order. The page
computes ``value = stored * scale`` (scale is 1 for unquantised arrays). Attribution maps are
quantised: non-negative maps to uint8, the signed residual to int8 with ``scale = max|x| / 127``;
an all-zero map has scale 0. The error is at most ``scale / 2``. The positive and negative maps of
attribution and map payloads share one scale, :func:`~.codec.display_step`: 4% of the 99th
percentile of their nonzero values (the page's full colour), or ``max / 255`` where that is finer;
values over 255 steps are clipped to it (about 1 in 10^5 on the CoinRun agent's layers).

Keys (:data:`KEY_TEMPLATES`) use indices into the manifest's lists, never names, so output names
such as ``logit:LEFT+UP`` need no escaping; they match :data:`KEY_PATTERN`.

On-disk layout (``directory`` is the data directory, ``<out>/data``)::

    manifest.js                      Manifest (loaded first)
    traj-<t>.js, traj-<t>-<s>.png    TrajectoryPayload, its frames' sprite sheets
    attr-<l>-<t>-<o>.js              AttributionPayload: layer l, trajectory t, output o
    feat-<l>-<f>.js                  FeaturePayload: layer l, NMF feature f
    feat-<l>-<f>-thumb.png, feat-<l>-<f>-p<i>.png   legend thumbnail, popup i
    states-<k>.js                    StatesPayload: target k of the states of interest
    obs-<s>.png                      observation set sprite sheets (lazy, OBS_PER_SHEET each)

Byte budget per frame (one layer, trajectory and output; K NMF features, h x w layer)
-------------------------------------------------------------------------------------
Quantised: ``2*K*h*w`` (positive + negative, uint8) ``+ h*w`` (residual, int8) ``+ 4*(K+1)``
(float32 totals), against ``4*(2*K+1)*h*w + 4*(K+1)`` as float32 (:func:`estimate_bytes`); a
recurrent agent's payloads add 4 (``memory_totals``).
Measured on integrated-gradient attribution of the bundled CoinRun agent (value output, 64
frames, 10 steps), reduced by an 8-feature NMF; deflate level 6, before base85's 5/4:

=======  ===  ========  =========  ===================  =====================
layer    K    float32   quantised  quantised + deflate  zeros (positive map)
=======  ===  ========  =========  ===================  =====================
16 x 16  8    17,444 B  4,388 B    1,182 B (3.7x)       42 %
32 x 32  8    69,668 B  17,444 B   4,781 B (3.6x)       56 %
=======  ===  ========  =========  ===================  =====================

Level 9 saves under 2 % more at 4-7x the time; reordering axes or delta-coding along time
did not help. Since issue 20, NMF feature maps are deflated Huffman-only (17% smaller than level 6,
12x faster) on steps of the display scale: 6.7 KB a frame of a 32 x 32 layer with base85, on the
demo (docs/benchmarks.md). So a 512-frame trajectory costs about 0.8 MB (16 x 16) or 3.1 MB (32 x 32) of
``.js`` per output after base85, and the page loads one at a time. The trajectory payload adds
``17 + 4*A`` bytes per frame before deflate; its frames are PNG sprite sheets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, NewType

import numpy as np

FORMAT_VERSION = 1
"""Bumped whenever a field changes meaning; the reader refuses other versions."""
RECEIVER = "__rlv_receive"
"""The global function each payload script calls: ``window.__rlv_receive(key, payload)``."""
DATA_DIRNAME = "data"
"""Payload files live in this folder beside interface.html; image refs are relative to it."""
KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
"""Safe file name stems: no dots, slashes or spaces, so a key can never leave the folder."""
KEY_TEMPLATES: Mapping[str, str] = {
    "manifest": "manifest",
    "trajectory": "traj-{trajectory}",
    "attribution": "{prefix}-{layer}-{trajectory}-{output}",
    "map": "{prefix}-{site}-{trajectory}-{output}",
    "tree": "{prefix}-tree-{trajectory}-{output}",
    "feature": "feat-{layer}-{feature}",
    "states": "states-{target}",
}
"""One template per payload kind; the page's key functions are generated from the same text.
``prefix`` is the method's :attr:`MethodEntry.key_prefix`; a map's ``site`` is its layer index, or
:data:`INPUT_SITE` for a method that reads the input."""
INPUT_SITE = "in"
"""The ``site`` of maps computed on the model's input rather than at a layer."""
DEFAULT_KEY_PREFIX = "attr"
"""Key prefix of the first ``channels`` method; format-1 outputs (integrated gradients only) used it."""
OBS_PER_SHEET = 64
"""Observation-set images per sprite sheet: small sheets, so hovering loads little."""

ImageRef = NewType("ImageRef", str)
"""A PNG file name inside the data directory, or a ``data:image/png;base64,...`` URL."""
DTYPES = ("uint8", "int8", "uint16", "int16", "int32", "float32")
"""Stored dtypes an encoded array may have (little-endian)."""
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class ArraySpec:
    """How one array field is stored: dims name its axes (equal names must have equal sizes)."""

    dims: tuple[str, ...]
    stored: str  # one of DTYPES
    quantised: bool  # stored * scale recovers floats; otherwise scale is 1
    logical: str  # what the reader returns: "float32", "int32" or "bool"


def _doc(text: str) -> Any:
    return field(metadata={"doc": text})


def _optional(text: str, default: Any) -> Any:
    """A field left out of the JSON when it holds ``default`` (a reader fills it back in), so
    outputs that do not use it keep the bytes they had before it existed."""
    return field(default=default, metadata={"doc": text, "optional": True})


def is_optional(f: Any) -> bool:
    return bool(f.metadata.get("optional"))


def _array(text: str, dims: str, stored: str, quantised: bool = False, logical: str = "float32"):
    spec = ArraySpec(tuple(dims.split()), stored, quantised, logical)
    return field(metadata={"doc": text, "array": spec})


def _optional_array(text: str, dims: str, stored: str) -> Any:
    """An unquantised array field that may be absent (None): left out of the JSON then, so outputs
    without it keep the bytes they had before it existed."""
    spec = ArraySpec(tuple(dims.split()), stored, False, "float32")
    return field(default=None, metadata={"doc": text, "array": spec, "optional": True})


def array_spec(f: Any) -> ArraySpec | None:
    """The :class:`ArraySpec` of a dataclass field, or None for a plain JSON field."""
    return f.metadata.get("array")


class _Record:
    """Shared checks: arrays get their logical dtype, read-only, and consistent dim sizes."""

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for f in fields(self):  # type: ignore[arg-type]
            spec = array_spec(f)
            if spec is None or (is_optional(f) and getattr(self, f.name) is None):
                continue
            value = np.array(getattr(self, f.name), dtype=spec.logical, copy=True)
            if value.ndim != len(spec.dims):
                raise ValueError(f"{type(self).__name__}.{f.name} must have dims {spec.dims}, got {value.shape}")
            for dim, size in zip(spec.dims, value.shape):
                if sizes.setdefault(dim, size) != size:
                    raise ValueError(f"{type(self).__name__}.{f.name}: dim {dim} is {size}, elsewhere {sizes[dim]}")
            if spec.logical == "float32" and not np.isfinite(value).all():
                raise ValueError(f"{type(self).__name__}.{f.name} has NaN or infinite values")
            if spec.quantised and spec.stored.startswith("u") and (value < 0).any():
                raise ValueError(f"{type(self).__name__}.{f.name} must be non-negative")
            value.flags.writeable = False
            object.__setattr__(self, f.name, value)


# ---------------------------------------------------------------------------- manifest


@dataclass(frozen=True, kw_only=True)
class FeatureInfo:
    """One NMF feature of a layer, as the legend shows it."""

    name: str = _doc('Display name, "feature 1", "feature 2", ... or the name given with --feature-names')
    color: str = _doc("Colour as #rrggbb; maps draw this feature in it")
    direction: tuple[float, ...] = _optional(
        "The NMF component over the layer's C channels (summing to 1): what `edit --remove-feature` "
        "projects out; absent in runs older than issue 21",
        (),
    )

    def __post_init__(self) -> None:
        if not _HEX_COLOR.fullmatch(self.color):
            raise ValueError(f"feature colour must be #rrggbb, got {self.color!r}")


@dataclass(frozen=True, kw_only=True)
class LayerInfo:
    """An attributed layer; its index in Manifest.layers is the ``layer`` of keys."""

    name: str = _doc("Dotted module name that was hooked")
    label: str = _doc('Short label by resolution stage, e.g. "2b"')
    shape: tuple[int, int, int] = _doc("Activation shape (C, h, w); maps are h x w")
    features: tuple[FeatureInfo, ...] = _doc("NMF features; K = their count")


@dataclass(frozen=True, kw_only=True)
class MethodEntry:
    """An explanation method the run computed: what it is (the page's menu and hover note), what
    it produces, and which outputs and layers it covers."""

    name: str = _doc('Registry name, e.g. "ig", "gradcam", "perturbation"')
    title: str = _doc('Display name, e.g. "Grad-CAM"')
    citation: str = _doc("Where the method comes from")
    summary: str = _doc("One line on what its maps show")
    produces: Literal["channels", "map", "tree"] = _doc(
        "channels: attribution payloads in the layer's NMF features; map: map payloads (heatmaps); "
        "tree: tree payloads (an attention agent's attention tree)"
    )
    signed: bool = _doc("Maps can be negative (drawn with a diverging colour map); false: non-negative")
    outputs: tuple[int, ...] = _doc("Indices into Manifest.outputs that it explains")
    layers: tuple[int, ...] = _doc("Indices into Manifest.layers it was computed at; empty for input maps")
    key_prefix: str = _doc("The prefix of its payload keys")
    map_shape: tuple[int, int] | None = _optional(
        "(h, w) of its maps of the input when they are not the observation's size: a map read inside the "
        "network and drawn over the frame, as an attention mask; absent: the observation's size",
        None,
    )

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,19}", self.key_prefix):
            raise ValueError(f"key_prefix must be letters, digits or _, got {self.key_prefix!r}")
        if not self.outputs:
            raise ValueError(f"method {self.name} explains no output")


DEFAULT_METHOD: dict[str, Any] = {
    "name": "ig",
    "title": "Integrated gradients",
    "citation": "Sundararajan, Taly & Yan, Axiomatic Attribution for Deep Networks, ICML 2017",
    "summary": "How much each feature at this layer adds to the output, relative to a zero activation.",
}
"""The method of a manifest without ``methods`` (format-1 outputs): integrated gradients of every
output at every layer, keyed with :data:`DEFAULT_KEY_PREFIX`. Equal to the registry's ``ig``
(a test checks it)."""


def default_methods(outputs: int, layers: int) -> tuple[MethodEntry, ...]:
    """What a manifest without ``methods`` means."""
    return (
        MethodEntry(
            **DEFAULT_METHOD,
            produces="channels",
            signed=True,
            outputs=tuple(range(outputs)),
            layers=tuple(range(layers)),
            key_prefix=DEFAULT_KEY_PREFIX,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class Bookmark:
    """A frame worth a look: an unexpectedly good (high) or bad (low) advantage."""

    kind: Literal["high", "low"] = _doc("high: unexpected success; low: unexpected failure")
    trajectory: int = _doc("Trajectory index")
    frame: int = _doc("Frame index within the trajectory")
    advantage: float = _doc("GAE advantage at that frame")


@dataclass(frozen=True, kw_only=True)
class Sprites:
    """Equal-sized images packed row-major into sheets, so there is one file per sheet, not
    per image. Image i is on sheet ``i // per_sheet`` at cell ``j = i % per_sheet``: x =
    ``(j % columns) * width``, y = ``(j // columns) * height``."""

    sheets: tuple[ImageRef, ...] = _doc("Sheet images, RGB PNG")
    count: int = _doc("Number of images")
    height: int = _doc("Image height in pixels")
    width: int = _doc("Image width in pixels")
    columns: int = _doc("Images per sheet row")
    per_sheet: int = _doc("Images per sheet (the last sheet may hold fewer)")

    def __post_init__(self) -> None:
        if min(self.count, self.height, self.width, self.columns, self.per_sheet) < 1:
            raise ValueError(f"sprite sizes must be positive: {self}")
        if len(self.sheets) != -(-self.count // self.per_sheet):
            raise ValueError(
                f"{self.count} images at {self.per_sheet} a sheet need "
                f"{-(-self.count // self.per_sheet)} sheets, got {len(self.sheets)}"
            )

    def locate(self, index: int) -> tuple[ImageRef, int, int]:
        """The sheet holding image ``index`` and the pixel (x, y) of its top-left corner."""
        if not 0 <= index < self.count:
            raise IndexError(f"image {index} out of range 0..{self.count - 1}")
        cell = index % self.per_sheet
        x, y = (cell % self.columns) * self.width, (cell // self.columns) * self.height
        return self.sheets[index // self.per_sheet], x, y


@dataclass(frozen=True)
class StateTarget:
    """One target of the states of interest (seed 003): what its states were optimised toward."""

    name: str = _doc('"high-value", "low-value", "decisive" or "action:NAME"')
    title: str = _doc('Display name, e.g. "T+ high value"')
    trajectory: int = _doc("The trajectory holding its generated states, one per frame")


@dataclass(frozen=True)
class StatesInfo:
    """The states of interest: generated frames, each optimised toward a target in the latent space
    of a generator of the agent's states. Each target's states are one trajectory (after the played
    ones), so every method explains them like any frame; its :class:`StatesPayload` adds the rest."""

    targets: tuple[StateTarget, ...] = _doc("The targets, in the order their strips are shown")
    generator: str = _doc("One line on the generator: how long it trained and how well it reconstructs")
    start: str = _doc('"observations" (latents start at encodings of real states) or "prior" (at N(0, I))')


@dataclass(frozen=True, kw_only=True)
class EpisodeStats:
    """Episodes played by one agent (the original, or one with a feature removed)."""

    episodes: int = _doc("Episodes played")
    mean_return: float = _doc("Mean episode return")
    interval: float = _doc("Half-width of the 95% confidence interval of the mean return")
    completion: float | None = _doc("Share of episodes that completed the level; null where the env has no levels")
    timeouts: float = _doc("Share of episodes that ended by reaching the step limit")
    deaths: float = _doc("Share of episodes that ended otherwise without completing the level (the agent died)")


@dataclass(frozen=True, kw_only=True)
class AblationInfo:
    """Model editing (issue 21): the agent played with each NMF feature of one layer projected out."""

    layer: int = _doc("Index into Manifest.layers whose features were removed")
    original: EpisodeStats = _doc("The unedited agent on the same levels")
    features: tuple[EpisodeStats, ...] = _doc("One per feature of that layer: the agent without it")
    ends: str = _doc("How an episode's end was classified (timeout, death, level completed)")


@dataclass(frozen=True, kw_only=True)
class CategoryScore:
    """Ground truth on one object category (OCAtari's names: Player, Ball, Enemy...)."""

    category: str = _doc("OCAtari's category name")
    mass: float = _doc("Mean share of the map's positive mass on objects of this category")
    chance: float = _doc("Mean share of the frame's area those objects cover")
    pointing: float = _doc("Share of frames (holding such an object) whose map peaks on one")


@dataclass(frozen=True, kw_only=True)
class ReportRow:
    """One method's faithfulness checks (issue 21), on the report card's frames and output."""

    method: str = _doc("Registry name, as MethodEntry.name")
    title: str = _doc("Display name")
    site: str = _doc('Where it was computed: a layer label (maps upsampled to the input) or "input"')
    sanity_spearman: tuple[float, ...] = _doc(
        "Mean Spearman rank correlation of |map| with the original's after each cascade step (ReportCard.randomised)"
    )
    sanity_ssim: tuple[float, ...] = _doc("Mean SSIM of the min-max normalised |map| with the original's, per step")
    deletion_auc: float = _doc(
        "Mean area under the output as the most important pixels are blurred first (lower: faithful)"
    )
    insertion_auc: float = _doc(
        "Mean area under the output as the most important pixels are unblurred first (higher: faithful)"
    )
    frame_deletion: tuple[float, ...] = _doc("Deletion AUC of each of ReportCard.frames")
    frame_insertion: tuple[float, ...] = _doc("Insertion AUC of each of ReportCard.frames")
    completeness: float | None = _doc(
        "Mean |sum of attribution - (f(x) - f(baseline))| / |f(x) - f(baseline)|; "
        "null where the method makes no such claim"
    )
    object_mass: float | None = _doc("Mean share of the positive mass on game objects; null without ground truth")
    pointing: float | None = _doc("Share of frames whose map peaks on a game object; null without ground truth")
    categories: tuple[CategoryScore, ...] = _doc("The same per object category")
    passes: tuple[str, ...] = _doc(
        'Checks passed: "sanity", "deletion", "insertion", "objects", "pointing", "completeness"'
    )
    fails: tuple[str, ...] = _doc("Checks failed; a check in neither list did not apply")


@dataclass(frozen=True, kw_only=True)
class ReportCard:
    """Which explanations to believe: each method's faithfulness checks side by side."""

    output: str = _doc('The output every method explains here, e.g. "value"')
    frames: tuple[tuple[int, int], ...] = _doc("(trajectory, frame) of each evaluated frame")
    randomised: tuple[str, ...] = _doc("Layers re-initialised, top-down, one more per cascade step")
    baseline: str = _doc("What deletion and insertion replace pixels with, e.g. a Gaussian blur")
    steps: int = _doc("Deletion and insertion steps (the curves have steps + 1 points)")
    random_deletion_auc: float = _doc("Deletion AUC of uniformly random maps (the chance level)")
    random_insertion_auc: float = _doc("Insertion AUC of uniformly random maps")
    centre_deletion_auc: float = _doc("Deletion AUC of a centre-bias map (a Gaussian at the frame's centre)")
    centre_insertion_auc: float = _doc("Insertion AUC of a centre-bias map")
    random_frame_deletion: tuple[float, ...] = _doc("The random maps' deletion AUC per frame")
    random_frame_insertion: tuple[float, ...] = _doc("The random maps' insertion AUC per frame")
    object_chance: float | None = _doc("Mean share of the frame's area on game objects; null without ground truth")
    objects: str = _doc('Where the ground truth comes from, e.g. "OCAtari (RAM)"; empty without')
    sanity_threshold: float = _doc("A method passes the sanity check when its final Spearman is below this")
    rows: tuple[ReportRow, ...] = _doc("One per method")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What the page needs before anything else; small, loaded once from manifest.js."""

    KIND: ClassVar[str] = "manifest"
    format_version: int = field(default=FORMAT_VERSION, metadata={"doc": "== FORMAT_VERSION"})
    env_id: str = _doc('Environment id, e.g. "coinrun"')
    agent: str = _doc("Agent / checkpoint name shown in the title")
    action_names: tuple[str, ...] = _doc("Name of each action index")
    action_groups: Mapping[str, tuple[int, ...]] = _doc("Group name -> action indices")
    outputs: tuple[str, ...] = _doc('Explained outputs, e.g. "value", "logit:RIGHT", "group:LEFT"')
    layers: tuple[LayerInfo, ...] = _doc("Attributed layers")
    default_layer: int = _doc("Index into layers shown first")
    trajectory_lengths: tuple[int, ...] = _doc("Frames in each trajectory")
    observation_size: tuple[int, int] = _doc("Observation (height, width) the agent sees")
    fps: float = _doc("Default playback speed, frames per second")
    bookmarks: tuple[Bookmark, ...] = _doc("High- and low-advantage frames")
    observations: Sprites | None = _doc("Observation set that popup grids index; null if none")
    action_outputs: str = _doc('"logits" (a policy) or "q_values" (a Q-network; "logit:" outputs are Q-values)')
    methods: tuple[MethodEntry, ...] = _optional(
        "Explanation methods in menu order; absent: integrated gradients only (see default_methods)", ()
    )
    states: StatesInfo | None = _optional("States of interest; absent when the run has none", None)
    report: ReportCard | None = _optional("The methods' faithfulness report card; absent when not computed", None)
    ablation: AblationInfo | None = _optional(
        "Returns with each feature of a layer removed (model editing); absent when not computed", None
    )

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            from ..errors import UserError

            raise UserError(
                f"interface data has format version {self.format_version}, this package reads "
                f"{FORMAT_VERSION}; rebuild the interface"
            )
        object.__setattr__(self, "action_groups", {k: tuple(v) for k, v in self.action_groups.items()})
        checks = [
            (bool(self.layers), "at least one layer"),
            (0 <= self.default_layer < len(self.layers), "default_layer indexing layers"),
            (bool(self.outputs) and len(set(self.outputs)) == len(self.outputs), "unique outputs"),
            (all(n >= 1 for n in self.trajectory_lengths), "positive trajectory lengths"),
            (self.fps > 0, "a positive fps"),
            (self.action_outputs in ("logits", "q_values"), 'action_outputs "logits" or "q_values"'),
            (
                all(0 <= i < len(self.action_names) for g in self.action_groups.values() for i in g),
                "action groups indexing action_names",
            ),
            (
                all(
                    0 <= b.trajectory < len(self.trajectory_lengths)
                    and 0 <= b.frame < self.trajectory_lengths[b.trajectory]
                    for b in self.bookmarks
                ),
                "bookmarks inside the trajectories",
            ),
        ]
        methods = self.all_methods
        checks += [
            (len({m.key_prefix for m in methods}) == len(methods), "unique method key prefixes"),
            (
                all(0 <= o < len(self.outputs) for m in methods for o in m.outputs)
                and all(0 <= i < len(self.layers) for m in methods for i in m.layers),
                "methods indexing outputs and layers",
            ),
        ]
        if self.states is not None:
            held = [t.trajectory for t in self.states.targets]
            inside = all(0 <= t < len(self.trajectory_lengths) for t in held)
            checks.append(
                (bool(held) and inside and len(set(held)) == len(held), "states targets with a trajectory each")
            )
        if self.report is not None:
            inside = all(
                0 <= t < len(self.trajectory_lengths) and 0 <= f < self.trajectory_lengths[t]
                for t, f in self.report.frames
            )
            checks.append((inside, "report card frames inside the trajectories"))
        if self.ablation is not None:
            a = self.ablation
            fits = 0 <= a.layer < len(self.layers) and len(a.features) == len(self.layers[a.layer].features)
            checks.append((fits, "an ablation of one entry per feature of a layer"))
        for ok, what in checks:
            if not ok:
                raise ValueError(f"manifest needs {what}")
        if self.methods == default_methods(len(self.outputs), len(self.layers)):
            object.__setattr__(self, "methods", ())  # written as absent, as format-1 outputs were

    @property
    def all_methods(self) -> tuple[MethodEntry, ...]:
        """``methods``, or what its absence means."""
        return self.methods or default_methods(len(self.outputs), len(self.layers))

    def key(self) -> str:
        return MANIFEST_KEY

    @property
    def played_trajectories(self) -> int:
        """Trajectories the agent played (the states of interest's come after them)."""
        if self.states is None:
            return len(self.trajectory_lengths)
        return min(t.trajectory for t in self.states.targets)


# ---------------------------------------------------------------------------- payloads


@dataclass(frozen=True, kw_only=True, eq=False)
class TrajectoryPayload(_Record):
    """One trajectory's frames and per-step numbers; N frames, A actions."""

    KIND: ClassVar[str] = "trajectory"
    trajectory: int = _doc("Trajectory index")
    frames: Sprites = _doc("Display frames (what a person sees), one sprite per step")
    rewards: np.ndarray = _array("Reward for the action at each step", "N", "float32")
    firsts: np.ndarray = _array("1 where an episode starts", "N", "uint8", logical="bool")
    actions: np.ndarray = _array("Action index taken", "N", "int32", logical="int32")
    values: np.ndarray = _array("Value estimate", "N", "float32")
    logits: np.ndarray = _array("Policy logits (softmax gives probabilities)", "N A", "float32")
    advantages: np.ndarray = _array("GAE advantage", "N", "float32")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frames.count != len(self.rewards):
            raise ValueError(f"{self.frames.count} frames for {len(self.rewards)} steps")

    def key(self) -> str:
        return trajectory_key(self.trajectory)


@dataclass(frozen=True, kw_only=True, eq=False)
class AttributionPayload(_Record):
    """Attribution of one output to one layer's NMF features over one trajectory.

    Positive and negative parts are separate non-negative maps (negative holds magnitudes);
    the residual is what the K features do not explain, signed. Totals are unquantised sums
    over positions of ``positive - negative`` (and of the residual), for the line chart.
    A recurrent agent's methods that attribute to its incoming state add ``memory_totals``.
    """

    KIND: ClassVar[str] = "attribution"
    layer: int = _doc("Index into Manifest.layers")
    trajectory: int = _doc("Trajectory index")
    output: int = _doc("Index into Manifest.outputs")
    positive: np.ndarray = _array("Positive attribution per feature", "N K h w", "uint8", True)
    negative: np.ndarray = _array("Magnitude of negative attribution", "N K h w", "uint8", True)
    residual: np.ndarray = _array("Signed attribution outside the features", "N h w", "int8", True)
    totals: np.ndarray = _array("Net attribution per feature, summed over h, w", "N K", "float32")
    residual_totals: np.ndarray = _array("Residual summed over h, w", "N", "float32")
    display_scale: float = _doc(
        "A typical frame's largest value (median over frames); the page now scales by the 99th percentile "
        "of the trajectory's nonzero values instead, and keeps reading the field for format-1 outputs"
    )
    key_prefix: str = _optional(
        f"The method's MethodEntry.key_prefix; absent: {DEFAULT_KEY_PREFIX!r}", DEFAULT_KEY_PREFIX
    )
    memory_totals: np.ndarray | None = _optional_array(
        "Attribution to a recurrent agent's incoming state (its memory) per frame: with totals and "
        "residual_totals it adds up to f(a, s) - f(0, 0); absent for feed-forward agents",
        "N",
        "float32",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.display_scale) and self.display_scale >= 0):
            raise ValueError(f"display_scale must be finite and >= 0, got {self.display_scale}")

    def key(self) -> str:
        return attribution_key(self.layer, self.trajectory, self.output, self.key_prefix)


@dataclass(frozen=True, kw_only=True, eq=False)
class MapPayload(_Record):
    """One ``map`` method's heatmaps of one output over one trajectory, at a layer's resolution
    (h x w) or the input's. Positive and negative parts are separate non-negative maps (negative
    holds magnitudes; all zero for a method whose maps are never negative)."""

    KIND: ClassVar[str] = "map"
    method: int = _doc("Index into Manifest.methods")
    site: int = _doc("Index into Manifest.layers, or -1 for a map of the input")
    trajectory: int = _doc("Trajectory index")
    output: int = _doc("Index into Manifest.outputs")
    key_prefix: str = _doc("The method's MethodEntry.key_prefix")
    positive: np.ndarray = _array("Positive part", "N h w", "uint8", True)
    negative: np.ndarray = _array("Magnitude of the negative part", "N h w", "uint8", True)
    totals: np.ndarray = _array("positive - negative summed over h, w (unquantised)", "N", "float32")

    def key(self) -> str:
        return map_key(self.key_prefix, self.site, self.trajectory, self.output)


@dataclass(frozen=True, kw_only=True, eq=False)
class TreePayload(_Record):
    """One ``tree`` method's attention trees over one trajectory: per frame, T nodes in breadth-first
    order. The roots are the strongest peaks of the attention map; each node's children are the
    strongest peaks of its contribution map one layer below (activation x gradient of the node,
    summed over channels). Trees are padded to T nodes; padding has ``valid`` 0."""

    KIND: ClassVar[str] = "tree"
    method: int = _doc("Index into Manifest.methods")
    trajectory: int = _doc("Trajectory index")
    output: int = _doc("Index into Manifest.outputs")
    key_prefix: str = _doc("The method's MethodEntry.key_prefix")
    levels: tuple[str, ...] = _doc("The layer of each level, the attention layer first (dotted module names)")
    parent: np.ndarray = _array(
        "Index of the node's parent in its frame's tree; -1 for a root", "N T", "int16", logical="int32"
    )
    level: np.ndarray = _array("Index into levels", "N T", "uint8", logical="int32")
    y: np.ndarray = _array("Row of the node's cell in its level's map", "N T", "int16", logical="int32")
    x: np.ndarray = _array("Column of the node's cell in its level's map", "N T", "int16", logical="int32")
    contribution: np.ndarray = _array(
        "A root's attention weight; another node's contribution to its parent", "N T", "float32"
    )
    valid: np.ndarray = _array("0 for padding (fewer peaks than asked)", "N T", "uint8", logical="bool")
    boxes: np.ndarray = _array(
        "Receptive field (top, left, bottom, right) as fractions of the frame's height and width", "N T E", "float32"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.boxes.shape[2] != 4:
            raise ValueError(f"boxes hold 4 edges per node, got {self.boxes.shape[2]}")

    def key(self) -> str:
        return tree_key(self.key_prefix, self.trajectory, self.output)


@dataclass(frozen=True, kw_only=True, eq=False)
class StatesPayload(_Record):
    """One target's generated states, beyond what their trajectory holds: the target's energy (lower
    is more what it asks for) before and after the optimisation, and the nearest real frames in the
    observation set, by pixels and by energy (seed 003, figure 5). N states."""

    KIND: ClassVar[str] = "states"
    target: int = _doc("Index into StatesInfo.targets")
    energy: np.ndarray = _array("The target's energy of each generated state", "N", "float32")
    start_energy: np.ndarray = _array("The energy where its optimisation started", "N", "float32")
    nearest_pixels: np.ndarray = _array(
        "Observation-set index of the frame nearest in pixels (mean squared error)", "N", "int32", logical="int32"
    )
    pixel_error: np.ndarray = _array("That frame's mean squared error, pixels in [0, 1]", "N", "float32")
    novelty: np.ndarray = _array(
        "Share of pixels differing from that frame by more than a quarter of the range", "N", "float32"
    )
    nearest_energy: np.ndarray = _array(
        "Observation-set index of the frame whose energy is nearest the state's", "N", "int32", logical="int32"
    )
    nearest_energy_value: np.ndarray = _array("That frame's energy", "N", "float32")

    def key(self) -> str:
        return states_key(self.target)


@dataclass(frozen=True, kw_only=True, eq=False)
class Popup(_Record):
    """Dataset examples of a feature at one zoom: a mosaic and which observation fills each cell."""

    expand_mult: int = _doc("Patch size as a multiple of one layer position's pixels")
    subdiv_mult: float = _doc("Cells per layer position along each axis")
    image: ImageRef = _doc("The Gy x Gx mosaic, RGBA PNG")
    grid: np.ndarray = _array("Observation-set index per cell, -1 if empty", "Gy Gx", "int32", logical="int32")
    patch_height: int = _doc("Observation pixels one patch covers vertically")
    patch_width: int = _doc("Observation pixels one patch covers horizontally")
    tops: np.ndarray = _array(
        "Observation row of each mosaic row's patch top (< 0: padded)", "Gy", "int32", logical="int32"
    )
    lefts: np.ndarray = _array(
        "Observation column of each mosaic column's patch left edge", "Gx", "int32", logical="int32"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.expand_mult < 1 or not self.subdiv_mult > 0 or (self.grid < -1).any():
            raise ValueError("popups need expand_mult >= 1, subdiv_mult > 0, grid indices >= -1")
        if self.patch_height < 1 or self.patch_width < 1:
            raise ValueError("popup patches must be at least 1 x 1 pixels")


@dataclass(frozen=True, kw_only=True, eq=False)
class FeaturePayload:
    """Pictures of one NMF feature of one layer."""

    KIND: ClassVar[str] = "feature"
    layer: int = _doc("Index into Manifest.layers")
    feature: int = _doc("Index into LayerInfo.features")
    thumbnail: ImageRef = _doc("Legend thumbnail, RGB PNG")
    popups: tuple[Popup, ...] = _doc("One per (expand_mult, subdiv_mult)")

    def key(self) -> str:
        return feature_key(self.layer, self.feature)


PAYLOAD_TYPES: tuple[
    type[Manifest],
    type[TrajectoryPayload],
    type[AttributionPayload],
    type[MapPayload],
    type[TreePayload],
    type[FeaturePayload],
    type[StatesPayload],
] = (
    Manifest,
    TrajectoryPayload,
    AttributionPayload,
    MapPayload,
    TreePayload,
    FeaturePayload,
    StatesPayload,
)
"""Top-level payloads; each JSON object carries ``kind`` = the class's KIND."""


# ---------------------------------------------------------------------------- keys & budget


def trajectory_key(trajectory: int) -> str:
    return KEY_TEMPLATES["trajectory"].format(trajectory=_index(trajectory))


def attribution_key(layer: int, trajectory: int, output: int, prefix: str = DEFAULT_KEY_PREFIX) -> str:
    return KEY_TEMPLATES["attribution"].format(
        prefix=prefix, layer=_index(layer), trajectory=_index(trajectory), output=_index(output)
    )


def map_key(prefix: str, site: int, trajectory: int, output: int) -> str:
    """``site`` is a layer index, or -1 for the input."""
    where = INPUT_SITE if site == -1 else _index(site)
    return KEY_TEMPLATES["map"].format(prefix=prefix, site=where, trajectory=_index(trajectory), output=_index(output))


def tree_key(prefix: str, trajectory: int, output: int) -> str:
    return KEY_TEMPLATES["tree"].format(prefix=prefix, trajectory=_index(trajectory), output=_index(output))


def states_key(target: int) -> str:
    return KEY_TEMPLATES["states"].format(target=_index(target))


def feature_key(layer: int, feature: int) -> str:
    return KEY_TEMPLATES["feature"].format(layer=_index(layer), feature=_index(feature))


MANIFEST_KEY = KEY_TEMPLATES["manifest"]


def _index(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"key indices are non-negative integers, got {value!r}")
    return int(value)


def bookmarks_from(bookmarks: Any) -> tuple[Bookmark, ...]:
    """Convert :class:`~understanding_rl_vision.advantages.Bookmarks` (high and low lists)."""
    return tuple(
        Bookmark(kind=kind, trajectory=int(b.trajectory), frame=int(b.frame), advantage=float(b.advantage))
        for kind in ("high", "low")
        for b in getattr(bookmarks, kind)
    )


@dataclass(frozen=True)
class ByteBudget:
    """Bytes of one attribution payload before compression."""

    float32: int  # the same maps stored as raw float32
    quantised: int  # what is encoded (before deflate)
    text: int  # quantised after base85, the worst case on disk (deflate only shrinks it)


def estimate_bytes(h: int, w: int, features: int, frames: int = 1) -> ByteBudget:
    """Size of an AttributionPayload's arrays for ``frames`` frames of an h x w layer."""
    maps, totals = features * h * w, 4 * (features + 1)
    quantised = frames * (2 * maps + h * w + totals)
    float32 = frames * (4 * (2 * maps + h * w) + totals)
    whole, rest = divmod(quantised, 4)
    return ByteBudget(float32, quantised, 5 * whole + (rest + 1 if rest else 0))
