"""What an explanation method declares, and the registry the pipeline will dispatch on.

A method is one frozen dataclass: its fields are its settings (they enter the cache key), its
class-level :class:`MethodInfo` says what it is, and :meth:`Method.attribute` computes it. No stage
of the pipeline names a method; it reads these declarations.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from ...agents.attention import attention_layer
from ...errors import UserError
from ..outputs import ExplainedModel, Output

Attaches = Literal["layer", "input"]
"""Where a method reads the network: a hooked layer's activation, or the model's input."""
Produces = Literal["channels", "map", "tree"]
"""``channels``: (C, h, w) per frame, reduced by the layer's NMF basis like integrated gradients.
``map``: (h, w) per frame, shown as a heatmap. ``tree``: (T, F) per frame, T nodes of
:data:`TREE_FIELDS`, drawn over the frame as a tree."""
Explains = Literal["outputs", "attention"]
"""``outputs``: any chosen output. ``attention``: only an attention agent's ``attention`` entry,
because the method shows the attention itself (its map, its tree), whatever the output."""
TREE_FIELDS = ("parent", "level", "y", "x", "contribution", "valid", "top", "left", "bottom", "right")
"""The per-node fields of a ``tree`` method's result, in order (see :mod:`..tree`)."""
Look = Literal["table", "jet", "actor-critic"]
"""How a video draws a method's maps over the frame. ``table``: the page's colour table, opacity
growing with the value. ``jet``: the jet colour map blended at alpha 0.5 over the frame, each
frame's map min-max normalised (Grad-CAM as seed 000 drew it). ``actor-critic``: the actor's map
added to the frame's blue channel and the critic's to its red (perturbation saliency as
Greydanus et al., seed 001, drew it)."""


@dataclass(frozen=True)
class MethodInfo:
    """What a method is, declared rather than inferred."""

    name: str
    """Registry key and ``--methods`` name, e.g. ``gradcam``."""
    title: str
    """Display name, e.g. ``Grad-CAM``."""
    citation: str
    """Where it comes from (authors, year, venue)."""
    summary: str
    """One line on what it shows (the page's hover note)."""
    attaches: Attaches
    produces: Produces
    scalar_outputs: bool = True
    """True: explains one scalar output at a time (one backward pass each), so a vector output such
    as ``actor`` is refused. False: every output comes from the same forward passes, and a vector
    output is scored as a whole (perturbation)."""
    input_layer: bool = False
    """A layer method that also explains the ``input`` pseudo-layer (``--include-input``)."""
    look: Look = "table"
    """How its authors drew it; the ``video`` command draws its maps that way (channels methods
    are always drawn as the page draws features)."""
    memory: bool = False
    """For a recurrent agent, also attributes to the incoming state (one "memory" entry per frame,
    :meth:`Method.attribute_with_memory`), shown beside the features in the page's totals."""
    explains: Explains = "outputs"
    complete: bool = False
    """At a layer, its attribution sums to f(a) - f(0), the output's change from a zero activation
    (integrated gradients' completeness axiom, with a recurrent model's memory entry); the report
    card measures how far it is from that."""
    automatic: bool = False
    """Added to a run that keeps the default methods when it applies to the agent
    (:meth:`Method.applies_to`): an attention agent's own map and tree."""


@dataclass(frozen=True)
class Method(ABC):
    """One explanation method; subclasses are frozen dataclasses whose fields are settings."""

    info: ClassVar[MethodInfo]

    def settings(self) -> dict[str, Any]:
        """The settings that determine the result (for cache keys)."""
        return {"method": self.info.name, **dataclasses.asdict(self)}

    @classmethod
    def applies_to(cls, model: torch.nn.Module) -> bool:
        """Whether it can explain ``model`` at all (an attention method needs an attention layer)."""
        return cls.info.explains != "attention" or attention_layer(model) is not None

    @property
    def signed(self) -> bool:
        """Whether its attribution can be negative (the page then draws a diverging colour map)."""
        return True

    @property
    def rows_per_frame(self) -> int:
        """Copies of each frame it runs through the network (noisy copies, perturbed copies); it
        batches at most ``INPUT_CHUNK`` rows at a time. For the memory estimate."""
        return 1

    @classmethod
    def flag_fields(cls) -> tuple[dataclasses.Field, ...]:
        """The fields a user sets by name (``--noise-samples``); ``metadata={"flag": False}`` hides
        one (a wrapped method, a kind fixed by the class). Names are unique across methods, or
        shared with the same meaning (SmoothGrad and VarGrad share ``noise_samples``)."""
        return tuple(f for f in dataclasses.fields(cls) if f.metadata.get("flag", True))

    @abstractmethod
    def attribute(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Explain each of ``outputs`` for a batch of preprocessed ``inputs`` (N, C, H, W).

        Returns (K, N, C, h, w) for ``channels`` methods, (K, N, h, w) for ``map`` methods, float32
        on the CPU. ``layer`` is a dotted module name for methods that attach to a layer. ``actions``
        (N,) are the actions taken, which the ``action`` output needs.
        """

    def attribute_with_memory(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`attribute`, and for a recurrent model the part given to the incoming state summed
        over its entries, (K, N), when the method attributes to it (``MethodInfo.memory``); else None."""
        return self.attribute(explained, inputs, outputs, layer, actions=actions), None


class TreeMethod(Method):
    """A method that ``produces="tree"``: per frame, nodes at several layers (its result is
    (K, N, T, len(TREE_FIELDS))), and the layers those nodes lie in."""

    @abstractmethod
    def levels(self, model: torch.nn.Module, example: torch.Tensor) -> tuple[str, ...]:
        """The dotted module name of each level, top first, for a preprocessed ``example`` batch."""


REGISTRY: dict[str, type[Method]] = {}
"""Every method by name, in registration order."""
BASIS_METHOD = "ig"
"""The method whose value attribution on the observation set fits each layer's NMF basis, so a
feature means the same thing for every ``channels`` method."""


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available under ``cls.info.name``."""
    name = cls.info.name
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise AssertionError(f"two methods are called {name!r}")  # a bug, caught by the tests
    REGISTRY[name] = cls
    return cls


def method_class(name: str) -> type[Method]:
    """The registered method called ``name``; an unknown name fails listing the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown method {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None


def needs_layer(method: Method, layer: str | None) -> str:
    """``layer`` for a method that attaches to one, or one clear error."""
    if layer is None or layer == "input":
        raise UserError(f"{method.info.title} explains a layer; name one (e.g. --layers 3a)")
    return layer
