"""Explanation videos: a finished run's trajectory with its maps drawn over every frame.

The video is a render of a run's data, like the page: :mod:`.source` reads the arrays back through
the contract, :mod:`.overlays` draws each method in its look, :mod:`.compose` lays panels side by
side with a caption, and :mod:`.encode` writes mp4 (PyAV) or GIF (Pillow).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import UserError
from .compose import LAYOUTS, Layout, draw_frames, plan_sheet
from .encode import FORMATS, VideoWriter, check_destination, written_by_us
from .source import read_panels, read_run, read_trajectory

DEFAULT_FPS = 15.0


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int
    size: tuple[int, int]  # (height, width)
    panels: tuple[str, ...]


def write_video(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    trajectory: int = 0,
    methods: Sequence[str] = (),
    outputs: Sequence[str] = (),
    layer: str = "",
    frames: int = 0,
    fps: float = DEFAULT_FPS,
    layout: Layout = "row",
    gain: float = 1.0,
    opacity: float = 0.75,
    overwrite: bool = False,
    progress: bool = True,
) -> VideoResult:
    """Draw trajectory ``trajectory`` of the run in ``run_dir`` (its output folder) into ``output``.

    ``methods`` and ``outputs`` pick among what the run computed (default: all); ``layer`` (a
    label such as ``2b``, or a module name) is where layer methods are shown (default: the page's
    first layer); ``frames`` caps the length (0: the whole trajectory). ``gain`` and ``opacity``
    are the page's: full colour at the 99th percentile of nonzero magnitudes divided by the gain,
    and the grey observation's opacity under table and feature maps.
    """
    if layout not in LAYOUTS:
        raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if frames < 0:
        raise UserError(f"frames must be >= 0, got {frames}")
    path = Path(output)
    check_destination(path, overwrite)  # before any work
    data, manifest = read_run(Path(run_dir))
    track = read_trajectory(data, manifest, trajectory)
    panels = read_panels(data, manifest, trajectory, methods=methods, outputs=outputs, layer=layer, gain=gain)
    count = min(frames or len(track.frames), len(track.frames))
    sheet = plan_sheet(track, panels, layout)
    from tqdm import tqdm

    with (
        VideoWriter(path, fps, sheet.size, overwrite=overwrite) as video,
        tqdm(total=count, desc="video", unit="frame", disable=not progress, leave=False) as bar,
    ):
        for batch in draw_frames(track, panels, sheet, count, opacity):
            video.write(batch)
            bar.update(len(batch))
    return VideoResult(path, count, video.size, tuple(p.title for p in panels))


__all__ = ["DEFAULT_FPS", "FORMATS", "LAYOUTS", "VideoResult", "check_destination", "write_video", "written_by_us"]
