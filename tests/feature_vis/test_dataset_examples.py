"""Dataset-example thumbnails and popups on hand-made observations whose answers are known."""

import math

import numpy as np
import pytest
import torch

from understanding_rl_vision.config import FeatureVisConfig
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.feature_vis import (
    crop_padded,
    direction_scores,
    feature_images,
    popup,
    popup_cells,
    thumbnail,
)
from understanding_rl_vision.feature_vis.dataset_examples import CHECKER_GREYS, assign

SIZE, LAYER, SQUARE = 64, 16, 6
CELL = SIZE // LAYER  # observation pixels per layer position
GREYS = set(CHECKER_GREYS)


def squares(n=40, seed=0, corners=None):
    """Black frames with one white 6x6 square each; channel 0 of the "layer" is the brightness
    averaged over each position's 4x4 pixels, channel 1 its complement."""
    rng = np.random.default_rng(seed)
    if corners is None:
        corners = rng.integers(0, SIZE - SQUARE + 1, size=(n, 2))
    obs = np.zeros((len(corners), SIZE, SIZE, 3), np.uint8)
    for k, (y, x) in enumerate(corners):
        obs[k, y : y + SQUARE, x : x + SQUARE] = 255
    brightness = obs[..., 0].reshape(len(obs), LAYER, CELL, LAYER, CELL).mean((2, 4)) / 255
    acts = np.stack([brightness, 1 - brightness], axis=1).astype(np.float32)
    return obs, acts, np.eye(2, dtype=np.float32)


@pytest.fixture(scope="module")
def square_set():
    obs, acts, comps = squares()
    return obs, acts, feature_images(obs, acts, comps)


def test_thumbnail_patches_are_centred_on_the_squares(square_set):
    obs, acts, features = square_set
    thumb = features[0].thumbnail
    patch = 4 * CELL  # four layer positions
    assert thumb.image.shape == (4 * patch, 4 * patch, 3) and thumb.image.dtype == np.uint8
    peaks = acts[:, 0].reshape(len(obs), -1).max(axis=1)
    assert len(set(thumb.indices.tolist())) == 16
    assert np.all(np.diff(peaks[thumb.indices]) <= 0)  # strongest first
    assert peaks[thumb.indices[-1]] >= np.sort(peaks)[-16]  # and the 16 strongest
    for tile, (index, (i, j)) in enumerate(zip(thumb.indices, thumb.positions)):
        assert acts[index, 0, i, j] == peaks[index]
        r, c = divmod(tile, 4)
        image = thumb.image[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch]
        lo = (patch - CELL) // 2
        centre = image[lo : lo + CELL, lo : lo + CELL]  # the strongest position's pixels
        assert centre.max() == 255  # the square is at the patch centre
        block = obs[index, i * CELL : (i + 1) * CELL, j * CELL : (j + 1) * CELL]
        assert np.array_equal(centre, block)
        bright = np.argwhere(image[..., 0] == 255)
        assert np.abs(bright.mean(axis=0) - patch / 2).max() <= SQUARE / 2 + 1
    assert features[0].thumbnail.indices[0] != -1


def test_popup_cells_show_the_observation_whose_square_is_there(square_set):
    obs, acts, features = square_set
    pop = features[0].popup(1, 1.0)
    assert pop.index_grid.shape == (LAYER, LAYER) and pop.image.shape == (SIZE, SIZE, 4)
    brightest = acts[:, 0].max(axis=0)
    assert np.array_equal(pop.index_grid == -1, brightest == 0)  # empty exactly where no square
    for i, j in np.argwhere(pop.index_grid >= 0):
        index = pop.index_grid[i, j]
        block = obs[index, i * CELL : (i + 1) * CELL, j * CELL : (j + 1) * CELL]
        assert block.max() == 255  # its square is at this cell
        cell = pop.image[i * CELL : (i + 1) * CELL, j * CELL : (j + 1) * CELL]
        assert np.array_equal(cell[..., :3], block)
        assert pop.activations[i, j] == acts[index, 0, i, j] == brightest[i, j]  # reuse not binding
        assert cell[0, 0, 3] == math.floor(255 * brightest[i, j] / brightest.max() + 0.5)
    assert np.all(pop.image[np.repeat(np.repeat(pop.index_grid == -1, CELL, 0), CELL, 1)] == 0)


