"""Evaluating the maps (issue 21): are they faithful to the agent, and do they point at the game's objects?

Low-level, batched measures, each checked against Quantus (Hedström et al. 2023) in
``tests/evaluation/test_quantus_agreement.py``: the model-parameter randomisation test
(:mod:`.randomisation`), deletion and insertion curves (:mod:`.curves`), and localisation against
object boxes (:mod:`.localisation`).
"""

from .curves import (
    BLUR_SIGMA,
    auc,
    centre_maps,
    gaussian_blur,
    perturbation_curves,
    random_maps,
)
from .localisation import area_share, boxes_to_masks, category_masks, mass_share, pointing_hits
from .randomisation import randomisable_layers, randomised_models, spearman, ssim

__all__ = [
    "BLUR_SIGMA",
    "area_share",
    "auc",
    "boxes_to_masks",
    "category_masks",
    "centre_maps",
    "gaussian_blur",
    "mass_share",
    "perturbation_curves",
    "pointing_hits",
    "random_maps",
    "randomisable_layers",
    "randomised_models",
    "spearman",
    "ssim",
]
