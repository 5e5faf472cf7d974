"""Compact payloads draw the same picture (issue 20): maps quantised on the page's display scale
(:func:`~understanding_rl_vision.contract.codec.display_step`) against the same maps quantised on
their maximum, as every payload was before. Two real runs of the bundled CoinRun agent that differ
only in that, opened in Chromium from file://; the drawn canvases are compared by SSIM, and the
decoded values by their error relative to the display scale."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import uniform_filter
from test_interface_sections import MAP, open_page

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.contract import read_manifest, read_payload
from understanding_rl_vision.contract.codec import DISPLAY_ERROR, DISPLAY_PERCENTILE
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.pipeline import payloads

RUN = dict(
    progress=False,
    num_envs=1,
    num_steps=16,
    obs_num_envs=2,
    obs_every=4,
    num_obs=16,
    layers=("1a", "2b"),
    default_layer="1a",
    methods=("ig", "gradcam"),
    explain=("value", "action"),
    num_bookmarks=1,
)
"""One trajectory of 16 frames at layers 1a (32 x 32) and 2b, integrated gradients (NMF features)
and Grad-CAM (maps), of the value and the action taken."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """(compact, by the maximum) interface.html of the same run."""
    folder = tmp_path_factory.mktemp("compact")
    compact = rl_clarity.run(bundled_agent_path(), folder / "compact", cache_dir=folder / "cache-compact", **RUN).path
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(payloads, "display_step", lambda *parts: 0.0)  # 0: quantise by the maximum
        by_max = rl_clarity.run(bundled_agent_path(), folder / "by-max", cache_dir=folder / "cache-max", **RUN).path
    return compact, by_max


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two greyscale images in 0..255 (7 x 7 windows, the usual
    constants of Wang et al. 2004)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mean_a, mean_b = uniform_filter(a, 7), uniform_filter(b, 7)
    var_a = uniform_filter(a * a, 7) - mean_a**2
    var_b = uniform_filter(b * b, 7) - mean_b**2
    cov = uniform_filter(a * b, 7) - mean_a * mean_b
    index = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / ((mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))
    return float(index[3:-3, 3:-3].mean())


def drawn(page, interface: Path, query: str) -> list[np.ndarray]:
    """Every attribution canvas of the page at ``query``, as greyscale over white."""
    open_page(page, interface, query)
    images = []
    for url in page.evaluate("(sel) => [...document.querySelectorAll(sel)].map((c) => c.toDataURL())", MAP):
        rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"), np.float64)
        alpha = rgba[..., 3:] / 255
        over_white = rgba[..., :3] * alpha + 255 * (1 - alpha)
        images.append(over_white @ np.array([0.299, 0.587, 0.114]))
    return images


def test_compact_payloads_draw_the_same_picture(page, runs):
    compact, by_max = runs
    scores = []
    for layer in ("1a", "2b"):
        for frame in (2, 9, 15):
            query = f"?layer={layer}&frame={frame}"
            after, before = drawn(page, compact, query), drawn(page, by_max, query)
            assert len(after) == len(before) >= 2
            assert all(np.ptp(image) > 10 for image in before), "the maps drew nothing to compare"
            scores += [ssim(a, b) for a, b in zip(after, before)]
    print(f"SSIM of {len(scores)} canvases: min {min(scores):.4f}, mean {np.mean(scores):.4f}")
    assert min(scores) >= 0.98, scores


def test_compact_payloads_stay_within_two_percent_of_the_display_scale(runs):
    compact, by_max = runs
    data_after, data_before = compact.parent / "data", by_max.parent / "data"
    names = sorted(p.stem for p in data_before.glob("*.js") if p.stem.startswith(("attr-", "m1-")))
    assert len(names) == len(read_manifest(data_before).outputs) * 2 * 2  # 2 methods x 2 layers x 1 trajectory
    smaller = 0
    for name in names:
        after, before = read_payload(data_after, name), read_payload(data_before, name)
        parts = [np.abs(getattr(before, part)) for part in ("positive", "negative")]
        nonzero = np.concatenate([p[p > 0] for p in parts])
        scale = np.percentile(nonzero, DISPLAY_PERCENTILE)
        error = np.concatenate(
            [np.abs(getattr(after, part) - getattr(before, part)).ravel() for part in ("positive", "negative")]
        )
        # ``before`` is itself quantised (by the maximum, error <= max / 510), so allow for both.
        allowed = DISPLAY_ERROR * scale + max(p.max() for p in parts) / 510
        print(f"{name}: p99 error {np.percentile(error, 99) / scale:.2%} of the display scale")
        assert np.percentile(error, 99) <= allowed, name
        smaller += (data_after / f"{name}.js").stat().st_size <= (data_before / f"{name}.js").stat().st_size
    assert smaller >= len(names) // 2  # coarser levels deflate smaller in most payloads
