"""Typed, frozen configuration for each pipeline stage.

Defaults follow the original implementation; every field is documented where it is declared,
and the CLI exposes each one under the same name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .attribution.methods import BASIS_METHOD, REGISTRY, MethodSettings, MethodSettingsBase, method_class
from .errors import ConfigError


def _positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class TrajectoryConfig:
    """The trajectories shown in the interface."""

    num_envs: int = 8
    """Parallel environments; each gives one trajectory."""
    num_steps: int = 512
    """Frames per trajectory."""

    def __post_init__(self) -> None:
        _positive(self, "num_envs", "num_steps")


@dataclass(frozen=True)
class ObservationSetConfig:
    """The separate set of observations that NMF and feature visualisation are fitted on."""

    obs_num_envs: int = 32
    """Parallel environments to draw observations from."""
    num_obs: int = 128
    """Observations kept per environment."""
    obs_every: int = 128
    """Steps between two kept observations, so the set is not dominated by similar frames."""

    def __post_init__(self) -> None:
        _positive(self, "obs_num_envs", "num_obs", "obs_every")


@dataclass(frozen=True)
class AdvantageConfig:
    """Generalised advantage estimation and the bookmarks drawn from it."""

    gamma: float | None = None
    """Discount; None takes the checkpoint's value (0.999 if it has none)."""
    lam: float | None = None
    """GAE lambda; None takes the checkpoint's value (0.95 if it has none)."""
    num_bookmarks: int = 16
    """Bookmarks of each kind: highest and lowest advantage, at most one per episode."""

    def __post_init__(self) -> None:
        for name in ("gamma", "lam"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value}")
        if self.num_bookmarks < 0:
            raise ConfigError(f"num_bookmarks must be >= 0, got {self.num_bookmarks}")


@dataclass(frozen=True)
class ReductionConfig:
    """NMF of a layer's channels into a few features, fitted on value-function attribution."""

    nmf_features: int = 8
    """NMF components per layer (capped at the layer's channel count)."""
    nmf_seed: int = 0
    """Seed of the NMF initialisation, so the same input always gives the same features."""
    nmf_max_iter: int = 1000
    """Iteration cap for scikit-learn's NMF solver."""

    def __post_init__(self) -> None:
        _positive(self, "nmf_features", "nmf_max_iter")
        if not isinstance(self.nmf_seed, int) or self.nmf_seed < 0:
            raise ConfigError(f"nmf_seed must be a non-negative integer, got {self.nmf_seed!r}")


@dataclass(frozen=True)
class FeatureVisConfig:
    """Dataset-example pictures of each feature: legend thumbnails and spatial popups."""

    thumbnail_grid: int = 4
    """The legend thumbnail is a grid x grid mosaic of the strongest examples' patches."""
    expand_mults: tuple[int, ...] = (1, 2, 4, 8)
    """Popup zoom levels: a patch covers expand_mult x (observation px / layer px) pixels."""
    subdiv_mults: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    """Popup patch densities: the popup has round(layer size x subdiv / expand) cells per axis,
    so its canvas is about subdiv x the observation's size at every zoom level."""
    max_reuse_fraction: float = 0.1
    """Each observation fills at most ceil(cells / (fraction x observations)) popup cells."""

    def __post_init__(self) -> None:
        _positive(self, "thumbnail_grid")
        if not self.expand_mults or any(not isinstance(m, int) or m < 1 for m in self.expand_mults):
            raise ConfigError(f"expand_mults must be positive integers, got {self.expand_mults!r}")
        if not self.subdiv_mults or any(m <= 0 for m in self.subdiv_mults):
            raise ConfigError(f"subdiv_mults must be positive, got {self.subdiv_mults!r}")
        if not 0 < self.max_reuse_fraction <= 1:
            raise ConfigError(f"max_reuse_fraction must lie in (0, 1], got {self.max_reuse_fraction}")


