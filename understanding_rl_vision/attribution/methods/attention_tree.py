"""Seed 002's attention tree: which cells below the attention feed its strongest peaks, layer by layer.

The roots are the strongest *peaks* of the attention map (local maxima with a minimum distance and
prominence, not the largest cells, which cluster); each node's children are the strongest peaks of
its contribution map one layer below, activation x gradient of the node summed over channels
(:func:`..tree.attention_tree`). The tree is the same whatever the output, so the method explains
only the ``attention`` entry. Levels are the attention layer, the layer its mask is computed from
(the model's ``attention_input``), then the attributable layers below that (the activations the
page labels 2a, 1a, ...), nearest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...agents.attention import attention_layer
from ...errors import UserError
from ..layers import discover_layers
from ..outputs import ExplainedModel, Output
from ..tree import attention_tree
from .base import TREE_FIELDS, MethodInfo, TreeMethod, register


@register
@dataclass(frozen=True)
class AttentionTree(TreeMethod):
    """The attention's strongest peaks and, recursively, the strongest contributions to each."""

    tree_count: int = 3
    """Peaks kept per node: the roots, and each node's children."""
    tree_depth: int = 3
    """Levels of the attention tree below the attention layer."""
    tree_min_distance: int = 1
    """Cells between two peaks of one map, at least."""
    tree_prominence: float = 0.05
    """How far a peak must rise above its surroundings, as a share of the map's largest value."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="attention-tree",
        title="Attention tree",
        citation="Nikulin, Kosch, Steuer & Cunningham, AI Safety Camp 2019 (seed 002)",
        summary="The attention's strongest peaks and, layer by layer below, the cells that contribute most to each.",
        attaches="input",
        produces="tree",
        scalar_outputs=False,
        explains="attention",
        automatic=True,
    )

    def __post_init__(self) -> None:
        if self.tree_count < 1:
            raise UserError(f"tree_count must be >= 1, got {self.tree_count}")
        if self.tree_depth < 0:
            raise UserError(f"tree_depth must be >= 0, got {self.tree_depth}")
        if self.tree_min_distance < 0:
            raise UserError(f"tree_min_distance must be >= 0, got {self.tree_min_distance}")
        if not 0.0 <= self.tree_prominence < 1.0:
            raise UserError(f"tree_prominence must lie in [0, 1), got {self.tree_prominence}")

    @property
    def signed(self) -> bool:
        return False

    def levels(self, model: torch.nn.Module, example: torch.Tensor) -> tuple[str, ...]:
        top = attention_layer(model)
        if top is None:
            raise UserError(f"{type(model).__name__} has no attention layer to grow a tree from")
        order = [name for name, _ in model.named_modules()]
        first = getattr(model, "attention_input", None)
        below = [
            layer.name for layer in discover_layers(model, example[:1]) if order.index(layer.name) < order.index(top)
        ]
        if isinstance(first, str) and first in order:  # the layer the mask is computed from, then those under it
            below = [name for name in below if order.index(name) < order.index(first)]
            if getattr(model.get_submodule(first), "scale_invariant", False) and below:
                below = below[:-1]  # the layer it rescales contributes exactly nothing
            below.append(first)
        return (top, *list(reversed(below))[: self.tree_depth])

    def attribute(
        self,
        explained: ExplainedModel,
        inputs: torch.Tensor,
        outputs: Sequence[Output],
        layer: str | None = None,
        *,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if len(inputs) == 0:
            raise UserError("no frames to attribute")
        trees = attention_tree(
            explained.model,
            inputs,
            self.levels(explained.model, inputs),
            count=self.tree_count,
            min_distance=self.tree_min_distance,
            prominence=self.tree_prominence,
        )
        columns = [
            trees.parent,
            trees.level,
            trees.y,
            trees.x,
            trees.contribution,
            trees.valid,
            *trees.boxes.unbind(dim=-1),
        ]
        packed = torch.stack([torch.as_tensor(c).float() for c in columns], dim=-1)  # (N, T, F)
        assert packed.shape[-1] == len(TREE_FIELDS)
        return packed.expand(len(outputs), *packed.shape).clone()