def test_every_index_grid_refers_to_observations_within_the_reuse_bound(square_set):
    obs, _, features = square_set
    for feature in features:
        for pop in feature.popups:
            used = pop.index_grid[pop.index_grid >= 0]
            assert used.min(initial=0) >= 0 and used.max(initial=0) < len(obs)
            bound = math.ceil(pop.index_grid.size / (0.1 * len(obs)))
            assert np.bincount(used, minlength=len(obs)).max(initial=0) <= bound


def test_reuse_bound_binds_on_the_strongest_cells():
    rng = np.random.default_rng(1)
    n = 20
    obs = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    scores = rng.uniform(0.1, 1, (n, LAYER, LAYER)).astype(np.float32)
    scores[0] += 10 + rng.uniform(0, 1, (LAYER, LAYER)).astype(np.float32)  # best everywhere
    pop = popup(obs, scores, 1, 1.0, max_reuse_fraction=1.0)
    bound = math.ceil(LAYER * LAYER / n)  # 13
    counts = np.bincount(pop.index_grid.ravel(), minlength=n)
    assert counts[0] == bound and counts.max() <= bound and (pop.index_grid >= 0).all()
    strongest = np.sort(scores[0].ravel())[-bound:]
    assert np.array_equal(np.sort(scores[0][pop.index_grid == 0]), strongest)


def greedy_reference(values, max_uses):
    """Every (cell, observation) pair, sorted by decreasing value, taken when still possible."""
    cells, n = values.shape
    chosen, uses = np.full(cells, -1), np.zeros(n, int)
    for flat in np.argsort(-values, axis=None, kind="stable"):
        cell, obs = divmod(flat, n)
        if chosen[cell] < 0 and uses[obs] < max_uses and values[cell, obs] > 0:
            chosen[cell], uses[obs] = obs, uses[obs] + 1
    return chosen


@pytest.mark.parametrize("seed", range(6))
def test_assignment_is_the_global_greedy(seed):
    rng = np.random.default_rng(seed)
    cells, n, max_uses = rng.integers(1, 60), rng.integers(1, 30), rng.integers(1, 4)
    values = rng.normal(size=(cells, n)).astype(np.float32)
    values[:, rng.integers(0, n)] += 2  # one observation everyone wants
    chosen, chosen_values = assign(values, max_uses)
    assert np.array_equal(chosen, greedy_reference(values, max_uses))
    assert np.array_equal(chosen_values[chosen >= 0], values[chosen >= 0, chosen[chosen >= 0]])