@dataclass(frozen=True)
class InterfaceConfig:
    """How the page starts. The page has no defaults of its own: it receives these."""

    row_outputs: tuple[str, ...] = ("value",)
    """Outputs of the attribution rows the page opens with, one row each (names as in the
    manifest: value, logit:<action>, group:<name>)."""
    trajectory: int = 0
    """Trajectory shown first (0-based)."""
    overlay: bool = True
    """Draw attribution over the greyscale observation."""
    combine: bool = False
    """One image of positive + negative magnitude instead of two side by side."""
    residual: bool = False
    """Also draw the residual (what the features do not explain)."""
    popup_expand_mult: int = 4
    """Zoom of the feature popup when it opens (one of FeatureVisConfig.expand_mults)."""
    popup_subdiv_mult: float = 1.0
    """Patch density of the feature popup when it opens (one of FeatureVisConfig.subdiv_mults)."""
    scrubber_frames: int = 256
    """Frames visible in the scrubber and the line graphs."""
    residual_color: str = "#888888"
    """Colour of the residual in maps, bars and the legend."""
    fps: float = 12.0
    """Frames per second when playing; the page's fps box starts here."""
    gain: float = 1.0
    """Each row's starting gain: at 1, full colour is the 99th percentile of the trajectory's nonzero
    attribution (so weak frames stay visible); higher shows weaker attribution. The page rounds it
    to its slider's quarter-octave steps."""
    observation_opacity: float = 0.75
    """Opacity of the greyscale observation under the overlays, from 0 to 1."""

    def __post_init__(self) -> None:
        if not self.row_outputs:
            raise ConfigError("row_outputs needs at least one output")
        if not self.fps > 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")
        if not 1 / 8 <= self.gain <= 16:
            raise ConfigError(f"gain must lie in [1/8, 16], got {self.gain}")
        if not 0 <= self.observation_opacity <= 1:
            raise ConfigError(f"observation_opacity must lie in [0, 1], got {self.observation_opacity}")
        _positive(self, "popup_expand_mult", "scrubber_frames")
        if self.trajectory < 0:
            raise ConfigError(f"InterfaceConfig.trajectory must be >= 0, got {self.trajectory}")

    def page_defaults(self) -> dict[str, object]:
        """The page's ``config.defaults`` (names as the page spells them)."""
        return {
            "outputs": list(self.row_outputs),
            "trajectory": self.trajectory,
            "overlay": self.overlay,
            "combine": self.combine,
            "residual": self.residual,
            "popup": {"expand_mult": self.popup_expand_mult, "subdiv_mult": self.popup_subdiv_mult},
            "scrubberFrames": self.scrubber_frames,
            "residualColor": self.residual_color,
            "gain": self.gain,
            "observationOpacity": self.observation_opacity,
        }


@dataclass(frozen=True)
class LayerConfig:
    """Which layers get attribution, NMF features and a place in the page's layer list."""

    layers: tuple[str, ...] = ()
    """Layers by label (2b) or module name; empty means every discovered bottleneck layer."""
    discard_first_n: int = 0
    """Drop this many of the earliest discovered layers (ignored when layers are named)."""
    include_input: bool = False
    """Also show the input layer, with plain gradients instead of integrated gradients."""
    default_layer: str = ""
    """Layer the page opens on, by label or name; empty means the middle one, as the original."""

    def __post_init__(self) -> None:
        if self.discard_first_n < 0:
            raise ConfigError(f"discard_first_n must be >= 0, got {self.discard_first_n}")


@dataclass(frozen=True)
class AttributionConfig:
    """Which explanation methods run, and which of the model's outputs they explain."""

    methods: tuple[str, ...] = ("ig",)
    """Explanation methods by name, in the page's order: ig (integrated gradients), gradcam,
    gradcam-channels, gradcam++, hirescam, gradient, gradient-x-input, smoothgrad, smoothgrad-sq,
    vargrad, perturbation, attention, attention-tree (the last two for attention agents, which add
    them to the default by themselves). Each method's settings are flags of their own (--ig-steps,
    --noise-samples, ...)."""
    explain: tuple[str, ...] = ("value",)
    """Outputs every method explains: value, action (the logit or Q-value of the action taken at
    each frame), actor (all logits as one vector; perturbation only), logit:<action>, group:<name>,
    attention (an attention agent's attended features, summed; added when an attention method runs)."""
    attr_policy: bool = False
    """Also explain every policy logit and action group."""

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("methods needs at least one method, e.g. ig")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods lists a method twice: {','.join(self.methods)}")
        for name in self.methods:
            method_class(name)
        if not self.explain:
            raise ConfigError("explain needs at least one output, e.g. value")

    @property
    def selection(self) -> tuple[str, ...]:
        """What to explain, as :meth:`ExplainedModel.outputs` takes it."""
        return (*self.explain, "logits", "groups") if self.attr_policy else self.explain


