"""Ground truth for Atari: where the game's objects are at each frame, read from the console RAM.

OCAtari (Delfosse et al. 2023) decodes the RAM of about 50 Atari games into object boxes with a
category (Player, Ball, Enemy, Block...). It is optional: installed (``pip install ocatari``),
the report card measures how much of each map falls on objects; absent, or for a game it does
not know, the object columns say "n/a" and :data:`MISSING` says why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..envs.atari import GREYDANUS_ROWS
from ..envs.spec import AtariSpec, EnvSpec

SOURCE = "OCAtari (RAM)"
"""What :attr:`ReportCard.objects` says when the boxes come from here."""
MISSING = "no ground truth: install ocatari (pip install ocatari) for Atari object boxes"
"""Why a card of an Atari agent has no object columns when OCAtari is not installed."""
IGNORED = ("NoObject",)
"""OCAtari's placeholder for an object slot that is empty in this frame."""


@dataclass(frozen=True)
class GameObjects:
    """Object boxes of N frames, padded to B per frame."""

    boxes: np.ndarray  # (N, B, 4) int: x, y, width, height in screen pixels
    valid: np.ndarray  # (N, B) bool: False for padding
    categories: np.ndarray  # (N, B) str: OCAtari's category of each box ("" for padding)
    screen: tuple[int, int]  # (height, width) of the screen the boxes are in
    crop_rows: tuple[int, int] | None  # screen rows the observation keeps (Greydanus' crop), or all


def read_objects(spec: EnvSpec, ram: np.ndarray | None) -> tuple[GameObjects | None, str]:
    """The objects at each of N frames from their RAM (N, 128), and a note: where they come from,
    or why there are none (not Atari, no RAM recorded, OCAtari missing or not knowing the game)."""
    if not isinstance(spec, AtariSpec):
        return None, ""
    if ram is None:
        return None, "no ground truth: the frames were recorded without the console RAM"
    try:
        with warnings.catch_warnings():  # pygame, which OCAtari imports, warns about pkg_resources
            warnings.simplefilter("ignore")
            from ocatari.ram.extract_ram_info import detect_objects_ram, init_objects
    except ImportError:
        return None, MISSING
    found: list[list[tuple[str, tuple[int, int, int, int]]]] = []
    try:
        for row in ram:
            objects = init_objects(spec.game, hud=False)  # a fresh list per frame: frames need not be consecutive
            detect_objects_ram(objects, row, spec.game, hud=False)
            found.append(
                [
                    (str(o.category), (int(o.xywh[0]), int(o.xywh[1]), int(o.xywh[2]), int(o.xywh[3])))
                    for o in objects
                    if o is not None and o.category not in IGNORED and o.xywh[2] > 0 and o.xywh[3] > 0
                ]
            )
    except (KeyError, AttributeError, ModuleNotFoundError, NotImplementedError) as exc:
        return None, f"no ground truth: OCAtari does not read {spec.game} ({type(exc).__name__})"
    width = max(1, max((len(f) for f in found), default=0))
    boxes = np.zeros((len(found), width, 4), np.int64)
    valid = np.zeros((len(found), width), bool)
    categories = np.full((len(found), width), "", dtype=object)
    for n, frame in enumerate(found):
        for b, (category, box) in enumerate(frame):
            boxes[n, b], valid[n, b], categories[n, b] = box, True, category
    crop = GREYDANUS_ROWS if spec.observation == "greydanus" else None
    return GameObjects(boxes, valid, categories, (210, 160), crop), SOURCE
