"""Deletion and insertion curves on models whose curves are known, the blur and the reference maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from understanding_rl_vision.evaluation import (
    auc,
    centre_maps,
    gaussian_blur,
    perturbation_curves,
    random_maps,
)
from understanding_rl_vision.evaluation.curves import unit_ranks


def linear_case(n: int = 3, c: int = 2, h: int = 4, w: int = 5):
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(c, h, w, generator=generator)
    inputs = torch.rand(n, c, h, w, generator=generator)
    baseline = torch.rand(n, c, h, w, generator=generator)
    maps = torch.randn(n, h, w, generator=generator)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return (x * weights).flatten(1).sum(dim=1)

    return forward, weights, inputs, baseline, maps


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_linear_model_curve_is_the_analytic_one(mode):
    forward, weights, inputs, baseline, maps = linear_case()
    n, _, h, w = inputs.shape
    pixels = h * w
    curves = perturbation_curves(forward, inputs, maps, baseline, steps=pixels, mode=mode, chunk=7)
    assert curves.shape == (n, pixels + 1) and curves.dtype == torch.float32
    for frame in range(n):
        order = np.argsort(-maps[frame].flatten().numpy(), kind="stable")
        change = ((baseline[frame] - inputs[frame]) * weights).sum(0).flatten().numpy()  # per pixel
        if mode == "deletion":
            start = forward(inputs[frame : frame + 1]).item()
            expected = start + np.concatenate([[0.0], np.cumsum(change[order])])
        else:
            start = forward(baseline[frame : frame + 1]).item()
            expected = start - np.concatenate([[0.0], np.cumsum(change[order])])
        np.testing.assert_allclose(curves[frame].numpy(), expected, atol=1e-5)


def test_points_round_the_share_of_pixels_and_chunks_do_not_matter():
    forward, _, inputs, baseline, maps = linear_case(h=4, w=4)

    def moved(x: torch.Tensor) -> torch.Tensor:  # how many pixels hold the baseline (a marker of 2)
        return (x[:, 0] == 2).flatten(1).sum(1).float()

    marker = torch.full_like(inputs, 2.0)
    curves = perturbation_curves(moved, inputs, maps, marker, steps=3, mode="deletion")
    assert curves[0].tolist() == [0, 5, 11, 16]  # round(s * 16 / 3): 5.33 -> 5, 10.67 -> 11
    one = perturbation_curves(forward, inputs, maps, baseline, steps=5, mode="insertion", chunk=1)
    many = perturbation_curves(forward, inputs, maps, baseline, steps=5, mode="insertion", chunk=1000)
    torch.testing.assert_close(one, many)


def test_ties_go_in_index_order():
    inputs = torch.zeros(1, 1, 2, 3)
    baseline = torch.ones(1, 1, 2, 3)

    def first_row_sum(x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0].sum(1) * 10 + x[:, 0, 1].sum(1)

    curves = perturbation_curves(first_row_sum, inputs, torch.zeros(1, 2, 3), baseline, steps=6, mode="deletion")
    assert curves[0].tolist() == [0, 10, 20, 30, 31, 32, 33]


def test_patch_ranking_sums_the_map_over_each_region():
    maps = torch.tensor([[[1.0, 1, 0, 0], [1, 1, 0, 3], [0, 0, 2, 0], [0, 0, 0, 2]]])
    ranks, units = unit_ranks(maps, patch=2)
    assert units == 4  # sums: top-left 4, top-right 3, bottom-left 0, bottom-right 4
    assert ranks[0].tolist() == [[0, 0, 2, 2], [0, 0, 2, 2], [3, 3, 1, 1], [3, 3, 1, 1]]
    ranks, units = unit_ranks(torch.arange(25.0).view(1, 5, 5), patch=2)  # 5 = 1 missing: 0 rows before, 1 after
    assert units == 9
    # patch sums, by rows of patches: 12 20 13 / 52 60 33 / 41 45 24 (the last row and column are thin patches)
    assert ranks[0, 4].tolist() == [3, 3, 2, 2, 5]
    assert ranks[0, 0].tolist() == [8, 8, 6, 6, 7]


def test_checks_its_arguments():
    forward, _, inputs, baseline, maps = linear_case()
    with pytest.raises(ValueError, match="mode"):
        perturbation_curves(forward, inputs, maps, baseline, 4, "erase")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must fit"):
        perturbation_curves(forward, inputs, maps[:, :3], baseline, 4, "deletion")
    with pytest.raises(ValueError, match="one entry per frame"):
        perturbation_curves(forward, inputs, maps, baseline, 4, "deletion", targets=torch.zeros(2, dtype=torch.long))


def test_targets_pick_each_frames_entry():
    forward, _, inputs, baseline, maps = linear_case()

    def two(x: torch.Tensor) -> torch.Tensor:  # (B, 2): the output and its negative
        return torch.stack([forward(x), -forward(x)], dim=1)

    picked = perturbation_curves(two, inputs, maps, baseline, 4, "insertion", chunk=3, targets=torch.tensor([0, 1, 0]))
    plain = perturbation_curves(forward, inputs, maps, baseline, 4, "insertion")
    torch.testing.assert_close(picked, plain * torch.tensor([1.0, -1.0, 1.0]).view(3, 1))


def test_auc_is_the_mean_output_along_the_curve():
    curves = torch.tensor([[2.0, 2, 2, 2, 2], [0, 0.25, 0.5, 0.75, 1], [1, 0, 0, 0, 0]])
    torch.testing.assert_close(auc(curves), torch.tensor([2.0, 0.5, 0.125]))


def test_blur_matches_scipy_and_keeps_a_constant():
    rng = np.random.default_rng(3)
    images = rng.random((2, 3, 24, 20)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(images), sigma=2.2)
    reference = gaussian_filter(images, sigma=(0, 0, 2.2, 2.2), mode="mirror", truncate=4.0)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)
    flat = torch.full((1, 1, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, sigma=5.0), flat)  # radius capped at 8 on 9 pixels


def test_reference_maps():
    first = random_maps(2, 5, 6, torch.Generator().manual_seed(1))
    again = random_maps(2, 5, 6, torch.Generator().manual_seed(1))
    assert first.shape == (2, 5, 6) and torch.equal(first, again) and first.min() >= 0 and first.max() < 1
    centre = centre_maps(3, 9, 7)
    assert centre.shape == (3, 9, 7) and centre[0, 4, 3] == 1.0 == centre.max()
    torch.testing.assert_close(centre, centre.flip(1).flip(2))  # symmetric about the centre
    assert centre[0, 0, 3] < centre[0, 2, 3] < centre[0, 4, 3]


def test_images_keep_the_inputs_layout():
    forward, _, inputs, baseline, maps = linear_case()
    frames = inputs.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # as preprocessed (H, W, C) frames
    seen = []

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return forward(x)

    torch.testing.assert_close(
        perturbation_curves(spy, frames, maps, baseline, 4, "deletion"),
        perturbation_curves(forward, inputs, maps, baseline, 4, "deletion"),
    )
    assert seen and all(seen)
