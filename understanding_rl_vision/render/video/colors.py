"""Colour maps for the video, as NumPy tables of 256 RGB bytes.

``sequential`` and ``diverging`` are the page's tables (``svelte/src/lib/colormaps.js``), computed
the same way in OKLab, so a video frame and the page agree; a test compares the two tables entry by
entry through Node. ``jet`` is the rainbow map seed 000 blended over Mario.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TABLE_SIZE = 256

_LMS_FROM_LAB = np.array(
    [[1.0, 0.3963377774, 0.2158037573], [1.0, -0.1055613458, -0.0638541728], [1.0, -0.0894841775, -1.291485548]]
)
_RGB_FROM_LMS = np.array(
    [[4.0767416621, -3.3077115913, 0.2309699292], [-1.2684380046, 2.6097574011, -0.3413193965],
     [-0.0041960863, -0.7034186147, 1.707614701]]
)  # fmt: skip


def _linear(lightness: float, a: float, b: float) -> np.ndarray:
    return _RGB_FROM_LMS @ (_LMS_FROM_LAB @ np.array([lightness, a, b])) ** 3


def _in_gamut(rgb: np.ndarray) -> bool:
    return bool(np.all((rgb >= -1e-4) & (rgb <= 1 + 1e-4)))


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB bytes."""
    v = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055)
    return np.floor(np.clip(v, 0, 1) * 255 + 0.5)  # JavaScript's Math.round


def oklch(lightness: float, chroma: float, hue: float) -> np.ndarray:
    """sRGB bytes of an OKLCh colour, its chroma reduced (24 bisection steps) until it fits sRGB."""
    ca, sa = np.cos(np.radians(hue)), np.sin(np.radians(hue))
    linear = _linear(lightness, chroma * ca, chroma * sa)
    if not _in_gamut(linear):
        low, high = 0.0, chroma
        for _ in range(24):
            mid = (low + high) / 2
            low, high = (mid, high) if _in_gamut(_linear(lightness, mid * ca, mid * sa)) else (low, mid)
        linear = _linear(lightness, low * ca, low * sa)
    return _encode(linear)


def _tabulate(color: Callable[[float], np.ndarray]) -> np.ndarray:
    return np.array([color(i / (TABLE_SIZE - 1)) for i in range(TABLE_SIZE)], dtype=np.uint8)


def _sequential(t: float) -> np.ndarray:
    return oklch(0.2 + 0.76 * t, 0.06 + 0.16 * np.sin(np.pi * (0.2 + 0.6 * t)), 305 + 165 * t)


def _diverging(t: float) -> np.ndarray:
    d = abs(2 * t - 1)
    return oklch(0.96 - 0.44 * d, 0.17 * d, 255 if t < 0.5 else 28)


def _jet(t: float) -> np.ndarray:
    """The classic jet: blue, cyan, yellow, red, each channel a clipped tent."""
    return np.floor(255 * np.clip(1.5 - np.abs(4 * t - np.array([3.0, 2.0, 1.0])), 0, 1) + 0.5)


SEQUENTIAL = _tabulate(_sequential)
"""Non-negative maps: dark violet through red and orange to pale yellow (the page's)."""
DIVERGING = _tabulate(_diverging)
"""Signed maps: blue below zero, near white at zero, red above (the page's); zero is entry 127.5."""
JET = _tabulate(_jet)


def hex_rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` -> (r, g, b)."""
    n = int(color.removeprefix("#"), 16)
    return (n >> 16) & 255, (n >> 8) & 255, n & 255
