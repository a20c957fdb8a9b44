"""Part of a reader: :class:`Subset`; :func:`random_split` for a validation set carved
from the training images (``train.py --val-split``); :func:`shard` for one worker's part
of a distributed run."""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from .annotation import Annotation

__all__ = ["Subset", "random_split", "shard"]

#: Stream id mixed into the split seed, so that it never equals an augmentation or shuffle seed.
_SPLIT_STREAM = 2 ** 31 - 2


class Subset:
    """The items ``indices`` of a reader, in that order.

    Passes ``class_names`` through, ``ids`` when the reader has them, and the
    pixel accessors ``load`` and ``image`` of readers that hold the pixels
    (RecordIO), so a subset plugs in wherever its reader does
    (:class:`dataset.loader.DetectionDataset`, the evaluation).
    """

    def __init__(self, reader: Sequence[Annotation], indices: Sequence[int]) -> None:
        n = len(reader)
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise IndexError(f"subset index {bad[0]} out of range for {n} images")
        self.reader = reader
        self.indices: tuple[int, ...] = tuple(idx)
        self.class_names = getattr(reader, "class_names", None)
        ids = getattr(reader, "ids", None)
        if ids is not None:
            self.ids = tuple(ids[i] for i in self.indices)
        for name in ("load", "image"):  # picklable partials, for loader worker processes
            if callable(getattr(reader, name, None)):
                setattr(self, name, functools.partial(_call_source, self, name))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Annotation:
        return self.reader[self.indices[i]]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {len(self.reader)} images of {self.reader!r})"


def _call_source(subset: Subset, name: str, i: int) -> Any:
    return getattr(subset.reader, name)(subset.indices[int(i)])


def random_split(reader: Sequence[Annotation], fraction: float, seed: int = 0) -> tuple[Subset, Subset]:
    """``(train, val)``: a seeded random ``fraction`` of ``reader``'s images held out.

    Parameters
    ----------
    reader : sequence of Annotation
    fraction : float
        Share of the images to hold out, in (0, 1); the validation set has
        ``round(fraction * n)`` images, at least 1, and at least one image is
        left for training.
    seed : int
        The same seed and reader give the same split, in any process; both
        parts keep the reader's order.

    Raises
    ------
    ValueError
        A fraction outside (0, 1), or too few images to split.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1 (exclusive), got {fraction!r}")
    n = len(reader)
    if n < 2:
        raise ValueError(f"cannot hold out a validation set from {n} image{'s' if n != 1 else ''}")
    k = min(n - 1, max(1, int(round(fraction * n))))
    order = np.random.default_rng([int(seed), _SPLIT_STREAM]).permutation(n)
    val, train = np.sort(order[:k]), np.sort(order[k:])
    return Subset(reader, train.tolist()), Subset(reader, val.tolist())


def shard(reader: Sequence[Annotation], num_parts: int, index: int) -> Subset:
    """Part ``index`` of ``num_parts`` equal parts of ``reader`` (distributed training).

    The reader's items ``index, index + num_parts, ...``; every part has
    ``len(reader) // num_parts`` items (the last ``len(reader) % num_parts``
    are left out), so that all workers run the same number of batches, which
    synchronous KVStore training needs.

    Raises
    ------
    ValueError
        ``index`` not in ``[0, num_parts)``, or fewer images than parts.
    """
    for name, value, low in (("num_parts", num_parts, 1), ("index", index, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if index >= num_parts:
        raise ValueError(f"shard index {index} out of range for {num_parts} parts")
    size = len(reader) // num_parts
    if size == 0:
        raise ValueError(f"{len(reader)} images cannot be split over {num_parts} workers")
    return Subset(reader, range(index, index + size * num_parts, num_parts))
