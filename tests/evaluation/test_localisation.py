"""Masks from OCAtari boxes on hand-made screens, and the localisation scores on hand-made maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from understanding_rl_vision.evaluation import (
    area_share,
    boxes_to_masks,
    category_masks,
    mass_share,
    pointing_hits,
)

SCREEN = (210, 160)


def test_a_pixel_is_inside_when_its_centre_is():
    # at 21 x 16 each map pixel is 10 x 10 screen pixels, its centre at (10 i + 5, 10 j + 5)
    boxes = np.array([[[20, 30, 20, 10], [0, 0, 160, 210], [155, 200, 10, 10]]])
    valid = np.array([[True, False, True]])  # the second box (the whole screen) is padding
    masks = boxes_to_masks(boxes, valid, SCREEN, (21, 16))
    expected = torch.zeros(1, 21, 16, dtype=torch.bool)
    expected[0, 3, 2:4] = True  # columns 25 and 35 lie in [20, 40), row 35 in [30, 40)
    expected[0, 20, 15] = True
    assert masks.dtype == torch.bool and torch.equal(masks, expected)
    thin = boxes_to_masks(np.array([[[21, 31, 3, 3]]]), np.array([[True]]), SCREEN, (21, 16))
    assert not thin.any()  # misses every centre: a sprite smaller than a map pixel can vanish


def test_cropped_rows_and_tensors():
    boxes = torch.tensor([[[0, 45, 160, 10], [0, 20, 160, 10]], [[0, 185, 10, 30], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, True], [True, False]])
    masks = boxes_to_masks(boxes, valid, SCREEN, (16, 16), crop_rows=(35, 195))  # rows' centres 40, 50 ... 190
    assert masks[0].any(dim=1).nonzero().flatten().tolist() == [1]  # the box above the crop is gone
    assert masks[0, 1].all()
    assert masks[1].nonzero().tolist() == [[15, 0]]  # centre 190 lies in [185, 215)
    with pytest.raises(ValueError, match=r"\(N, B, 4\)"):
        boxes_to_masks(boxes[..., :3], valid, SCREEN, (16, 16))


def test_category_masks():
    boxes = np.array([[[0, 0, 80, 105], [80, 105, 80, 105]], [[80, 0, 80, 105], [0, 0, 0, 0]]])
    valid = np.array([[True, True], [True, True]])
    masks = category_masks(boxes, valid, [["Player", "Ball"], ["Ball"]], SCREEN, (2, 2))
    assert list(masks) == ["Ball", "Player"]
    assert masks["Player"].tolist() == [[[True, False], [False, False]], [[False, False], [False, False]]]
    assert masks["Ball"].tolist() == [[[False, False], [False, True]], [[False, True], [False, False]]]
    as_array = category_masks(
        boxes, valid & [[True, False], [True, True]], np.array([["Player", "Ball"], ["Ball", ""]]), SCREEN, (2, 2)
    )
    assert list(as_array) == ["Ball", "Player"] and not as_array["Ball"][0].any()
    with pytest.raises(ValueError, match="names 3 categories"):
        category_masks(boxes, valid, [["a", "b", "c"], []], SCREEN, (2, 2))


def test_mass_share_counts_positive_mass():
    maps = torch.tensor([[[3.0, 1.0], [-5.0, 0.0]], [[-1.0, -2.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = torch.tensor([[[True, False], [True, False]], [[True, False], [False, False]], [[False] * 2] * 2])
    share = mass_share(maps, masks)
    assert share[0].item() == pytest.approx(0.75)  # 3 of 3 + 1; the -5 inside does not count
    assert math.isnan(share[1].item())  # no positive mass
    assert math.isnan(share[2].item())  # nothing to point at


def test_pointing_hits_and_ties():
    maps = torch.tensor([[[1.0, 5.0], [5.0, 0.0]], [[1.0, 5.0], [5.0, 0.0]], [[9.0, 0.0], [0.0, 0.0]]])
    masks = torch.tensor(
        [[[False, False], [True, False]], [[True, False], [False, True]], [[False, False], [False, False]]]
    )
    assert pointing_hits(maps, masks).tolist() == [True, False, False]  # either tied maximum will do
    torch.testing.assert_close(area_share(masks), torch.tensor([0.25, 0.5, 0.0]))
