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
loader was built). Shuffling is seeded by ``(seed, epoch)`` likewise, and so
is what a rollover carries from one epoch into the next
(:class:`EpochBatchSampler`): any batch of any epoch can be reproduced, which
is how training resumes in the middle of an epoch.
"""
from __future__ import annotations

from typing import Iterator, Sequence, Union

import numpy as np
from mxnet import nd
from mxnet.gluon.data import DataLoader, Dataset, Sampler

from common.images import load_image

from . import AUGMENTATIONS, augment
from .annotation import Annotation

__all__ = ["AUGMENTATIONS", "DetectionDataset", "EpochBatchSampler", "LABEL_WIDTH", "batchify",
           "make_loader"]

#: Columns of a label row: class, xmin, ymin, xmax, ymax, difficult.
LABEL_WIDTH = 6

#: Stream id mixed into the shuffle seed so it never equals a sample's seed.
_SHUFFLE_STREAM = 2 ** 31 - 1

Index = Union[int, tuple[int, int]]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch whose augmentation (and shuffle order) is drawn next, and the
        batch of that epoch the loader starts at (resuming in the middle of an epoch)."""
        self.epoch = _check_int("epoch", epoch, 0)
        self.start_batch = _check_int("start_batch", start_batch, 0)

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


class EpochBatchSampler(Sampler):
    """The batches of the dataset's current epoch, as ``(epoch, index)`` lists.

    Everything is a function of ``(seed, epoch)``, so that a run can stop
    after any batch and resume exactly: with ``shuffle`` the order of epoch
    ``e`` is a permutation seeded by ``(seed, e)``; with ``last_batch=
    'rollover'`` the samples left over at the end of an epoch start the next
    one (keeping the augmentation of the epoch they were drawn in), so epochs
    have ``(carried + n) // batch_size`` batches; ``'keep'`` ends an epoch with
    a short batch, ``'discard'`` drops it. Iteration starts at the dataset's
    :attr:`DetectionDataset.start_batch` (set with ``set_epoch``).
    """

    def __init__(self, dataset: DetectionDataset, batch_size: int, shuffle: bool, last_batch: str) -> None:
        self._dataset = dataset
        self._batch_size = batch_size
        self._shuffle = bool(shuffle)
        self._last_batch = last_batch
        self._carried: dict[int, list[tuple[int, int]]] = {0: []}

    def _order(self, epoch: int) -> list[tuple[int, int]]:
        n = len(self._dataset)
        if self._shuffle:
            order = np.random.default_rng([self._dataset.seed, epoch, _SHUFFLE_STREAM]).permutation(n)
        else:
            order = np.arange(n)
        return [(epoch, int(i)) for i in order]

    def _carry(self, epoch: int) -> list[tuple[int, int]]:
        """The samples a rollover carries into ``epoch`` (computed forward from epoch 0)."""
        if self._last_batch != "rollover":
            return []
        done = max(e for e in self._carried if e <= epoch)
        for e in range(done, epoch):
            stream = self._carried[e] + self._order(e)
            self._carried[e + 1] = stream[len(stream) // self._batch_size * self._batch_size:]
        return self._carried[epoch]

    def batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """Every batch of ``epoch``, from the first."""
        stream = self._carry(epoch) + self._order(epoch)
        b = self._batch_size
        whole = len(stream) // b * b
        out = [stream[i:i + b] for i in range(0, whole, b)]
        if self._last_batch == "keep" and whole < len(stream):
            out.append(stream[whole:])
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches(self._dataset.epoch)[self._dataset.start_batch:])

    def __len__(self) -> int:
        return max(0, len(self.batches(self._dataset.epoch)) - self._dataset.start_batch)


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
        drawn in; see :class:`EpochBatchSampler`).

    Call ``dataset.set_epoch(e)`` (or ``set_epoch(e, start_batch)``) before
    iterating epoch ``e``; ``len(loader)`` is then the number of batches left
    in it.
    """
    if not isinstance(dataset, DetectionDataset):
        raise TypeError(f"dataset must be a DetectionDataset, got {type(dataset).__name__}")
    batch_size = _check_int("batch_size", batch_size, 1)
    num_workers = _check_int("num_workers", num_workers, 0)
    valid = ("keep", "rollover", "discard")
    if last_batch not in valid:
        raise ValueError(f"last_batch must be one of {valid}, got {last_batch!r}")
    sampler = EpochBatchSampler(dataset, batch_size, shuffle, last_batch)
    return DataLoader(dataset, batch_sampler=sampler, batchify_fn=batchify,
                      num_workers=num_workers)
