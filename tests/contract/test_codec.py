"""Quantisation bounds, array encoding, compression and images."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest

from understanding_rl_vision.contract import codec, schema
from understanding_rl_vision.contract.schema import ArraySpec, AttributionPayload
from understanding_rl_vision.errors import UserError


def sparse_maps(n: int, k: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Attribution-like maps: three drifting noisy blobs per feature, exactly zero elsewhere.

    Tuned to compress like NMF-reduced attribution of the bundled agent (deflate keeps ~26%).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    maps = np.zeros((n, k, h, w))
    for f in range(k):
        centres = rng.uniform(0, [h, w], size=(3, 2))
        speed = rng.normal(0, 0.3, size=(3, 2))
        for t in range(n):
            for (cy, cx), (vy, vx) in zip(centres, speed):
                bump = np.exp(-((yy - cy - vy * t) ** 2 + (xx - cx - vx * t) ** 2) / 8.0)
                maps[t, f] += rng.lognormal(0, 0.5) * bump
    maps *= rng.lognormal(0, 0.3, size=maps.shape)
    maps[maps < 0.01 * maps.max()] = 0.0
    return maps


def spec(dims: str, stored: str, quantised: bool = True, logical: str = "float32") -> ArraySpec:
    return ArraySpec(tuple(dims.split()), stored, quantised, logical)


def test_unsigned_quantisation_error_is_half_a_step():
    x = np.random.default_rng(1).gamma(0.5, 2.0, size=(40, 8, 6, 5))
    q, scale = codec.quantise(x, "uint8")
    assert q.dtype == np.uint8 and q.max() == 255
    assert scale == pytest.approx(x.max() / 255, rel=1e-12)
    error = np.abs(codec.dequantise(q, scale) - x).max()
    assert error <= scale / 2 * (1 + 1e-5)
    assert error <= x.max() / 255  # the looser bound the page relies on


def test_display_step_bounds_the_error_by_the_display_scale_and_clips_only_the_far_tail():
    """Heavy-tailed maps (a few values far above the rest, as attribution is): quantised by the
    maximum, the step is many % of the display scale; by :func:`display_step`, 4% of it, so every
    value below 255 steps is within 2% of the display scale, and only the far tail clips."""
    rng = np.random.default_rng(0)
    values = np.where(rng.random(200_000) < 0.5, rng.lognormal(0.0, 1.0, 200_000), 0.0)
    values[:5] = 60 * np.percentile(values[values > 0], 99)  # five outliers, 60x the display scale
    display = np.percentile(values[values > 0], 99)
    step = codec.display_step(values[:100_000], values[100_000:])  # parts share one step
    assert step == pytest.approx(2 * codec.DISPLAY_ERROR * display, rel=1e-6)
    q, scale = codec.quantise(values, "uint8", step)
    assert scale == step
    error = np.abs(codec.dequantise(q, scale) - values)
    kept = values <= 255 * step
    assert error[kept].max() <= step / 2 * (1 + 1e-6)
    assert (~kept).sum() == 5 and np.all(q[~kept] == 255)  # the outliers, clipped
    assert np.percentile(error, 99) <= codec.DISPLAY_ERROR * display
    by_max, max_scale = codec.quantise(values, "uint8")  # the maximum's step is 6x coarser: 12% errors
    assert max_scale > 5 * step
    assert np.percentile(np.abs(codec.dequantise(by_max, max_scale) - values), 99) > 2 * codec.DISPLAY_ERROR * display
    # A step coarser than the maximum's is taken too: fewer levels, within the same bound.
    small = np.array([0.0, 0.5, 1.0])
    assert codec.quantise(small, "uint8", 0.1)[0].tolist() == [0, 5, 10]
    assert codec.display_step(np.zeros(4)) == 0.0 and codec.quantise(small, "uint8", 0.0)[1] == pytest.approx(1 / 255)


def test_signed_residual_keeps_its_sign():
    x = np.random.default_rng(2).standard_normal((30, 7, 7)) ** 3
    q, scale = codec.quantise(x, "int8")
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and q.min() >= -127
    back = codec.dequantise(q, scale)
    assert np.abs(back - x).max() <= scale / 2 * (1 + 1e-5)
    assert (back * x >= 0).all()  # never flipped
    big = np.abs(x) >= scale / 2 * (1 + 1e-9)
    assert big.sum() > 0.5 * x.size
    np.testing.assert_array_equal(np.sign(back[big]), np.sign(x[big]))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
def test_all_zero_maps_have_scale_zero(dtype):
    with np.errstate(all="raise"):
        q, scale = codec.quantise(np.zeros((3, 4, 4)), dtype)
        encoded = codec.encode_array(np.zeros((3, 4, 4), np.float32), spec("N h w", dtype))
        decoded = codec.decode_array(encoded, spec("N h w", dtype))
    assert scale == 0.0 and encoded["scale"] == 0.0 and not q.any()
    assert decoded.dtype == np.float32 and not decoded.any()


def test_bad_inputs_to_quantise():
    with pytest.raises(ValueError, match="non-negative"):
        codec.quantise(np.array([1.0, -0.5]), "uint8")
    with pytest.raises(ValueError, match="NaN"):
        codec.quantise(np.array([1.0, np.nan]), "int8")


def test_float64_non_contiguous_input_round_trips():
    base = np.random.default_rng(3).random((6, 4, 10, 12))
    view = base.transpose(0, 1, 3, 2)[:, :, ::2]  # float64, not C-contiguous
    assert not view.flags.c_contiguous
    s = spec("N K h w", "uint8")
    encoded = codec.encode_array(view, s)
    back = codec.decode_array(encoded, s)
    assert encoded["shape"] == list(view.shape) and back.shape == view.shape
    assert np.abs(back - view).max() <= encoded["scale"] / 2 * (1 + 1e-5)


@pytest.mark.parametrize(
    "values, s",
    [
        (np.linspace(-3, 7, 13, dtype=np.float64), spec("N", "float32", False)),
        (np.array([0, 5, 2, 14, 14, 3]), spec("N", "int32", False, "int32")),
        (np.array([True, False, False, True]), spec("N", "uint8", False, "bool")),
        (np.arange(-1, 24).reshape(5, 5), spec("G G", "int32", False, "int32")),
    ],
)
def test_unquantised_arrays_round_trip_exactly(values, s):
    encoded = codec.encode_array(values, s)
    assert encoded["scale"] == 1.0 and encoded["dtype"] == s.stored
    back = codec.decode_array(encoded, s)
    assert back.dtype == np.dtype(s.logical)
    np.testing.assert_array_equal(back, values.astype(s.logical))


def test_single_frame():
    x = sparse_maps(1, 3, 4, 4)
    s = spec("N K h w", "uint8")
    encoded = codec.encode_array(x, s)
    assert encoded["shape"] == [1, 3, 4, 4]
    assert np.abs(codec.decode_array(encoded, s) - x).max() <= encoded["scale"] / 2 * (1 + 1e-5)


def test_deflate_is_the_zlib_format_the_browser_inflates():
    zeros = codec.encode_array(np.zeros(4096, np.float32), spec("N", "float32", False))
    assert zeros["compression"] == "deflate"
    raw = base64.b85decode(zeros["data"])
    assert raw[0] == 0x78 and (raw[0] * 256 + raw[1]) % 31 == 0  # RFC 1950 header
    assert zlib.decompressobj(wbits=15).decompress(raw) == bytes(4 * 4096)


def test_incompressible_data_is_stored_raw():
    noise = np.random.default_rng(4).integers(-(2**31), 2**31 - 1, size=256)
    s = spec("N", "int32", False, "int32")
    encoded = codec.encode_array(noise, s)
    assert encoded["compression"] == "none"
    assert len(base64.b85decode(encoded["data"])) == 4 * 256
    np.testing.assert_array_equal(codec.decode_array(encoded, s), noise)


def test_compression_shrinks_sparse_attribution():
    n, k, h, w = 64, 8, 16, 16
    positive, negative = sparse_maps(n, k, h, w, seed=5), sparse_maps(n, k, h, w, seed=6)
    residual = (sparse_maps(n, 1, h, w, seed=7) - sparse_maps(n, 1, h, w, seed=8))[:, 0]
    payload = AttributionPayload(
        layer=0,
        trajectory=0,
        output=0,
        positive=positive,
        negative=negative,
        residual=residual,
        totals=(positive - negative).sum((2, 3)),
        residual_totals=residual.sum((1, 2)),
        display_scale=1.0,
    )
    wire = codec.to_json(payload)
    arrays = [wire[name] for name in ("positive", "negative", "residual", "totals", "residual_totals")]
    stored = sum(len(base64.b85decode(a["data"])) for a in arrays)
    budget = schema.estimate_bytes(h, w, k, frames=n)
    assert budget.quantised == 4388 * n and budget.float32 == 17444 * n
    assert all(a["compression"] == "deflate" for a in arrays[:3])
    assert stored <= budget.quantised / 2.5, stored / n  # measured on real maps: 3.7x
    assert stored <= budget.float32 / 10, stored / n


def test_corrupt_arrays_raise_user_error():
    s = spec("N", "float32", False)
    good = codec.encode_array(np.random.default_rng(11).standard_normal(8), s)
    assert good["compression"] == "none"
    for bad in (
        {**good, "data": 'not base85: "quoted"'},
        {**good, "shape": [9]},
        {**good, "dtype": "float64"},
        {**good, "compression": "gzip"},
        {**good, "scale": -1.0},
        {**good, "compression": "deflate"},  # claims deflate but is raw
        {k: v for k, v in good.items() if k != "scale"},
    ):
        with pytest.raises(UserError):
            codec.decode_array(bad, s)
    with pytest.raises(UserError):
        codec.decode_array(good, spec("N", "int32", False, "int32"))  # dtype not the contract's


def test_png_round_trip_and_data_url():
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(codec.decode_png(codec.encode_png(rgb)), rgb)
    np.testing.assert_array_equal(codec.decode_png(codec.encode_png(rgba)), rgba)
    url = codec.png_data_url(rgb)
    assert url.startswith("data:image/png;base64,")
    with pytest.raises(ValueError):
        codec.encode_png(rgb.astype(np.float32))


@pytest.mark.parametrize("count, h, w", [(512, 64, 64), (1, 8, 8), (37, 210, 160), (5000, 64, 64)])
def test_sprite_layout_fits_and_packs(count, h, w):
    per_sheet, columns = codec.sprite_layout(count, h, w)
    rows = -(-per_sheet // columns)
    assert 1 <= per_sheet <= count and columns * w <= 4096 and rows * h <= 4096
    images = np.random.default_rng(10).integers(0, 256, (min(count, 70), h, w, 3), np.uint8)
    per_sheet, columns = codec.sprite_layout(len(images), h, w, per_sheet=16)
    sheets = codec.pack_sprites(images, per_sheet, columns)
    sprites = schema.Sprites(
        sheets=tuple(f"s-{i}.png" for i in range(len(sheets))),
        count=len(images),
        height=h,
        width=w,
        columns=columns,
        per_sheet=per_sheet,
    )
    for i in (0, len(images) // 2, len(images) - 1):
        ref, x, y = sprites.locate(i)
        sheet = sheets[int(ref[2:-4])]
        np.testing.assert_array_equal(sheet[y : y + h, x : x + w], images[i])


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 7, 8, 1001])
def test_base85_is_the_standard_encoding(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes() + b"\xff" * (size > 4)
    assert codec.b85encode(data) == base64.b85encode(data).decode("ascii")
