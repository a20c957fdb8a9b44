"""Detection on video: frames read in order and detected in batches.

:func:`detect_frames` is what ``demo.py --video`` / ``--camera`` runs: it reads
the frames of a :class:`common.video.Video`, detects ``batch_size`` of them per
forward pass and yields every frame with its detections, which ``demo.py``
draws (:func:`evaluate.visualize.draw_on_frame`) into a
:class:`common.video.VideoOutput` at the source's frame rate.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from common.video import Video

from .detector import Detector, ImageDetections

__all__ = ["FrameDetections", "count_detections", "detect_frames"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameDetections:
    """The detections of one frame.

    Attributes
    ----------
    index : int
        0-based frame number.
    time : float
        Seconds from the start (``index / fps``).
    detections : ImageDetections
        Its ``image`` is ``SOURCE#INDEX``; boxes in pixels of the frame.
    """

    index: int
    time: float
    detections: ImageDetections

    def to_dict(self) -> dict:
        """``demo.py --save-json``'s entry of an image, plus ``frame`` and ``time``."""
        entry = self.detections.to_dict()
        entry["frame"] = self.index
        entry["time"] = round(self.time, 6)
        return entry


def detect_frames(detector: Detector, video: Video, *, batch_size: int = 1,
                  max_frames: Optional[int] = None) -> Iterator[tuple[FrameDetections, np.ndarray]]:
    """Detect objects in the frames of ``video``, ``batch_size`` per forward pass.

    Parameters
    ----------
    detector : Detector
    video : Video
        An opened file or camera; read to its end (or ``max_frames``).
    batch_size : int
        Frames per forward pass.
    max_frames : int, optional
        Stop after this many frames.

    Yields
    ------
    (FrameDetections, array)
        Each frame's detections and the frame (``(H, W, 3)`` RGB ``uint8``),
        in order, as each batch is done; a consumer that stops early (Ctrl-C)
        keeps what it has received.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    index = 0
    batch: list[np.ndarray] = []
    frames = video.frames()
    while True:
        frame = next(frames, None)
        if frame is not None:
            batch.append(frame)
        full = len(batch) == batch_size or (max_frames is not None and index + len(batch) >= max_frames)
        if batch and (full or frame is None):
            for image, dets in zip(batch, detector.detect(batch)):
                height, width = image.shape[:2]
                yield (FrameDetections(index, index / video.fps,
                                       ImageDetections(f"{video.name}#{index}", width, height, tuple(dets))),
                       image)
                index += 1
            batch = []
        if frame is None or (max_frames is not None and index >= max_frames):
            break
    if video.frame_count is not None and max_frames is None and index < video.frame_count:
        logger.warning("%s ended after %d of the %d frames its header gives (damaged or truncated?)",
                       video.name, index, video.frame_count)


def count_detections(frames: Sequence[FrameDetections]) -> int:
    """All detections of ``frames``."""
    return sum(len(f.detections.detections) for f in frames)

