"""Training and validation batches from any reader of :class:`~dataset.annotation.Annotation`.

- :class:`DetectionDataset` loads one image and its annotation and applies
  :func:`dataset.augment.train_transform` or :func:`dataset.augment.val_transform`.
- :func:`batchify` stacks samples and pads their labels with ``-1`` rows at the end.
- :func:`make_loader` builds the ``gluon.data.DataLoader`` over both.

Sample format
-------------
image
    ``(3, S, S)`` float32 RGB, values 0..255 (no mean subtraction: that is
    the network's job).
label
    ``(K, 6)`` float32 rows ``[class, xmin, ymin, xmax, ymax, difficult]``,
    corners normalized to [0, 1]; ``K`` may be 0. The first five columns are
    what :class:`train.targets.SSDTargetGenerator` reads; ``difficult`` (0 or
    1) is for evaluation.

Reproducibility
---------------
In training mode the augmentation of sample ``index`` in epoch ``epoch`` is
drawn from ``np.random.default_rng([seed, epoch, index])``: the same seed and
epoch give the same sample in any process, while samples and epochs differ.
The loader's sampler tags every index with the dataset's epoch *when the
epoch's iteration starts*, in the main process, so :meth:`DetectionDataset.set_epoch`
reaches worker processes too (they hold a copy of the dataset made when the
loader was built). Shuffling is seeded by ``(seed, epoch)`` likewise.
"""
from __future__ import annotations

import functools
from typing import Iterator, Sequence, Union

import numpy as np
from mxnet import nd
from mxnet.gluon.data import BatchSampler, DataLoader, Dataset, Sampler

from common.images import load_image

from . import augment
from .annotation import Annotation

__all__ = ["AUGMENTATIONS", "DetectionDataset", "LABEL_WIDTH", "Shard", "batchify", "make_loader"]

#: Training augmentations of :class:`DetectionDataset`.
AUGMENTATIONS = ("caffe", "photometric", "none")

#: Columns of a label row: class, xmin, ymin, xmax, ymax, difficult.
LABEL_WIDTH = 6

#: Stream id mixed into the shuffle seed so it never equals a sample's seed.
_SHUFFLE_STREAM = 2 ** 31 - 1

Index = Union[int, tuple[int, int]]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Shard:
    """Part ``index`` of ``num_parts`` equal parts of a reader (distributed training).

    Holds the reader's items ``index, index + num_parts, ...``; every part has
    ``len(reader) // num_parts`` items (the last ``len(reader) % num_parts``
    are left out), so that all workers run the same number of batches, which
    synchronous KVStore training needs. Passes ``class_names`` and ``load``
    (RecordIO) through.
    """

    def __init__(self, reader: Sequence[Annotation], num_parts: int, index: int) -> None:
        num_parts = _check_int("num_parts", num_parts, 1)
        index = _check_int("index", index, 0)
        if index >= num_parts:
            raise ValueError(f"shard index {index} out of range for {num_parts} parts")
        self.reader = reader
        self.num_parts, self.index = num_parts, index
        self._len = len(reader) // num_parts
        if self._len == 0:
            raise ValueError(f"{len(reader)} images cannot be split over {num_parts} workers")
        self.class_names = getattr(reader, "class_names", None)
        if hasattr(reader, "load"):  # a picklable bound method, for worker processes
            self.load = functools.partial(_load_source, self)

    def _source(self, i: int) -> int:
        if not 0 <= i < self._len:
            raise IndexError(f"index {i} out of range for a shard of {self._len} images")
        return self.index + i * self.num_parts

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> Annotation:
        return self.reader[self._source(int(i))]

    def __repr__(self) -> str:
        return f"Shard({self.index} of {self.num_parts}, {self._len} images of {self.reader!r})"


def _load_source(shard: Shard, i: int):
    return shard.reader.load(shard._source(int(i)))  # type: ignore[attr-defined]


