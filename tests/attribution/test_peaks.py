"""Peak detection for the attention tree (seed 002): find_peaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from understanding_rl_vision.attribution.peaks import find_peaks
from understanding_rl_vision.errors import UserError


def peaks_of(maps: torch.Tensor, count: int, **settings) -> list[list[tuple[int, int, float]]]:
    """find_peaks as lists of valid (y, x, score), per map."""
    scores, ys, xs, valid = find_peaks(maps, count, **settings)
    return [[(int(y), int(x), float(s)) for s, y, x, v in zip(*row) if v] for row in zip(scores, ys, xs, valid)]


# --------------------------------------------------------------------------------------------------
# find_peaks
# --------------------------------------------------------------------------------------------------


def bumps_with_shoulder() -> torch.Tensor:
    """A bump of 1.0 at (3, 3) whose flank holds a shoulder (3, 5) = 0.62 over a col of 0.6, and a
    second, separate bump of 0.5 at (8, 8)."""
    grid = torch.zeros(12, 12)
    grid[2:5, 2:5] = 0.6
    grid[3, 3] = 1.0
    grid[3, 5] = 0.62  # the largest cell of its 3x3 window, but only 0.02 above the col joining it to the bump
    grid[7:10, 7:10] = 0.3
    grid[8, 8] = 0.5
    return grid


def test_peaks_are_the_two_bumps_not_cells_of_one_bump_nor_its_shoulder():
    grid = bumps_with_shoulder()
    assert peaks_of(grid[None], 3) == [[(3, 3, 1.0), (8, 8, 0.5)]]
    # without a prominence threshold the shoulder is a peak (a window maximum) ...
    assert peaks_of(grid[None], 3, prominence=0.0) == [[(3, 3, 1.0), (3, 5, pytest.approx(0.62)), (8, 8, 0.5)]]
    # ... and its prominence is 0.02 of the map's largest value: in just above that, out just below
    assert [p[:2] for p in peaks_of(grid[None], 3, prominence=0.019)[0]] == [(3, 3), (3, 5), (8, 8)]
    assert [p[:2] for p in peaks_of(grid[None], 3, prominence=0.021)[0]] == [(3, 3), (8, 8)]


def test_padding_slots_are_invalid_zeros():
    scores, ys, xs, valid = find_peaks(bumps_with_shoulder()[None], 5)
    assert valid.tolist() == [[True, True, False, False, False]]
    assert scores[0, 2:].tolist() == [0.0] * 3 and ys[0, 2:].tolist() == [0] * 3 and xs[0, 2:].tolist() == [0] * 3
    # more slots than cells
    scores, ys, xs, valid = find_peaks(torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]), 6)
    assert valid.tolist() == [[True] + [False] * 5] and (ys[0, 0], xs[0, 0]) == (0, 1) and scores.shape == (1, 6)


def test_min_distance_separates_peaks():
    grid = torch.zeros(7, 7)
    grid[2, 2], grid[2, 4], grid[5, 5] = 1.0, 0.8, 0.7  # (2, 4) is 2 cells from (2, 2); (5, 5) is 3 from both
    assert [p[:2] for p in peaks_of(grid[None], 3, min_distance=1)[0]] == [(2, 2), (2, 4), (5, 5)]
    assert [p[:2] for p in peaks_of(grid[None], 3, min_distance=2)[0]] == [(2, 2), (5, 5)]
    assert [p[:2] for p in peaks_of(grid[None], 3, min_distance=3)[0]] == [(2, 2)]
    assert [p[:2] for p in peaks_of(grid[None], 3, min_distance=0)[0]] == [(2, 2), (2, 4), (5, 5)]


def test_a_ripple_is_not_a_peak_unless_it_is_all_there_is():
    grid = torch.zeros(2, 8, 8)
    grid[0, 2, 2] = 1.0
    grid[0, 6, 6] = 0.03  # 3% of the map's largest value: below the 5% prominence
    grid[1, 6, 6] = 0.03  # alone in its map, the same ripple is the map's peak
    assert peaks_of(grid, 2) == [[(2, 2, 1.0)], [(6, 6, pytest.approx(0.03))]]
    assert [p[:2] for p in peaks_of(grid, 2, prominence=0.02)[0]] == [(2, 2), (6, 6)]


def test_plateaus_give_one_peak():
    grid = torch.zeros(10, 10)
    grid[1:3, 1:4] = 0.9  # a 2x3 flat top
    for distance in (0, 1, 2):
        assert [p[:2] for p in peaks_of(grid[None], 4, min_distance=distance)[0]] == [(1, 1)]
    # a slanted flat top wider than the window: raster order alone would keep (5, 6) and (6, 3)
    slanted = torch.zeros(10, 10)
    slanted[5, 6:9] = 0.5
    slanted[6, 3:7] = 0.5
    assert [p[:2] for p in peaks_of(slanted[None], 4)[0]] == [(5, 6)]
    assert [p[:2] for p in peaks_of(slanted[None], 4, prominence=0.0)[0]] == [(5, 6)]
    # a flat top next to higher ground is no peak at all
    grid[2, 4] = 1.0
    assert [p[:2] for p in peaks_of(grid[None], 4)[0]] == [(2, 4)]


def test_only_positive_peaks_count_and_threshold_uses_the_largest_absolute_value():
    grid = torch.full((1, 6, 6), -1.0)
    grid[0, 1, 1] = -0.2  # a maximum, but negative
    assert peaks_of(grid, 2) == [[]]
    grid = torch.zeros(1, 8, 8)
    grid[0, 0, 0] = -10.0  # the largest |value|: 5% of it is 0.5
    grid[0, 3, 3], grid[0, 6, 6] = 1.0, 0.4
    assert [p[:2] for p in peaks_of(grid, 3)[0]] == [(3, 3)]


def brute_force_prominence(grid: np.ndarray, y: int, x: int) -> float:
    """Topographic prominence by thresholding: the peak's height minus the highest level t at which
    it is 8-connected to a strictly higher cell through cells >= t (the highest cell: minus the lowest)."""
    height = grid[y, x]
    higher = grid > height
    if not higher.any():
        return float(height - grid.min())
    for level in sorted(set(grid.ravel().tolist()), reverse=True):
        if level > height:
            continue
        labels, _ = ndimage.label(grid >= level, structure=np.ones((3, 3)))
        if (labels[higher] == labels[y, x]).any():
            return float(height - level)
    raise AssertionError("unreachable: the lowest level connects everything")


def test_prominence_matches_a_brute_force_definition_on_random_maps():
    generator = torch.Generator().manual_seed(3)
    noise = torch.rand(12, 1, 11, 11, generator=generator, dtype=torch.float64)
    maps = nn.functional.avg_pool2d(noise, 3, 1, 1)[:, 0] - 0.45  # smooth, several bumps, some negative
    distance, share = 1, 0.04
    scores, ys, xs, valid = find_peaks(maps, 121, min_distance=distance, prominence=share)
    for b, grid in enumerate(maps.numpy()):
        expected = set()
        for y in range(11):
            for x in range(11):
                window = grid[max(0, y - distance) : y + distance + 1, max(0, x - distance) : x + distance + 1]
                is_maximum = grid[y, x] > 0 and grid[y, x] == window.max()
                if is_maximum and brute_force_prominence(grid, y, x) >= share * np.abs(grid).max():
                    expected.add((y, x))
        found = {(int(y), int(x)) for y, x, v in zip(ys[b], xs[b], valid[b]) if v}
        assert found == expected
        values = scores[b][valid[b]]
        assert torch.all(values[:-1] >= values[1:])  # best first
    assert int(valid.sum()) >= 12  # the maps do have peaks, and some were rejected for prominence
    assert int(valid.sum()) < int(find_peaks(maps, 121, min_distance=distance, prominence=0.0)[3].sum())


def test_batched_peaks_equal_per_map_peaks():
    generator = torch.Generator().manual_seed(0)
    maps = nn.functional.avg_pool2d(torch.rand(6, 1, 9, 9, generator=generator), 3, 1, 1)[:, 0]
    together = find_peaks(maps, 4)
    for b in range(6):
        alone = find_peaks(maps[b : b + 1], 4)
        for joint, single in zip(together, alone):
            assert torch.equal(joint[b : b + 1], single)


def test_find_peaks_rejects_bad_settings():
    grid = torch.zeros(1, 4, 4)
    with pytest.raises(UserError, match="count"):
        find_peaks(grid, 0)
    with pytest.raises(UserError, match="min_distance"):
        find_peaks(grid, 1, min_distance=-1)
    with pytest.raises(UserError, match="prominence"):
        find_peaks(grid, 1, prominence=-0.1)
    with pytest.raises(UserError, match=r"\(B, h, w\)"):
        find_peaks(torch.zeros(4, 4), 1)
