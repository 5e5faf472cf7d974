"""Our batched measures against Quantus 0.6.0's metrics on one small case, to 1e-4.

The case: a small conv net (two convolutions and a linear layer, five outputs), four 3 x 12 x 12
inputs, a target output per frame, and precomputed maps. Quantus gets ``abs=False, normalise=False``
throughout, so both sides read the same maps. Where Quantus' configuration has to be chosen to
compute our quantity, the test says how:

* ``MPRT``: cascading (``layer_order="top_down"``), Spearman (its default), both sides explaining
  with the same input-gradient function; Quantus' "original" entry compares the given maps with the
  unrandomised model's.
* ``PixelFlipping`` and ``RegionPerturbation`` read softmax probabilities unless told otherwise; both
  are called with ``softmax=False`` here, and ours with the logits (any output of ``forward`` goes).
* ``PixelFlipping`` moves ``features_in_step`` entries of the (C, H, W) input a step, ranked by the
  map broadcast over channels: with ``features_in_step = C`` (or ``C * k``) and maps without ties, a
  step moves whole pixels, as ours. Its curve lacks the unperturbed point 0. Its perturbation is our
  baseline read at the replaced entries (a ``perturb_func`` given the flattened baseline).
* ``RegionPerturbation`` reports ``f(x) - f(perturbed)``; with ``regions_evaluation`` = every patch,
  that is our deletion curve with ``patch=patch_size`` and ``steps`` = the patches, subtracted from
  point 0. When the frame is not a multiple of the patch, Quantus pads (the baseline there is a
  constant: its padded array has no place for ours), which our grid reproduces.
* ``PointingGame(weighted=False)``: equal wherever the mask is not empty (Quantus writes NaN into a
  bool array there, which reads True; ours is False: see ``pointing_hits``).
* ``AttributionLocalisation(positive_attributions=True, weighted=False)``: Quantus divides by the
  positive total plus 1e-9; equal to 1e-4 wherever the map has positive mass (ours is NaN elsewhere).

Quantus' own ``ssim`` (skimage's) is compared directly: its ``MPRT`` would call it on flattened maps,
a one-dimensional SSIM, which is not the two-dimensional measure ours computes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from understanding_rl_vision.evaluation import (
    gaussian_blur,
    mass_share,
    perturbation_curves,
    pointing_hits,
    randomised_models,
    spearman,
    ssim,
)

TOLERANCE = 1e-4
N, C, H, W = 4, 3, 12, 12


@pytest.fixture(scope="module")
def quantus():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus as module
    return module


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("PYTEST", "1")  # Quantus hides its progress bars under pytest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(C, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * (H // 2) * (W // 2), 5),
    ).eval()


@pytest.fixture(scope="module")
def case():
    generator = torch.Generator().manual_seed(1)
    inputs = torch.rand(N, C, H, W, generator=generator)
    targets = torch.tensor([0, 3, 1, 4])
    maps = torch.randn(N, H, W, generator=generator)  # no ties
    return tiny_net(), inputs, targets, maps


def input_gradient(model: nn.Module, inputs, targets, **_) -> np.ndarray:
    """The explain function both sides use: the target's input gradient, summed over channels."""
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32).requires_grad_(True)
    chosen = torch.as_tensor(np.asarray(targets))
    model(x)[torch.arange(len(x)), chosen].sum().backward()
    assert x.grad is not None
    return x.grad.sum(dim=1, keepdim=True).numpy()


def replace_from(arr: np.ndarray, indices: np.ndarray, baseline: np.ndarray, **_) -> np.ndarray:
    """Quantus' ``perturb_func``: the flattened rows take the baseline's values at ``indices``."""
    out = arr.copy()
    rows = np.arange(len(arr))[:, None]
    out[rows, indices] = baseline.reshape(len(arr), -1)[rows, indices]
    return out


def numpy_case(case):
    model, inputs, targets, maps = case
    return model, inputs.numpy(), targets.numpy(), maps.unsqueeze(1).numpy()


def test_mprt(quantus, case):
    model, inputs, targets, _ = case
    given = torch.from_numpy(input_gradient(model, inputs, targets))[:, 0]
    metric = quantus.MPRT(layer_order="top_down", seed=42, abs=False, normalise=False, disable_warnings=True)
    theirs = metric(
        model=model,
        x_batch=inputs.numpy(),
        y_batch=targets.numpy(),
        a_batch=given.unsqueeze(1).numpy(),
        explain_func=input_gradient,
        device="cpu",
    )
    ours = {"original": spearman(given, torch.from_numpy(input_gradient(model, inputs, targets))[:, 0])}
    for name, randomised in randomised_models(model, seed=42):
        ours[name] = spearman(given, torch.from_numpy(input_gradient(randomised, inputs, targets))[:, 0])
    assert list(theirs) == list(ours) == ["original", "5", "2", "0"]
    for name, scores in theirs.items():
        np.testing.assert_allclose(ours[name].numpy(), scores, atol=TOLERANCE, err_msg=name)
    assert not np.allclose(theirs["0"], 1.0)  # the randomised maps did change