def test_padding_is_a_grey_checkerboard_not_black():
    obs = np.zeros((1, 8, 8, 3), np.uint8)
    crop = crop_padded(obs, [0], [-6], [-6], 12, 12)[0]
    assert crop.shape == (12, 12, 3)
    assert np.all(crop[6:, 6:] == 0)  # the (black) observation itself
    padding = np.concatenate([crop[:6].reshape(-1, 3), crop[6:, :6].reshape(-1, 3)])
    assert set(np.unique(padding)) == GREYS and len(GREYS) == 2 and 0 not in GREYS
    assert np.all(padding == padding[:, :1])  # grey, not coloured
    # 4-px squares on the observation's pixel grid: crop pixel (r, c) is observation (r-6, c-6)
    rows, cols = np.meshgrid(np.arange(12) - 6, np.arange(12) - 6, indexing="ij")
    parity = (rows // 4 + cols // 4) % 2
    outside = (rows < 0) | (cols < 0)
    for value in (0, 1):
        assert len(np.unique(crop[outside & (parity == value)])) == 1
    assert crop[0, 0, 0] != crop[0, 2, 0] and crop[0, 0, 0] != crop[2, 0, 0]


def test_patches_off_the_frame_are_padded_in_thumbnails_and_popups():
    obs, acts, comps = squares(corners=[(0, 0)] * 3)
    (feature, _) = feature_images(obs, acts, comps)
    tile = feature.thumbnail.image[:16, :16]  # centred on layer (0, 0): 6 px hang off the frame
    assert tuple(feature.thumbnail.positions[0]) == (0, 0)
    assert set(np.unique(tile[:6])) == GREYS and set(np.unique(tile[:, :6])) == GREYS
    assert np.all(tile[6:12, 6:12] == 255)
    corner = feature.popup(1, 2.0)  # 32 cells of 4 px every 2 px: the first starts at -1
    assert corner.index_grid[0, 0] >= 0
    assert set(np.unique(corner.image[0, :4, :3])) <= GREYS
    assert np.all(corner.image[1:4, 1:4, :3] == 255)


def test_shapes_and_dtypes_for_every_default_popup(square_set):
    _, _, features = square_set
    config = FeatureVisConfig()
    cells = {1: (4, 8, 16, 32), 2: (2, 4, 8, 16), 4: (1, 2, 4, 8), 8: (1, 1, 2, 4)}
    assert len(features) == 2
    for feature in features:
        thumb = feature.thumbnail
        assert (thumb.image.shape, thumb.indices.shape, thumb.positions.shape) == ((64, 64, 3), (16,), (16, 2))
        assert (thumb.image.dtype, thumb.indices.dtype, thumb.positions.dtype) == (np.uint8, np.int32, np.int32)
        assert [(p.expand_mult, p.subdiv_mult) for p in feature.popups] == [
            (e, d) for e in config.expand_mults for d in config.subdiv_mults
        ]
        for pop in feature.popups:
            g = cells[pop.expand_mult][config.subdiv_mults.index(pop.subdiv_mult)]
            assert g == popup_cells(LAYER, pop.expand_mult, pop.subdiv_mult)
            side = CELL * pop.expand_mult
            assert pop.cell_size == (side, side)
            assert pop.image.shape == (g * side, g * side, 4) and pop.image.dtype == np.uint8
            assert pop.index_grid.shape == (g, g) and pop.index_grid.dtype == np.int32
            assert pop.activations.shape == (g, g) and pop.activations.dtype == np.float32
            assert not pop.image.flags.writeable
            assert pop.image[..., 3].max() == 255  # the strongest cell is opaque


def test_a_single_observation():
    rng = np.random.default_rng(2)
    obs = rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    acts = rng.uniform(0.1, 1, (1, 3, LAYER, LAYER)).astype(np.float32)
    (feature,) = feature_images(obs, acts, np.ones((1, 3), np.float32))
    assert feature.thumbnail.indices.tolist() == [0] + [-1] * 15
    assert (feature.thumbnail.positions[1:] == -1).all()
    assert set(np.unique(feature.thumbnail.image[16:])) == GREYS  # empty tiles: checkerboard
    for pop in feature.popups:
        assert (pop.index_grid == 0).all()  # one observation may fill every cell


def test_a_one_by_one_layer():
    obs, _, _ = squares(n=5)
    acts = np.arange(10, dtype=np.float32).reshape(5, 2, 1, 1)
    features = feature_images(obs, acts, np.array([[1, 0], [1, 1]], np.float32))
    thumb = features[0].thumbnail
    assert thumb.image.shape == (4 * SIZE, 4 * SIZE, 3)  # a patch is at most the observation
    assert np.array_equal(thumb.image[:SIZE, :SIZE], obs[4])
    assert thumb.indices.tolist()[:5] == [4, 3, 2, 1, 0] and (thumb.positions[:5] == 0).all()
    whole = features[0].popup(8, 1.0)
    assert whole.index_grid.tolist() == [[4]] and np.array_equal(whole.image[..., :3], obs[4])
    double = features[0].popup(1, 2.0)  # two 64 px patches per axis, centred at 16 and 48 px
    assert double.image.shape == (128, 128, 4)
    assert set(double.index_grid.ravel().tolist()) <= set(range(5))
    assert set(np.unique(double.image[:16, :, :3])) == GREYS


def test_all_zero_activations_give_transparent_empty_popups():
    obs, acts, comps = squares(n=20)
    features = feature_images(obs, np.zeros_like(acts), comps)
    for feature in features:
        assert feature.thumbnail.indices.tolist() == list(range(16))  # ties: observation order
        for pop in feature.popups:
            assert (pop.index_grid == -1).all() and (pop.activations == 0).all()
            assert not pop.image.any()


def test_non_square_frames_and_greyscale():
    rng = np.random.default_rng(3)
    obs = rng.integers(0, 256, (6, 48, 64, 1), dtype=np.uint8)
    acts = rng.uniform(0, 1, (6, 2, 12, 16)).astype(np.float32)
    (feature,) = feature_images(obs, acts, [[1.0, 2.0]], FeatureVisConfig(expand_mults=(2,)))
    assert feature.thumbnail.image.shape == (64, 64, 3)
    assert [p.index_grid.shape for p in feature.popups] == [(2, 2), (3, 4), (6, 8), (12, 16)]
    assert all(p.cell_size == (8, 8) for p in feature.popups)


def test_direction_scores_use_unit_directions_for_numpy_and_torch():
    rng = np.random.default_rng(4)
    acts = rng.uniform(0, 1, (70, 5, 3, 4)).astype(np.float32)
    comps = rng.uniform(0, 1, (3, 5)).astype(np.float32)
    unit = comps / np.linalg.norm(comps, axis=1, keepdims=True)
    expected = np.einsum("nchw,kc->nkhw", acts, unit)
    scores = direction_scores(acts, comps * 7, batch_size=32)
    assert scores.shape == (70, 3, 3, 4) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    from_torch = direction_scores(torch.from_numpy(acts), comps)
    np.testing.assert_allclose(from_torch, scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"observations": np.zeros((40, 64, 64, 3), np.float32)}, "uint8"),
        ({"observations": np.zeros((40, 64, 64), np.uint8)}, "uint8"),
        ({"activations": np.zeros((39, 2, 16, 16), np.float32)}, "N = 40"),
        ({"activations": np.zeros((40, 2, 16), np.float32)}, "N = 40"),
        ({"components": np.eye(3, dtype=np.float32)}, "channels"),
        ({"components": np.array([[1, 0], [0, 0]], np.float32)}, "all zero"),
        ({"components": np.zeros((0, 2), np.float32)}, "K >= 1"),
        ({"activations": np.full((40, 2, 16, 16), np.nan, np.float32)}, "NaN"),
    ],
)
def test_bad_input_is_a_user_error(change, message):
    obs, acts, comps = squares()
    arguments = {"observations": obs, "activations": acts, "components": comps, **change}
    with pytest.raises(UserError, match=message):
        feature_images(**arguments)


def test_thumbnail_and_popup_take_one_feature_map():
    obs, acts, _ = squares()
    thumb = thumbnail(obs, acts[:, 0], grid=2)
    assert thumb.image.shape == (32, 32, 3) and thumb.indices.shape == (4,)
    assert popup(obs, acts[:, 0], 4, 1.0).index_grid.shape == (4, 4)


def test_patch_boxes_are_where_each_cell_was_cut_from(square_set):
    """``tops``/``lefts`` + ``cell_size`` locate every patch in its observation (the interface
    outlines that box), including patches that hang off the frame."""
    obs, _, features = square_set
    for pop in features[0].popups:
        (gy, gx), (ph, pw) = pop.index_grid.shape, pop.cell_size
        assert pop.tops.shape == (gy,) and pop.lefts.shape == (gx,) and pop.tops.dtype == np.int32
        for row, col in zip(*np.nonzero(pop.index_grid >= 0)):
            top, left = pop.tops[row], pop.lefts[col]
            expected = crop_padded(obs, [pop.index_grid[row, col]], [top], [left], ph, pw)[0]
            cell = pop.image[row * ph : (row + 1) * ph, col * pw : (col + 1) * pw, :3]
            np.testing.assert_array_equal(cell, expected)