@dataclass(frozen=True)
class StatesConfig:
    """States of interest (seed 003): frames generated for the agent, optimised toward a target."""

    states: str = ""
    """Folder of a generator trained for this agent (``understanding-rl-vision states train``); it
    adds the page's States of interest section. Empty: no section."""
    state_targets: tuple[str, ...] = ("high-value", "low-value", "decisive")
    """What to generate: high-value (T+), low-value (T-), decisive (T+-: one action good, another
    bad) and action:NAME (the agent sure of that action), one strip each."""
    state_count: int = 8
    """States generated per target."""
    state_steps: int = 200
    """Adam steps optimising each target's latents (0: the starting states themselves, decoded)."""
    state_learning_rate: float = 0.05
    """Adam's step size in the generator's latent space."""
    state_prior_weight: float = 0.01
    """Weight of the regulariser |z|^2 / 2 that keeps latents where the generator makes states (at
    0.01 the optimised latents stay near the radius N(0, I) draws have; 0.1 pulls them to blurred
    averages, 0.001 lets them leave it)."""
    state_sharpness: float = 1.0
    """Sharpness of the soft maximum over Q-values (or log-probabilities) in the targets."""
    state_start: Literal["observations", "prior"] = "observations"
    """Start the latents at the encodings of observation-set frames, or at draws from N(0, I)."""

    def __post_init__(self) -> None:
        _positive(self, "state_count")
        if not isinstance(self.state_steps, int) or self.state_steps < 0:
            raise ConfigError(f"state_steps must be a non-negative integer, got {self.state_steps!r}")
        if not self.state_targets:
            raise ConfigError("state_targets needs at least one target, e.g. high-value")
        if self.state_start not in ("observations", "prior"):
            raise ConfigError(f"state_start must be observations or prior, got {self.state_start!r}")
        for name in ("state_learning_rate", "state_prior_weight", "state_sharpness"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class EvaluationConfig:
    """Which explanations to believe (issue 21): the methods' report card, and the agent played
    with each NMF feature of the default layer removed."""

    report_frames: int = 0
    """Frames of the trajectories (spread evenly over them) that the faithfulness report card
    evaluates every method on; 0: no report card."""
    report_steps: int = 16
    """Points of each deletion and insertion curve, after the unperturbed one."""
    report_blur: float = 5.0
    """Sigma in input pixels of the Gaussian blur that deletion puts in place of pixels (and
    insertion starts from): blur keeps the frame's colours, so the output does not react to
    an unnatural black hole."""
    sanity_threshold: float = 0.5
    """A method passes the randomisation sanity check when its maps' mean Spearman correlation
    with the original's, after every layer is re-initialised, is below this."""
    ablation_episodes: int = 0
    """Episodes per condition of the ablation table (the agent as is, and with each feature of the
    default layer projected out, on the same levels); 0: no table."""
    feature_names: str = ""
    """A feature-names JSON file, as the page's legend downloads it: the legend shows those names."""

    def __post_init__(self) -> None:
        for name in ("report_frames", "ablation_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        _positive(self, "report_steps")
        if not self.report_blur > 0:
            raise ConfigError(f"report_blur must be positive, got {self.report_blur!r}")
        if not 0 < self.sanity_threshold <= 1:
            raise ConfigError(f"sanity_threshold must be in (0, 1], got {self.sanity_threshold!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run computes and shows. Field names are unique across the groups, so each
    is also a keyword of ``rl_clarity.run`` and a CLI flag (``nmf_features`` -> ``--nmf-features``)."""

    trajectories: TrajectoryConfig = TrajectoryConfig()
    observation_set: ObservationSetConfig = ObservationSetConfig()
    layer_selection: LayerConfig = LayerConfig()
    attribution: AttributionConfig = AttributionConfig()
    advantage: AdvantageConfig = AdvantageConfig()
    reduction: ReductionConfig = ReductionConfig()
    feature_vis: FeatureVisConfig = FeatureVisConfig()
    interface: InterfaceConfig = InterfaceConfig()
    states_of_interest: StatesConfig = StatesConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    method_settings: MethodSettingsBase = field(default_factory=MethodSettings)
    """Every registered method's settings (generated from the method classes)."""
    seed: int = 0
    """Seed of the trajectories and the observation set (environments and sampled actions)."""
    device: str = "cpu"
    """Torch device for the model: cpu, cuda, cuda:1, ... (results are gathered on the CPU)."""
    env: str = ""
    """Environment id (coinrun, ALE/Breakout-v5, ...); empty means the one the checkpoint records
    (files from other libraries record none, so they need it)."""
    frame_stack: int = 0
    """Atari frames stacked per observation; 0 reads it from the network's first layer."""
    action_set: str = ""
    """Super Mario Bros buttons for files that record none: right_only, simple or complex; empty
    means the checkpoint's, or the set whose size matches the network's outputs."""
    title: str = ""
    """Heading of the page; empty means the checkpoint's file name."""

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.frame_stack, int) or self.frame_stack < 0:
            raise ConfigError(f"frame_stack must be a non-negative integer, got {self.frame_stack!r}")

    def setting(self, name: str) -> Any:
        """A setting's value by its flat name (``ig_steps``, ``num_envs``)."""
        group = flat_field_owners()[name]
        return getattr(getattr(self, group) if group else self, name)

    def replace(self, **settings: object) -> RunConfig:
        """A copy with settings changed by their flat names; unknown names list the valid ones."""
        owner = flat_field_owners()
        unknown = sorted(set(settings) - set(owner))
        if unknown:
            raise ConfigError(f"unknown setting {', '.join(unknown)}; valid: {', '.join(owner)}")
        changes: dict[str, Any] = {}  # mixed field types, checked by each __post_init__
        by_group: dict[str, dict[str, object]] = {}
        for name, value in settings.items():
            group = owner[name]
            if group is None:
                changes[name] = value
            else:
                by_group.setdefault(group, {})[name] = value
        for group, values in by_group.items():
            changes[group] = dataclasses.replace(getattr(self, group), **values)
        changed = dataclasses.replace(self, **changes)
        chosen = {*changed.attribution.methods, BASIS_METHOD}  # the basis method fits every layer's features
        if changed.attribution.methods == AttributionConfig().methods:  # an agent may add these (plan.py)
            chosen |= {name for name, cls in REGISTRY.items() if cls.info.automatic}
        for name in by_group.get("method_settings", {}):
            readers = changed.method_settings.owners(name)
            if not chosen & set(readers):
                raise ConfigError(
                    f"{name} is a setting of {', '.join(readers)}, and methods "
                    f"({','.join(changed.attribution.methods)}) includes none of them"
                )
        return changed


_GROUPS = (
    "trajectories",
    "observation_set",
    "layer_selection",
    "attribution",
    "advantage",
    "reduction",
    "feature_vis",
    "interface",
    "states_of_interest",
    "evaluation",
    "method_settings",
)


def flat_field_owners() -> dict[str, str | None]:
    """Flat setting name -> the RunConfig group holding it (None for top-level fields)."""
    owners: dict[str, str | None] = {}
    defaults = RunConfig()
    for f in fields(RunConfig):
        names = [g.name for g in fields(getattr(defaults, f.name))] if f.name in _GROUPS else [f.name]
        for name in names:
            if name in owners:
                raise AssertionError(f"setting {name} is declared twice")  # a bug, caught by tests
            owners[name] = f.name if f.name in _GROUPS else None
    return owners