@pytest.mark.parametrize("pixels_a_step", [1, 4])
def test_pixel_flipping(quantus, case, pixels_a_step):
    model, x, y, a = numpy_case(case)
    baseline = gaussian_blur(case[1], sigma=1.5)
    metric = quantus.PixelFlipping(
        features_in_step=C * pixels_a_step,
        abs=False,
        normalise=False,
        perturb_func=replace_from,
        perturb_func_kwargs={"baseline": baseline.numpy()},
        disable_warnings=True,
    )
    theirs = np.array(metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", softmax=False))
    steps = H * W // pixels_a_step
    ours = perturbation_curves(model, case[1], case[3], baseline, steps, "deletion", chunk=50, targets=case[2])
    assert theirs.shape == (N, steps)
    np.testing.assert_allclose(ours[:, 1:].numpy(), theirs, atol=TOLERANCE)
    np.testing.assert_allclose(ours[:, 0].numpy(), model(case[1])[torch.arange(N), case[2]].detach(), atol=1e-6)


@pytest.mark.parametrize("patch", [4, 5])
def test_region_perturbation(quantus, case, patch):
    model, x, y, a = numpy_case(case)
    if H % patch == 0:
        baseline = gaussian_blur(case[1], sigma=1.5)
        perturb = {"perturb_func": replace_from, "perturb_func_kwargs": {"baseline": baseline.numpy()}}
    else:  # padded: Quantus replaces entries of the padded array, so only a constant baseline fits
        baseline = torch.zeros_like(case[1])
        perturb = {"perturb_baseline": 0.0}
    regions = -(-H // patch) * -(-W // patch)
    metric = quantus.RegionPerturbation(
        patch_size=patch,
        order="morf",
        regions_evaluation=regions,
        abs=False,
        normalise=False,
        disable_warnings=True,
        **perturb,
    )
    theirs = np.array(metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", softmax=False))
    ours = perturbation_curves(model, case[1], case[3], baseline, regions, "deletion", patch=patch, targets=case[2])
    assert theirs.shape == (N, regions)
    np.testing.assert_allclose((ours[:, :1] - ours[:, 1:]).numpy(), theirs, atol=TOLERANCE)


def localisation_case(case):
    model, x, y, a = numpy_case(case)
    masks = np.zeros((N, 1, H, W), dtype=bool)
    masks[0, 0, 2:6, 3:9] = True
    masks[1, 0, :, :4] = True
    masks[2, 0, 7:, 7:] = True
    masks[3, 0, 5, 5] = True
    peak = np.unravel_index(np.argmax(a[1, 0]), (H, W))
    masks[1, 0][peak] = True  # one hit for sure
    a = a.copy()
    a[2, 0, 0, 0] = a[2, 0, 11, 11] = a[2].max() + 1  # tied maxima, one in the mask
    return model, x, y, a, masks


def test_pointing_game(quantus, case):
    model, x, y, a, masks = localisation_case(case)
    metric = quantus.PointingGame(weighted=False, abs=False, normalise=False, disable_warnings=True)
    theirs = np.array(metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=masks.astype(float)))
    ours = pointing_hits(torch.from_numpy(a[:, 0]), torch.from_numpy(masks[:, 0]))
    assert ours[1] and ours[2]  # the tie: the maximum in the mask counts
    np.testing.assert_array_equal(ours.numpy(), theirs.astype(bool))
    masks[3] = False  # an absent object: Quantus' NaN, written into a bool array, reads as a hit; ours misses
    theirs = np.array(metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=masks.astype(float)))
    ours = pointing_hits(torch.from_numpy(a[:, 0]), torch.from_numpy(masks[:, 0]))
    assert theirs[3] and not ours[3]
    np.testing.assert_array_equal(ours[:3].numpy(), theirs[:3].astype(bool))


def test_attribution_localisation(quantus, case):
    model, x, y, a, masks = localisation_case(case)
    metric = quantus.AttributionLocalisation(
        weighted=False, positive_attributions=True, abs=False, normalise=False, disable_warnings=True
    )
    theirs = np.array(metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=masks.astype(float)))
    ours = mass_share(torch.from_numpy(a[:, 0]), torch.from_numpy(masks[:, 0]))
    assert np.isfinite(theirs).all() and ours.min() > 0 and ours.max() < 1
    np.testing.assert_allclose(ours.numpy(), theirs, atol=TOLERANCE)
    masks[3] = False  # an absent object: NaN on both sides
    theirs = np.array(metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=masks.astype(float)))
    ours = mass_share(torch.from_numpy(a[:, 0]), torch.from_numpy(masks[:, 0]))
    assert np.isnan(theirs[3]) and ours[3].isnan()


def test_ssim_function(quantus, case):
    from quantus.functions.similarity_func import ssim as quantus_ssim

    maps = case[3]
    other = maps + 0.5 * torch.randn(maps.shape, generator=torch.Generator().manual_seed(2))
    theirs = quantus_ssim(maps.numpy(), other.numpy(), batched=True)
    np.testing.assert_allclose(ssim(maps, other, data_range=None).numpy(), theirs, atol=TOLERANCE)
