"""Typed, frozen configuration for each pipeline stage.

Defaults follow the original implementation; every field is documented where it is declared,
and the CLI exposes each one under the same name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


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

    num_envs: int = 32
    """Parallel environments to draw observations from."""
    num_obs: int = 128
    """Observations kept per environment."""
    obs_every: int = 128
    """Steps between two kept observations, so the set is not dominated by similar frames."""

    def __post_init__(self) -> None:
        _positive(self, "num_envs", "num_obs", "obs_every")


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

    num_features: int = 8
    """NMF components per layer (capped at the layer's channel count)."""
    seed: int = 0
    """Seed of the NMF initialisation, so the same input always gives the same features."""
    max_iter: int = 1000
    """Iteration cap for scikit-learn's NMF solver."""

    def __post_init__(self) -> None:
        _positive(self, "num_features", "max_iter")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"ReductionConfig.seed must be a non-negative integer, got {self.seed!r}")


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

    outputs: tuple[str, ...] = ("value",)
    """Outputs of the first attribution rows, one row each (names as in the manifest)."""
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

    def __post_init__(self) -> None:
        if not self.outputs:
            raise ConfigError("InterfaceConfig.outputs needs at least one output")
        _positive(self, "popup_expand_mult", "scrubber_frames")
        if self.trajectory < 0:
            raise ConfigError(f"InterfaceConfig.trajectory must be >= 0, got {self.trajectory}")

    def page_defaults(self) -> dict[str, object]:
        """The page's ``config.defaults`` (names as the page spells them)."""
        return {
            "outputs": list(self.outputs), "trajectory": self.trajectory, "overlay": self.overlay,
            "combine": self.combine, "residual": self.residual,
            "popup": {"expand_mult": self.popup_expand_mult, "subdiv_mult": self.popup_subdiv_mult},
            "scrubberFrames": self.scrubber_frames, "residualColor": self.residual_color,
        }  # fmt: skip


def _positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")
