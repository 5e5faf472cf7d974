"""Video files: H.264 mp4 through PyAV, GIF through Pillow. No encoder of our own, no system ffmpeg.

A video is written to a hidden partial file beside its destination and renamed into place only
when complete, so an interrupted run never leaves a file that looks finished. Every file carries a
comment naming this tool: an existing file is replaced (``overwrite``) only if it has it.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ...errors import UserError

MARKER = "written by understanding-rl-vision"
FORMATS = (".mp4", ".gif")
MP4_CRF = 18
"""x264 quality: 18 is close to visually lossless, so thin heat-map edges survive."""


def written_by_us(path: Path) -> bool:
    """Whether ``path`` is a video this tool wrote (it carries :data:`MARKER`)."""
    try:
        if path.suffix.lower() == ".gif":
            from PIL import Image

            with Image.open(path) as image:
                comment = image.info.get("comment", b"")
                return (comment.decode("utf-8", "replace") if isinstance(comment, bytes) else str(comment)) == MARKER
        import av

        with av.open(str(path)) as container:
            return bool(container.metadata.get("comment") == MARKER)
    except Exception:  # unreadable, or not a video at all: not ours
        return False


def check_destination(path: Path, overwrite: bool) -> None:
    """Refuse a format we cannot write, a missing folder, and any file we may not replace."""
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"{path}: the video must end in {' or '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder")
    if path.is_dir():
        raise UserError(f"{path} is a folder")
    if path.exists():
        if not overwrite:
            raise UserError(f"{path} exists; pass --overwrite to replace it")
        if not written_by_us(path):
            raise UserError(f"{path} exists and was not written by this tool; not replacing it")


class VideoWriter:
    """Frames in, a finished file out: ``with VideoWriter(path, fps, (H, W)) as video: video.write(batch)``.

    Sizes are rounded up to even numbers (yuv420p needs them), padding with white.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], *, overwrite: bool = False):
        check_destination(path, overwrite)
        if not fps > 0:
            raise UserError(f"fps must be positive, got {fps}")
        self.path, self.fps = path, float(fps)
        self.size = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        self.partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        self.frames = 0
        self._gif: list[Any] = []
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> VideoWriter:
        if self.path.suffix.lower() == ".mp4":
            import av

            self._container = av.open(str(self.partial), "w", format="mp4")
            self._container.metadata["comment"] = MARKER
            stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            stream.height, stream.width = self.size
            stream.pix_fmt = "yuv420p"  # what browsers play
            stream.options = {"crf": str(MP4_CRF)}
            self._stream = stream
        return self

    def write(self, frames: np.ndarray) -> None:
        """Append (n, H, W, 3) uint8 frames."""
        height, width = self.size
        pad = ((0, 0), (0, height - frames.shape[1]), (0, width - frames.shape[2]), (0, 0))
        frames = np.pad(frames, pad, constant_values=255) if any(p[1] for p in pad) else frames
        if self._stream is not None:
            import av

            for frame in frames:
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                self._container.mux(self._stream.encode(picture))
        else:
            from PIL import Image

            self._gif += [Image.fromarray(frame).quantize(256, dither=Image.Dither.NONE) for frame in frames]
        self.frames += len(frames)

    def _finish(self) -> None:
        if self.frames == 0:
            raise UserError("no frames to write")
        if self._stream is not None:
            self._container.mux(self._stream.encode(None))  # flush the encoder
            self._container.close()
            self._container = None
        else:
            first, *rest = self._gif
            duration = max(
                20, round(1000 / self.fps / 10) * 10
            )  # GIF counts hundredths; 20 ms is the fastest players honour
            first.save(
                self.partial, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0, comment=MARKER
            )
        os.replace(self.partial, self.path)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            if self._container is not None:
                self._container.close()
            self.partial.unlink(missing_ok=True)  # ours; gone after the rename when all went well
