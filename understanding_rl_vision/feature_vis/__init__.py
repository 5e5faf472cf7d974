"""Feature visualisation: pictures that let people recognise each NMF feature of a layer.

:func:`feature_images` is the entry point; see :mod:`.dataset_examples` for the geometry.
"""

from .dataset_examples import (
    FeatureImages,
    Popup,
    Thumbnail,
    crop_padded,
    direction_scores,
    feature_images,
    popup,
    popup_cells,
    thumbnail,
)

__all__ = [
    "FeatureImages",
    "Popup",
    "Thumbnail",
    "crop_padded",
    "direction_scores",
    "feature_images",
    "popup",
    "popup_cells",
    "thumbnail",
]
