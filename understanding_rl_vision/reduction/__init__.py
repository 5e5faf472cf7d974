"""Channel reduction: a layer's many channels become a few NMF features a person can look at."""

from __future__ import annotations

from .nmf import ChannelReducer, FeatureMaps, feature_colours

__all__ = ["ChannelReducer", "FeatureMaps", "feature_colours"]