class DetectionDataset(Dataset):
    """Augmented (or plainly resized) samples of a detection reader.

    Parameters
    ----------
    reader : sequence of Annotation
        ``len(reader)`` and ``reader[i]`` returning an :class:`Annotation`;
        a reader with ``load(i) -> (image, Annotation)`` (RecordIO) supplies
        the pixels itself, others are read from ``Annotation.image``
        (``VOCFolder``, ``VOCDetection``, ``COCODetection``, a list).
    size : int
        Side ``S`` of the square network input.
    train : bool
        ``True``: :func:`dataset.augment.train_transform` with a per-sample
        generator (see the module docstring); ``False``:
        :func:`dataset.augment.val_transform`.
    seed : int
        Base seed of the augmentation and of the loader's shuffling.
    expand : bool
        Training: include Caffe's zoom-out (``expand_image`` of
        :func:`dataset.augment.train_transform`).
    augment : ``'caffe'``, ``'photometric'`` or ``'none'``
        Training: Caffe SSD's pipeline (:func:`dataset.augment.train_transform`),
        its shape-preserving part (:func:`dataset.augment.photometric_transform`),
        or the validation warp only.

    ``ds[i]`` is ``(image (3, S, S) float32, label (K, 6) float32)`` (see the
    module docstring). ``ds[(epoch, i)]`` gives sample ``i`` of that epoch
    regardless of :attr:`epoch`; the loader uses this form.
    """

    def __init__(self, reader: Sequence[Annotation], size: int, train: bool, seed: int = 0,
                 expand: bool = True, augment: str = "caffe") -> None:
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        self.reader = reader
        self.expand = bool(expand)
        self.augment = augment
        self.size = _check_int("size", size, 1)
        self.train = bool(train)
        self.seed = _check_int("seed", seed, 0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation (and shuffle order) is drawn next."""
        self.epoch = _check_int("epoch", epoch, 0)

    def __len__(self) -> int:
        return len(self.reader)

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in epoch ``epoch``."""
        return np.random.default_rng([self.seed, epoch, index])

    def __getitem__(self, idx: Index) -> tuple[np.ndarray, np.ndarray]:
        epoch, index = idx if isinstance(idx, tuple) else (self.epoch, idx)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index = int(index) % n
        if hasattr(self.reader, "load"):  # readers that hold the pixels (RecordIO)
            image, ann = self.reader.load(index)
        else:
            ann = self.reader[index]
            image = None
        if not isinstance(ann, Annotation):
            raise TypeError(f"reader[{index}] must be an Annotation, got {type(ann).__name__}")
        if image is None:
            image = load_image(ann.image)
        if image.shape[:2] != (ann.height, ann.width):
            raise ValueError(f"image {ann.image} is {image.shape[1]}x{image.shape[0]} but its "
                             f"annotation says {ann.width}x{ann.height}")
        # Transform object indices instead of labels: the kept indices then
        # select both the class and the difficult flag of each surviving box.
        order = np.arange(ann.num_objects, dtype=np.int64)
        if self.train and self.augment == "caffe":
            img, boxes, kept = augment.train_transform(image, ann.boxes, order, self.size,
                                                       self.rng(epoch, index), expand_image=self.expand)
        elif self.train and self.augment == "photometric":
            img, boxes, kept = augment.photometric_transform(image, ann.boxes, order, self.size,
                                                             self.rng(epoch, index))
        else:
            img, boxes, kept = augment.val_transform(image, ann.boxes, order, self.size)
        label = np.empty((len(kept), LABEL_WIDTH), dtype=np.float32)
        label[:, 0] = ann.labels[kept]
        label[:, 1:5] = boxes
        label[:, 5] = ann.difficult[kept]
        return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32), label

    def __repr__(self) -> str:
        mode = "train" if self.train else "val"
        return (f"DetectionDataset({len(self)} images, size={self.size}, {mode}, "
                f"seed={self.seed}, epoch={self.epoch})")


def batchify(samples: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[nd.NDArray, nd.NDArray]:
    """Stack samples into ``(images (B, 3, S, S), labels (B, M, 6))`` float32 NDArrays.

    ``M`` is the largest ``K`` of the batch, at least 1; shorter labels are
    padded with rows of ``-1`` at the end (``MultiBoxTarget`` stops reading
    at the first ``-1`` class).
    """
    if not samples:
        raise ValueError("batchify needs at least one sample")
    images = np.stack([np.asarray(img, dtype=np.float32) for img, _ in samples])
    m = max(1, max(len(lab) for _, lab in samples))
    labels = np.full((len(samples), m, LABEL_WIDTH), -1, dtype=np.float32)
    for i, (_, lab) in enumerate(samples):
        lab = np.asarray(lab, dtype=np.float32).reshape(-1, LABEL_WIDTH)
        labels[i, :len(lab)] = lab
    return nd.array(images, dtype=np.float32), nd.array(labels, dtype=np.float32)


class _EpochSampler(Sampler):
    """Yields ``(epoch, index)`` for every sample, the epoch read when iteration starts.

    With ``shuffle`` the order is a permutation seeded by ``(seed, epoch)``.
    """

    def __init__(self, dataset: DetectionDataset, shuffle: bool) -> None:
        self._dataset = dataset
        self._shuffle = bool(shuffle)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, n = self._dataset.epoch, len(self._dataset)
        if self._shuffle:
            rng = np.random.default_rng([self._dataset.seed, epoch, _SHUFFLE_STREAM])
            order = rng.permutation(n)
        else:
            order = np.arange(n)
        return iter([(epoch, int(i)) for i in order])

    def __len__(self) -> int:
        return len(self._dataset)


def make_loader(dataset: DetectionDataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                last_batch: str = "keep") -> DataLoader:
    """A ``gluon.data.DataLoader`` of :func:`batchify` batches.

    Parameters
    ----------
    dataset : DetectionDataset
    batch_size : int
    shuffle : bool
        Reorder every epoch, seeded by ``(dataset.seed, dataset.epoch)``.
    num_workers : int
        Worker processes (0: load in the calling process); the batches are
        the same for any number.
    last_batch : {'keep', 'rollover', 'discard'}
        What to do with a final incomplete batch (gluon's meaning): ``'keep'``
        for evaluation, ``'rollover'`` for training (the leftover samples
        start the next epoch, with the augmentation of the epoch they were
        drawn in).

    Call ``dataset.set_epoch(e)`` before iterating epoch ``e``.
    """
    if not isinstance(dataset, DetectionDataset):
        raise TypeError(f"dataset must be a DetectionDataset, got {type(dataset).__name__}")
    batch_size = _check_int("batch_size", batch_size, 1)
    num_workers = _check_int("num_workers", num_workers, 0)
    valid = ("keep", "rollover", "discard")
    if last_batch not in valid:
        raise ValueError(f"last_batch must be one of {valid}, got {last_batch!r}")
    sampler = BatchSampler(_EpochSampler(dataset, shuffle), batch_size, last_batch)
    return DataLoader(dataset, batch_sampler=sampler, batchify_fn=batchify,
                      num_workers=num_workers)
