"""The video's looks, pixel by pixel, and its colour tables against the page's own (through Node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from understanding_rl_vision.render.video import colors, overlays

ROOT = Path(__file__).resolve().parents[2]


def _frames(n: int = 2, size: int = 16, grey: int = 100) -> np.ndarray:
    return np.full((n, size, size, 3), grey, np.uint8)


def _peak_map(n: int = 2, size: int = 4, at: tuple[int, int] = (1, 2)) -> np.ndarray:
    maps = np.zeros((n, size, size), np.float32)
    maps[:, at[0], at[1]] = 3.0
    return maps


def test_colour_tables_equal_the_pages():
    node = shutil.which("node")
    assert node, "the page's colour tables are compared through Node (needed by make check-frontend too)"
    script = (
        f'import {{ SEQUENTIAL, DIVERGING }} from "{ROOT / "svelte/src/lib/colormaps.js"}";'
        "console.log(JSON.stringify([Array.from(SEQUENTIAL.rgb), Array.from(DIVERGING.rgb)]));"
    )
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    sequential, diverging = (np.array(t).reshape(-1, 3) for t in json.loads(out.stdout))
    np.testing.assert_array_equal(colors.SEQUENTIAL, sequential)
    np.testing.assert_array_equal(colors.DIVERGING, diverging)


def test_jet_runs_blue_to_red():
    assert colors.JET[0].tolist() == [0, 0, 128]
    assert colors.JET[-1].tolist() == [128, 0, 0]
    middle = colors.JET[128]
    assert middle[1] == 255 and abs(int(middle[0]) - int(middle[2])) <= 8  # green, red and blue balanced


def test_jet_blend_is_seed_000s_half_and_half_at_the_peak():
    frames = _frames(size=4)
    out = overlays.jet_blend(frames, _peak_map())
    # The map's strongest position: jet's top (128, 0, 0) blended at 0.5 over grey 100.
    assert out[0, 1, 2].tolist() == [114, 50, 50]
    # Its weakest: jet's bottom (0, 0, 128).
    assert out[0, 3, 0].tolist() == [50, 50, 114]


def test_jet_blend_normalises_each_frame_on_its_own():
    maps = _peak_map()
    maps[1] *= 1000  # a frame a thousand times stronger looks the same, as in seed 000
    out = overlays.jet_blend(_frames(size=4), maps)
    np.testing.assert_array_equal(out[0], out[1])


def test_actor_critic_adds_to_blue_and_red():
    frames = _frames(size=4, grey=20)
    actor, critic = _peak_map(at=(0, 0)), _peak_map(at=(3, 3))
    out = overlays.add_channels(frames, [(actor, 3.0, overlays.ACTOR_CHANNEL), (critic, 6.0, overlays.CRITIC_CHANNEL)])
    assert out[0, 0, 0].tolist() == [20, 20, 255]  # full actor saliency saturates blue
    assert out[0, 3, 3].tolist() == [148, 20, 20]  # critic at half its scale: +127.5 red
    assert out[0, 2, 1].tolist() == [20, 20, 20]  # no saliency, the frame unchanged


def test_table_overlay_is_opaque_at_full_scale_and_clear_at_zero():
    frames = _frames(size=4, grey=0)
    out = overlays.table_overlay(frames, _peak_map(), scale=3.0, signed=False, opacity=1.0)
    assert out[0, 1, 2].tolist() == colors.SEQUENTIAL[-1].tolist()  # full colour, fully opaque
    under = overlays.grey_under(frames, 1.0)[0, 0, 0]
    assert out[0, 3, 0].tolist() == np.floor(under + 0.5).astype(int).tolist()  # zero: the grey observation


def test_signed_table_draws_negatives_blue():
    maps = -_peak_map()
    out = overlays.table_overlay(_frames(size=4), maps, scale=3.0, signed=True, opacity=1.0)
    assert out[0, 1, 2].tolist() == colors.DIVERGING[0].tolist()
    unsigned = overlays.table_overlay(_frames(size=4), maps, scale=3.0, signed=False, opacity=1.0)
    assert unsigned[0, 1, 2].tolist() == unsigned[0, 3, 3].tolist()  # unsigned: negative draws as zero


def test_features_take_their_colour_where_they_dominate():
    strength = np.zeros((1, 2, 4, 4), np.float32)
    strength[0, 0, 0, 0] = 50.0  # feature 0 far above the scale at the top left
    strength[0, 1, 3, 3] = 50.0  # feature 1 at the bottom right
    palette = np.array([[255, 0, 0], [0, 0, 255]], np.float32)
    out = overlays.features_overlay(_frames(n=1, size=4), strength, palette, scale=1.0, opacity=0.75)
    assert out[0, 0, 0].tolist() == [255, 0, 0]
    assert out[0, 3, 3].tolist() == [0, 0, 255]


def test_robust_scale_is_the_pages_percentile_over_gain():
    values = np.concatenate([np.zeros(1000), np.arange(1, 101, dtype=np.float64)])
    assert overlays.robust_scale(values) == 99.0  # zeros left out, as levels.js does
    assert overlays.robust_scale(values, gain=2.0) == 49.5
    assert overlays.robust_scale(np.zeros(10)) == 0.0


@pytest.mark.parametrize("size", [(8, 8), (32, 48)])
def test_upsample_keeps_a_constant_map_constant(size):
    maps = np.full((3, 2, 4, 4), 0.25, np.float32)
    big = overlays.upsample(maps, size)
    assert big.shape == (3, 2, *size)
    np.testing.assert_allclose(big, 0.25, atol=1e-6)
