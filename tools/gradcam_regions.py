"""Where a run's Grad-CAM maps are strong, in screen regions (the figures in docs/seeds.md).

Each frame's map is normalised to 0..1 as the video draws it (seed 000's min-max), upsampled to the
screen, and averaged over Mario's pixels (his red, 248 56 0), the ground (the bottom 32 rows), the
sky band (rows 24-120) and the whole screen; also the share of the strongest positions (>= 0.8) in the
upper half and in the bottom quarter.

    .venv/bin/python tools/gradcam_regions.py mario-gradcam-run 3a
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from understanding_rl_vision.render.video import overlays, source

MARIO_RED = (248, 56, 0)


def main(run: Path, layer: str) -> None:
    data, manifest = source.read_run(run)
    track = source.read_trajectory(data, manifest, 0)
    height, width = track.frames.shape[1:3]
    mario = np.all(track.frames == np.array(MARIO_RED), axis=-1)
    for panel in source.read_panels(data, manifest, 0, methods=["gradcam"], layer=layer):
        maps = panel.maps[0]
        low = maps.min(axis=(1, 2), keepdims=True)
        span = (maps - low).max(axis=(1, 2), keepdims=True)
        drawn = span.reshape(-1) > 0  # a flat map carries no position
        unit = overlays.upsample((maps - low) / (span + 1e-8), (height, width))[drawn]
        seen = mario[drawn].sum(axis=(1, 2)) >= 10
        at_mario = np.mean([frame[mask].mean() for frame, mask in zip(unit[seen], mario[drawn][seen], strict=True)])
        strong = unit >= 0.8
        print(
            f"{panel.title}: {drawn.sum()} frames; mean at Mario {at_mario:.2f}, whole screen {unit.mean():.2f}, "
            f"ground {unit[:, height - 32 :].mean():.2f}, sky band {unit[:, 24:120].mean():.2f}; strongest "
            f"positions in the upper half {strong[:, : height // 2].sum() / strong.sum():.0%}, "
            f"bottom quarter {strong[:, 3 * height // 4 :].sum() / strong.sum():.0%}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
