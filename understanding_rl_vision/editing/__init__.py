"""Model editing (issue 21): remove NMF features from a layer, save the edited agent, and
measure what removing each one does to the agent's play (the ablation table)."""

from .ablation import Ablation, ablate, format_table
from .names import read_feature_names, write_feature_names

__all__ = ["Ablation", "ablate", "format_table", "read_feature_names", "write_feature_names"]
