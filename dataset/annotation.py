"""The one in-memory record every dataset reader returns: :class:`Annotation`.

Box format
----------
Boxes are pixel corners ``(xmin, ymin, xmax, ymax)`` in continuous,
0-based image coordinates: the top-left corner of the image is ``(0, 0)``,
the bottom-right corner is ``(width, height)``, and the pixel with 0-based
index ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``. A proper box has
``0 <= xmin < xmax <= width`` and ``0 <= ymin < ymax <= height``.

Labels are 0-based *foreground* class indices into the reader's
``class_names`` (the background class of the network is not counted).

An image without objects is a valid sample: its arrays have ``N = 0``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Annotation", "check_class_names"]


def check_class_names(class_names: Iterable[str]) -> tuple[str, ...]:
    """Validate class names: a non-empty sequence of distinct non-empty strings.

    Returns them as a tuple (order kept: the index is the label).
    """
    if isinstance(class_names, str):
        raise ValueError(f"class_names must be a sequence of names, not the string {class_names!r}")
    names = tuple(class_names)
    if not names:
        raise ValueError("class_names must not be empty")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_names[{i}] must be a non-empty string, got {name!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"class_names contains duplicates: {duplicates}")
    return names


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Annotation:
    """Ground truth of one image.

    Parameters
    ----------
    image : str
        Path of the image file (not opened here).
    width, height : int
        Image size in pixels, both positive.
    boxes : array-like, shape (N, 4)
        Corners ``(xmin, ymin, xmax, ymax)`` in pixels (see the module
        docstring), stored as float32, each inside the image and non-empty.
    labels : array-like, shape (N,)
        0-based foreground class indices, stored as int64, all ``>= 0``.
    difficult : array-like of bool, shape (N,), optional
        VOC's ``difficult`` flag (COCO crowd regions when kept); all False
        when omitted.

    The arrays are copied and made read-only, so an ``Annotation`` is
    immutable. ``N`` may be 0. Invalid input raises ``ValueError`` naming
    the image and, for a bad box, its index.
    """

    image: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        where = f"annotation of {self.image!r}"
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "image", str(self.image))

        boxes = np.asarray(self.boxes, dtype=np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{where}: boxes must have shape (N, 4), got {boxes.shape}")
        n = boxes.shape[0]
        labels = np.asarray(self.labels)
        if labels.size == 0:
            labels = labels.reshape(0)
        if labels.shape != (n,):
            raise ValueError(f"{where}: labels must have shape ({n},), got {labels.shape}")
        if n and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
        difficult = (np.zeros(n, dtype=bool) if self.difficult is None
                     else np.asarray(self.difficult, dtype=bool))
        if difficult.size == 0:
            difficult = difficult.reshape(0)
        if difficult.shape != (n,):
            raise ValueError(f"{where}: difficult must have shape ({n},), got {difficult.shape}")

        bad = np.flatnonzero(labels < 0)
        if bad.size:
            raise ValueError(f"{where}: label {labels[bad[0]]} of object {bad[0]} is negative")
        x1, y1, x2, y2 = boxes.T
        ok = (np.isfinite(boxes).all(axis=1) & (x1 >= 0) & (y1 >= 0) & (x2 <= self.width)
              & (y2 <= self.height) & (x1 < x2) & (y1 < y2))
        bad = np.flatnonzero(~ok)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{where}: box {i} {boxes[i].tolist()} is empty or outside the "
                             f"{self.width}x{self.height} image")
        object.__setattr__(self, "boxes", _frozen(boxes))
        object.__setattr__(self, "labels", _frozen(labels))
        object.__setattr__(self, "difficult", _frozen(difficult))

    @property
    def num_objects(self) -> int:
        """Number of objects ``N``."""
        return int(self.boxes.shape[0])

    def normalized_boxes(self) -> np.ndarray:
        """``(N, 4)`` float32 corners divided by ``(width, height, width, height)``, in [0, 1]."""
        scale = np.array([self.width, self.height, self.width, self.height], dtype=np.float32)
        return self.boxes / scale

    @classmethod
    def from_lists(cls, image: str, width: int, height: int, boxes: Sequence[ArrayLike],
                   labels: Sequence[int], difficult: Sequence[bool] = ()) -> "Annotation":
        """Build from Python lists (empty lists give an image without objects)."""
        return cls(image, width, height,
                   np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                   np.asarray(labels, dtype=np.int64).reshape(-1),
                   np.asarray(difficult, dtype=bool).reshape(-1) if len(difficult) else None)
