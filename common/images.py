"""Decoding image files: one reader for every package (detection, training, evaluation, tools)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .fileio import PathLike

__all__ = ["load_image"]


def load_image(path: PathLike) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` RGB ``uint8`` array.

    Raises
    ------
    FileNotFoundError
        ``image not found: PATH``.
    ValueError
        ``cannot read image PATH: ...`` for directories, unreadable files and
        files that are not a supported (or are a damaged) image.
    """
    name = os.fspath(path)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image not found: {name}")
    if not p.is_file():
        raise ValueError(f"cannot read image {name}: not a file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"cannot read image {name}: {err.strerror or err}") from None
    image = None
    if data.size:
        try:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
    if image is None:
        raise ValueError(f"cannot read image {name}: empty, damaged or not a supported image format")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
