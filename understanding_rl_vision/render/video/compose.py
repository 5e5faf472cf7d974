"""Panels side by side with titles above and a caption below, a batch of frames at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .source import Panel, Trajectory

Layout = Literal["row", "grid"]
LAYOUTS: tuple[str, ...] = ("row", "grid")
MIN_PANEL_HEIGHT = 200
"""Small observations (Procgen's 64x64) are enlarged by a whole factor to at least this height."""
TITLE_HEIGHT, CAPTION_HEIGHT, GAP = 22, 26, 4
FONT_SIZE = 14
BACKGROUND, INK = 255, (20, 20, 20)
BATCH = 32
"""Frames drawn at once: big enough to batch the maps' upsampling, small enough for memory."""


@dataclass(frozen=True)
class Sheet:
    """Where each panel goes: the frame first, then the method panels."""

    titles: tuple[str, ...]
    zoom: int
    panel: tuple[int, int]  # (height, width) of each panel
    columns: int
    rows: int

    @property
    def size(self) -> tuple[int, int]:
        height = self.rows * (TITLE_HEIGHT + self.panel[0]) + (self.rows - 1) * GAP + CAPTION_HEIGHT
        return height, self.columns * self.panel[1] + (self.columns - 1) * GAP

    def origin(self, index: int) -> tuple[int, int]:
        """Top-left pixel of panel ``index``'s picture (below its title)."""
        row, column = divmod(index, self.columns)
        return row * (TITLE_HEIGHT + self.panel[0] + GAP) + TITLE_HEIGHT, column * (self.panel[1] + GAP)


def plan_sheet(trajectory: Trajectory, panels: Sequence[Panel], layout: Layout) -> Sheet:
    height, width = trajectory.frames.shape[1:3]
    zoom = max(1, math.ceil(MIN_PANEL_HEIGHT / height))
    count = len(panels) + 1
    columns = count if layout == "row" else math.ceil(math.sqrt(count))
    titles = ("frame", *(p.title for p in panels))
    return Sheet(titles, zoom, (height * zoom, width * zoom), columns, math.ceil(count / columns))


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _static_layer(sheet: Sheet) -> np.ndarray:
    """The background and the panel titles, drawn once."""
    image = Image.new("RGB", sheet.size[::-1], (BACKGROUND,) * 3)
    draw, font = ImageDraw.Draw(image), _font()
    for index, title in enumerate(sheet.titles):
        top, left = sheet.origin(index)
        text = _fit(draw, font, title, sheet.panel[1] - 8)
        draw.text((left + 4, top - TITLE_HEIGHT + 4), text, fill=INK, font=font)
    return np.asarray(image)


def _fit(draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str, width: int) -> str:
    """``text``, shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def draw_frames(
    trajectory: Trajectory, panels: Sequence[Panel], sheet: Sheet, frames: int, opacity: float
) -> Iterator[np.ndarray]:
    """(n, H, W, 3) uint8 batches of finished video frames, for the first ``frames`` frames."""
    static = _static_layer(sheet)
    font = _font()
    height, width = sheet.panel
    caption_top = sheet.size[0] - CAPTION_HEIGHT
    for start in range(0, frames, BATCH):
        at = slice(start, min(start + BATCH, frames))
        big = trajectory.frames[at].repeat(sheet.zoom, axis=1).repeat(sheet.zoom, axis=2)
        batch = np.repeat(static[None], len(big), axis=0)
        pictures = [big, *(panel.draw(big, at, opacity) for panel in panels)]
        for index, picture in enumerate(pictures):
            top, left = sheet.origin(index)
            batch[:, top : top + height, left : left + width] = picture
        for offset, image in enumerate(batch):  # the caption differs per frame: text is drawn per frame
            strip = Image.fromarray(image[caption_top:])
            ImageDraw.Draw(strip).text((6, 5), trajectory.caption(start + offset), fill=INK, font=font)
            image[caption_top:] = np.asarray(strip)
        yield batch
