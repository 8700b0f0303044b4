"""Frames in and overlay videos out, for ``segzero-edge track``.

Video files and cameras are read with PyAV (FFmpeg's libraries, extra ``video``): one library decodes
every container and codec FFmpeg knows, opens V4L2 cameras on Linux (``/dev/videoN``) and AVFoundation
cameras on macOS, gives frames straight as RGB arrays with their timestamps, and writes H.264 MP4 with the
libx264 its wheels ship. OpenCV's wheels also read files and cameras, but write MP4 only as MPEG-4 part 2
(``mp4v``), which browsers and many players do not play. A folder of images is read with Pillow through
``frame.load_image``; animated GIFs are written with Pillow.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError, missing_extra
from .frame import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".gif")


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise missing_extra("reading and writing videos", "video", cause=exc) from exc
    return av


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


@dataclass
class FrameSource:
    """Frames of a video file, a camera or a folder of images, in order.

    Attributes:
        name: what was opened.
        fps: frames per second (the container's rate; 10 for a folder of images).
        count: number of frames when known in advance (None for cameras and some containers).
    """

    name: str
    fps: float
    count: int | None
    _frames: Iterator[tuple[int, float, np.ndarray]]
    _close: object = None

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """``(index, time in seconds, (H, W, 3) uint8 RGB)`` per frame."""
        return self._frames

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_frames(source: str | Path, *, folder_fps: float = 10.0) -> FrameSource:
    """Open ``source``: a video file, a folder of images (sorted by name, numbers numerically), or a camera
    index (``"0"``: ``/dev/video0`` on Linux, the first AVFoundation camera on macOS).

    Raises:
        InputError: nothing there, an empty folder, or a file FFmpeg cannot decode.
        BackendUnavailableError: PyAV is not installed (extra ``video``).
    """
    text = str(source)
    if text.isdigit() and not Path(text).exists():
        return _open_camera(int(text))
    path = Path(text)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise InputError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})", hint="pass a video or a folder")
        frames = ((i, i / folder_fps, load_image(p)) for i, p in enumerate(files))
        return FrameSource(str(path), folder_fps, len(files), frames)
    if not path.is_file():
        raise InputError(f"{path} does not exist", hint="pass a video file, a folder of images or a camera index")
    return _open_container(path, str(path))


def _open_container(target, name: str, **options) -> FrameSource:
    av = _import_av()
    try:
        container = av.open(target, **options)
        stream = container.streams.video[0]
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise InputError(f"cannot read video from {name}: {exc}", hint="pass a video FFmpeg can decode") from exc
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or 30
    count = int(stream.frames) or None

    def frames():
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / float(rate)
                yield i, t, frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise InputError(f"{name}: decoding failed: {exc}", hint="the file may be truncated") from exc

    return FrameSource(name, float(rate), count, frames(), container.close)


def _open_camera(index: int) -> FrameSource:
    if sys.platform == "darwin":
        return _open_container(str(index), f"camera {index}", format="avfoundation")
    device = f"/dev/video{index}"
    if not Path(device).exists():
        raise InputError(f"camera {index}: {device} does not exist", hint="check `ls /dev/video*`")
    return _open_container(device, f"camera {index} ({device})", format="v4l2")


class VideoWriter:
    """Writes RGB frames to ``path``: H.264 (libx264, yuv420p) for .mp4/.mkv/.mov, an animated GIF for .gif.

    Frames of odd width or height are padded by one edge pixel (yuv420p needs even sizes).
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 10.0
        self._gif: list = [] if self.path.suffix.lower() == ".gif" else None
        self._container = self._stream = None

    def write(self, rgb: np.ndarray) -> None:
        if self._gif is not None:
            from PIL import Image

            self._gif.append(Image.fromarray(rgb))
            return
        av = _import_av()
        h, w = rgb.shape[:2]
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._container is None:
            self._container = av.open(str(self.path), mode="w")
            rate = Fraction(self.fps).limit_denominator(1000)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._gif is not None:
            if self._gif:
                duration = round(1000 / self.fps)
                self._gif[0].save(self.path, save_all=True, append_images=self._gif[1:], duration=duration, loop=0)
            self._gif = []
            return
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
