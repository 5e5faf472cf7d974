"""NMF channel reduction on synthetic attribution whose true features are known."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment, nnls

from understanding_rl_vision.config import ReductionConfig
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.reduction import ChannelReducer, FeatureMaps, feature_colours
from understanding_rl_vision.reduction import nmf as nmf_module


def synthetic(n: int = 48, channels: int = 16, k: int = 4, size: int = 8, seed: int = 0):
    """(N, C, H, W) attribution made of ``k`` non-negative directions with sparse non-negative
    coefficients; every third frame is negated. Returns attribution, directions, coefficients."""
    rng = np.random.default_rng(seed)
    # Zeros pin the directions to faces of the positive orthant, and a channel of each direction's
    # own (channel i is only in direction i) makes that well conditioned: NMF then has one optimum
    # and reaches it within scikit-learn's default tolerance.
    directions = rng.random((k, channels)) * (rng.random((k, channels)) < 0.5)
    directions[:, :k] = np.eye(k)
    coefficients = rng.exponential(size=(n, k, size, size)) * (rng.random((n, k, size, size)) < 0.3)
    sign = np.where(np.arange(n) % 3 == 2, -1.0, 1.0)[:, None, None, None]
    attribution = sign * np.einsum("nkhw,kc->nchw", coefficients, directions)
    return attribution.astype(np.float32), directions, coefficients


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def fitted() -> tuple[np.ndarray, np.ndarray, np.ndarray, ChannelReducer, FeatureMaps]:
    attribution, directions, coefficients = synthetic()
    reducer = ChannelReducer(ReductionConfig(nmf_features=4)).fit(attribution)
    return attribution, directions, coefficients, reducer, reducer.transform(attribution)


def test_recovers_the_true_directions(fitted):
    _, directions, _, reducer, _ = fitted
    cosine = unit(directions) @ unit(reducer.components).T
    rows, cols = linear_sum_assignment(-cosine)
    assert cosine[rows, cols].min() >= 0.99
    assert reducer.components.dtype == np.float32 and reducer.components.shape == (4, 16)
    assert (reducer.components >= 0).all()
    np.testing.assert_allclose(reducer.components.sum(1), 1.0, rtol=1e-6)


def test_coefficients_are_in_attribution_units(fitted):
    attribution, directions, coefficients, reducer, maps = fitted
    cosine = unit(directions) @ unit(reducer.components).T
    true_index, fitted_index = linear_sum_assignment(-cosine)
    # A true coefficient c along direction d contributes c * sum(d) to the channel sum.
    unit_sums = directions[true_index].sum(1)[None, :, None, None]
    expected = np.abs(coefficients[:, true_index]) * unit_sums
    got = np.abs(maps.net[:, fitted_index])
    assert np.abs(got - expected).max() <= 0.01 * expected.max()
    assert np.abs(maps.residual).max() <= 0.01 * np.abs(attribution.sum(1)).max()


def test_features_and_residual_reconstruct_channel_sums(fitted):
    attribution, _, _, _, maps = fitted
    channel_sum = attribution.astype(np.float64).sum(1)
    rebuilt = maps.net.astype(np.float64).sum(1) + maps.residual
    assert np.abs(rebuilt - channel_sum).max() <= 1e-5 * np.abs(channel_sum).max()


def test_reconstruction_is_exact_for_features_that_do_not_fit():
    attribution = np.random.default_rng(3).standard_normal((6, 10, 5, 7)).astype(np.float32)
    reducer = ChannelReducer(ReductionConfig(nmf_features=3)).fit(attribution)
    maps = reducer.transform(attribution)
    channel_sum = attribution.astype(np.float64).sum(1)
    assert np.abs(maps.residual).max() > 0.1 * np.abs(channel_sum).max()  # a real residual
    rebuilt = maps.net.astype(np.float64).sum(1) + maps.residual
    assert np.abs(rebuilt - channel_sum).max() <= 1e-5 * np.abs(channel_sum).max()


def test_signs_split_into_positive_and_negative_maps(fitted):
    _, _, _, _, maps = fitted
    negated = np.arange(maps.positive.shape[0]) % 3 == 2
    assert (maps.positive >= 0).all() and (maps.negative >= 0).all()
    assert (maps.positive[negated] == 0).all() and (maps.negative[~negated] == 0).all()
    assert maps.negative[negated].max() > 0


def test_transform_solves_non_negative_least_squares(fitted):
    attribution, _, _, reducer, maps = fitted
    components = reducer.components.astype(np.float64)
    # Signed vectors that the features do not fit exactly, so the non-negativity binds.
    noise = np.random.default_rng(2).standard_normal((16, 12))
    probe = (noise + attribution[0, :, :1, :1].reshape(16, 1)).reshape(1, 16, 12, 1)
    probe_maps = reducer.transform(probe)
    for index in range(12):
        x = probe[0, :, index, 0]
        for part, got in ((x, probe_maps.positive), (-x, probe_maps.negative)):
            expected, _ = nnls(components.T, np.maximum(part, 0))
            atol = 1e-5 * max(1.0, expected.max())
            np.testing.assert_allclose(got[0, :, index, 0], expected, atol=atol)
    assert maps.positive.dtype == maps.negative.dtype == maps.residual.dtype == np.float32


def test_totals_are_spatial_sums(fitted):
    _, _, _, _, maps = fitted
    net_sums = maps.net.astype(np.float64).sum((2, 3))
    residual_sums = maps.residual.astype(np.float64).sum((1, 2))
    np.testing.assert_allclose(maps.totals, net_sums, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(maps.residual_totals, residual_sums, rtol=1e-5, atol=1e-4)
    assert maps.totals.shape == (48, 4) and maps.residual_totals.shape == (48,)
    assert maps.totals.dtype == maps.residual_totals.dtype == np.float32


def test_scale_is_median_of_per_frame_peaks(fitted):
    _, _, _, _, maps = fitted
    peaks = np.maximum(np.abs(maps.net).max((1, 2, 3)), np.abs(maps.residual).max((1, 2)))
    assert maps.scale == pytest.approx(float(np.median(peaks)), rel=1e-6)
    assert isinstance(maps.scale, float) and maps.scale > 0


def test_fewer_channels_than_features():
    attribution = synthetic(n=8, channels=3, k=2)[0]
    reducer = ChannelReducer(ReductionConfig(nmf_features=8)).fit(attribution)
    maps = reducer.transform(attribution)
    assert reducer.num_features == 3 and reducer.components.shape == (3, 3)
    assert maps.positive.shape == maps.negative.shape == (8, 3, 8, 8)
    np.testing.assert_allclose(reducer.components.sum(1), 1.0, rtol=1e-6)
    channel_sum = attribution.astype(np.float64).sum(1)
    rebuilt = maps.net.astype(np.float64).sum(1) + maps.residual
    assert np.abs(rebuilt - channel_sum).max() <= 1e-5 * np.abs(channel_sum).max()


def test_all_zero_attribution():
    zeros = np.zeros((4, 5, 3, 3), dtype=np.float32)
    reducer = ChannelReducer(ReductionConfig(nmf_features=3)).fit(zeros)
    components = reducer.components
    assert components.shape == (3, 5) and np.isin(components, (0.0, 1.0)).all()  # one-hot rows
    np.testing.assert_array_equal(components.sum(1), 1.0)
    assert len({tuple(row) for row in components}) == 3
    maps = reducer.transform(zeros)
    for array in (maps.positive, maps.negative, maps.residual, maps.totals, maps.residual_totals):
        assert not array.any()
    assert maps.scale == 1.0


def test_single_observation_single_position():
    attribution = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.25, -0.75]).reshape(1, 6, 1, 1)
    reducer = ChannelReducer().fit(attribution)
    maps = reducer.transform(attribution)
    assert reducer.num_features == 6
    np.testing.assert_allclose(reducer.components.sum(1), 1.0, rtol=1e-6)
    assert maps.positive.shape == (1, 6, 1, 1) and maps.residual.shape == (1, 1, 1)
    rebuilt = maps.net.sum(1) + maps.residual
    np.testing.assert_allclose(rebuilt, attribution.numpy().sum(1), atol=1e-6)
    # One frame: the scale is that frame's peak of |net| and |residual|.
    peak = max(np.abs(maps.net).max(), np.abs(maps.residual).max())
    assert peak > 0 and maps.scale == pytest.approx(float(peak), rel=1e-6)


def test_same_seed_gives_identical_components():
    attribution = synthetic(seed=5)[0]
    config = ReductionConfig(nmf_features=4, nmf_seed=7)
    first = ChannelReducer(config).fit(attribution).components
    second = ChannelReducer(config).fit(torch.from_numpy(attribution)).components
    np.testing.assert_array_equal(first, second)


def test_row_sample_is_seeded_and_still_recovers(monkeypatch):
    attribution, directions, _ = synthetic(seed=2)
    monkeypatch.setattr(nmf_module, "MAX_FIT_ROWS", 1000)
    fits = [
        ChannelReducer(ReductionConfig(nmf_features=4, nmf_seed=seed)).fit(attribution).components for seed in (0, 0, 1)
    ]
    np.testing.assert_array_equal(fits[0], fits[1])
    assert not np.array_equal(fits[0], fits[2])
    cosine = unit(directions) @ unit(fits[0]).T
    rows, cols = linear_sum_assignment(-cosine)
    assert cosine[rows, cols].min() >= 0.99


@pytest.mark.parametrize(
    "bad",
    [
        np.full((2, 3, 4, 4), np.nan, dtype=np.float32),
        np.array([[[[1.0, np.inf]]]]),
        np.ones((2, 3, 4)),
        np.ones((0, 3, 4, 4)),
        np.array([[[["a"]]]]),
    ],
    ids=["nan", "inf", "rank3", "empty", "strings"],
)
def test_bad_input_is_a_user_error(bad):
    with pytest.raises(UserError):
        ChannelReducer().fit(bad)


def test_transform_checks_channels_and_fit():
    with pytest.raises(RuntimeError):
        ChannelReducer().transform(np.ones((1, 3, 2, 2)))
    reducer = ChannelReducer(ReductionConfig(nmf_features=2)).fit(np.ones((1, 3, 2, 2)))
    with pytest.raises(UserError):
        reducer.transform(np.ones((1, 4, 2, 2)))
    with pytest.raises(UserError):
        reducer.transform(np.full((1, 3, 2, 2), np.nan))


def test_feature_colours():
    colours = feature_colours(8)
    assert len(colours) == len(set(colours)) == 8
    assert all(re.fullmatch(r"#[0-9a-f]{6}", colour) for colour in colours)
    assert colours[0] == "#cc0000"  # hue 0: red
    assert feature_colours(3) == ["#cc0000", "#00cc00", "#0000cc"]
    assert feature_colours(0) == []
