"""Video in and out with OpenCV: frames as RGB arrays, files written whole or not at all.

>>> with open_video("in.mp4") as video:                           # doctest: +SKIP
...     with VideoOutput("out.mp4", video.fps, video.size) as out:
...         for frame in video.frames():
...             out.write(frame)

A file that cannot be opened, a camera that is not there and an output that
cannot be written are ``ValueError``/``OSError`` with one line naming it.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import cv2
import numpy as np

from common.fileio import PathLike, atomic_path

__all__ = ["FOURCC", "Video", "VideoOutput", "open_video"]

#: The codec written for each output extension (what opencv-python's own FFmpeg writes).
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
#: The frame rate assumed where the source does not report one (most webcams).
DEFAULT_FPS = 30.0


@dataclass
class Video:
    """An opened video file or camera.

    Attributes
    ----------
    name : str
        The file path, or ``camera N``.
    fps : float
        Frames per second (the source's, else :data:`DEFAULT_FPS`).
    size : (int, int)
        ``(width, height)`` of the frames.
    frame_count : int or None
        The number of frames the file header gives (None for a camera, or unknown).
    """

    name: str
    fps: float
    size: tuple[int, int]
    frame_count: Optional[int]
    _capture: "cv2.VideoCapture"

    def frames(self) -> Iterator[np.ndarray]:
        """The frames in order, each ``(H, W, 3)`` RGB ``uint8``, until the source ends."""
        while True:
            ok, frame = self._capture.read()
            if not ok or frame is None:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's and FFmpeg's own messages off while opening (a failure is reported by us, in one line)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg is first used
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # LOG_LEVEL_SILENT
    try:
        yield
    finally:
        cv2.setLogLevel(level)


def open_video(source: Union[PathLike, int]) -> Video:
    """Open a video file, or camera ``N`` when ``source`` is an int.

    Raises
    ------
    FileNotFoundError
        ``video not found: PATH``.
    ValueError
        ``cannot read video PATH: ...`` (not a video OpenCV can decode, no
        frame in it), or ``cannot open camera N``.
    """
    if isinstance(source, int):
        name = f"camera {source}"
        with _quiet_opencv():
            capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            capture.release()
            raise ValueError(f"cannot open camera {source} (no such device, or it is in use)")
    else:
        name = os.fspath(source)
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"video not found: {name}")
        if not path.is_file():
            raise ValueError(f"cannot read video {name}: not a file")
        with _quiet_opencv():
            capture = cv2.VideoCapture(name)
        if not capture.isOpened():
            capture.release()
            raise ValueError(f"cannot read video {name}: not a video OpenCV can decode")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0:
        capture.release()
        raise ValueError(f"cannot read {'video ' if not isinstance(source, int) else ''}{name}: no frame size")
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not isinstance(source, int) else 0
    return Video(name, fps if np.isfinite(fps) and fps > 0 else DEFAULT_FPS, (width, height),
                 count if count > 0 else None, capture)


class VideoOutput:
    """A video file written frame by frame, in place only once it is complete.

    Frames go to a temporary file beside ``path`` (same extension, so the
    same container); :meth:`close` moves it over ``path``, :meth:`discard`
    (or leaving a ``with`` block by an exception) removes it, so ``path``
    holds its old content or a whole new video.

    Parameters
    ----------
    path : str or path
        ``.mp4``/``.m4v``/``.mov`` (MPEG-4 Part 2) or ``.avi``/``.mkv`` (Motion JPEG).
    fps : float
    size : (int, int)
        ``(width, height)`` of every frame.

    Raises
    ------
    ValueError
        Another extension.
    OSError
        The directory cannot be created or written, or OpenCV cannot open the writer.
    """

    def __init__(self, path: PathLike, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise ValueError(f"cannot write video {self.path}: unknown extension {suffix or '(none)'!r} "
                             f"(use one of {', '.join(FOURCC)})")
        self.size = (int(size[0]), int(size[1]))
        self.frames_written = 0
        self._target = contextlib.ExitStack()
        self._tmp = self._target.enter_context(atomic_path(self.path))
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*FOURCC[suffix]), float(fps),
                                       self.size)
        if not self._writer.isOpened():
            self.discard()
            raise OSError(f"cannot write video {self.path}: OpenCV cannot open a {FOURCC[suffix]} writer")

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` RGB ``uint8`` frame of the writer's size."""
        height, width = frame.shape[:2]
        if (width, height) != self.size:
            raise ValueError(f"frame of {width}x{height} for a {self.size[0]}x{self.size[1]} video")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it over ``path``."""
        self._writer.release()
        self._target.close()

    def discard(self) -> None:
        """Drop what was written; ``path`` is left as it was."""
        self._writer.release()
        dropped = RuntimeError("discarded")
        self._target.__exit__(RuntimeError, dropped, None)

    def __enter__(self) -> "VideoOutput":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

