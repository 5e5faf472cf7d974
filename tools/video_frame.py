"""One frame of a video as a PNG, decoded through PyAV (the pictures in docs/seeds.md).

.venv/bin/python tools/video_frame.py mario.mp4 0 docs/seeds/seed-000-frame-0.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
from PIL import Image


def main(video: Path, index: int, out: Path) -> None:
    with av.open(str(video)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(out)
                print(f"wrote {out} (frame {index} of {video})")
                return
    raise SystemExit(f"error: {video} has only {number + 1} frames")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
