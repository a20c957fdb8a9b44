"""Tests of dataset/loader.py: samples, padded batches and the DataLoader."""
from __future__ import annotations

from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from dataset import augment
from dataset.annotation import Annotation
from common.images import load_image
from dataset.loader import DetectionDataset, batchify, make_loader
from dataset.subset import shard
from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
from dataset.voc import VOCFolder
from train.targets import SSDTargetGenerator

SIZE = 64


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> VOCFolder:
    root = tmp_path_factory.mktemp("synthetic")
    summary = make_synthetic(root, num_images=8, image_size=96, max_objects=3, empty_fraction=0.25,
                             seed=3)
    voc = VOCFolder(root, class_names=SYNTHETIC_CLASSES)
    assert len(voc) == 8 and summary["objects"] > 0
    return voc


@pytest.fixture(scope="module")
def empty_reader(tmp_path_factory) -> list[Annotation]:
    """One image with objects and one without (a plain list is a reader too)."""
    root = tmp_path_factory.mktemp("empty")
    img = np.full((40, 50, 3), 90, dtype=np.uint8)
    for name in ("a.png", "b.png"):
        assert cv2.imwrite(str(root / name), img)
    return [Annotation.from_lists(str(root / "a.png"), 50, 40, [], []),
            Annotation.from_lists(str(root / "b.png"), 50, 40, [[5, 5, 20, 30]], [2], [True])]


def collect(loader) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.asnumpy(), y.asnumpy()) for x, y in loader]


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def assert_padded_at_end(labels: np.ndarray) -> None:
    for row in labels:
        pad = row[:, 0] == -1
        k = int((~pad).sum())
        assert pad[k:].all() and not pad[:k].any(), "padding rows must come last"
        assert (row[pad] == -1).all()


@pytest.mark.parametrize("train", [True, False])
def test_sample_shapes_dtypes_and_normalized_boxes(reader, train) -> None:
    ds = DetectionDataset(reader, SIZE, train=train, seed=1)
    assert len(ds) == 8
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.shape == (3, SIZE, SIZE) and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 255
        assert label.dtype == np.float32 and label.ndim == 2 and label.shape[1] == 6
        boxes = label[:, 1:5]
        assert np.all(boxes >= 0) and np.all(boxes <= 1)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert set(label[:, 0].tolist()) <= {0.0, 1.0, 2.0}
        assert set(label[:, 5].tolist()) <= {0.0, 1.0}
        if not train:
            assert len(label) == reader[i].num_objects


def test_val_mode_equals_val_transform(reader) -> None:
    ds = DetectionDataset(reader, SIZE, train=False)
    for i in range(len(ds)):
        ann = reader[i]
        rgb = cv2.cvtColor(cv2.imread(ann.image), cv2.COLOR_BGR2RGB)
        img, boxes, labels = augment.val_transform(rgb, ann.boxes, ann.labels, SIZE)
        got_img, got_label = ds[i]
        np.testing.assert_array_equal(got_img, img.transpose(2, 0, 1).astype(np.float32))
        np.testing.assert_array_equal(got_label[:, 1:5], boxes)
        np.testing.assert_array_equal(got_label[:, 0], labels)
        np.testing.assert_array_equal(got_label[:, 5], ann.difficult)


def test_train_mode_is_train_transform_with_the_sample_generator(reader) -> None:
    ds = DetectionDataset(reader, SIZE, train=True, seed=5)
    ds.set_epoch(2)
    ann = reader[3]
    rgb = load_image(ann.image)
    img, boxes, labels = augment.train_transform(rgb, ann.boxes, ann.labels, SIZE,
                                                 np.random.default_rng([5, 2, 3]))
    got_img, got_label = ds[3]
    np.testing.assert_array_equal(got_img, img.transpose(2, 0, 1).astype(np.float32))
    np.testing.assert_array_equal(got_label[:, 1:5], boxes)
    np.testing.assert_array_equal(got_label[:, 0], labels)
    # The explicit (epoch, index) form ignores the current epoch.
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds[(2, 3)][0], got_img)


def test_image_without_objects_gives_k0_and_batches(empty_reader) -> None:
    for train in (True, False):
        ds = DetectionDataset(empty_reader, SIZE, train=train)
        img, label = ds[0]
        assert img.shape == (3, SIZE, SIZE) and label.shape == (0, 6)
        x, y = batchify([ds[0], ds[0]])
        assert x.shape == (2, 3, SIZE, SIZE) and y.shape == (2, 1, 6)
        assert (y.asnumpy() == -1).all()
    ds = DetectionDataset(empty_reader, SIZE, train=False)
    x, y = batchify([ds[0], ds[1]])
    y = y.asnumpy()
    assert y.shape == (2, 1, 6)
    np.testing.assert_array_equal(y[0], -1)
    np.testing.assert_allclose(y[1, 0], [2, 0.1, 0.125, 0.4, 0.75, 1], rtol=1e-6)


def test_batchify_pads_with_minus_one_rows_at_the_end() -> None:
    img = np.zeros((3, 8, 8), dtype=np.float32)
    a = np.array([[1, 0.1, 0.1, 0.5, 0.5, 0]], dtype=np.float32)
    b = np.array([[0, 0, 0, 1, 1, 0], [2, 0.2, 0.2, 0.3, 0.3, 1], [1, 0.5, 0.5, 0.6, 0.7, 0]],
                 dtype=np.float32)
    x, y = batchify([(img, a), (img + 1, b), (img, np.zeros((0, 6), np.float32))])
    assert isinstance(x, mx.nd.NDArray) and x.dtype == np.float32 and x.shape == (3, 3, 8, 8)
    y = y.asnumpy()
    assert y.dtype == np.float32 and y.shape == (3, 3, 6)
    np.testing.assert_array_equal(y[0, 0], a[0])
    np.testing.assert_array_equal(y[0, 1:], -1)
    np.testing.assert_array_equal(y[1], b)
    np.testing.assert_array_equal(y[2], -1)
    with pytest.raises(ValueError):
        batchify([])


def test_loader_batches_are_padded_and_deterministic(reader) -> None:
    def run(epoch: int, seed: int = 0):
        ds = DetectionDataset(reader, SIZE, train=True, seed=seed)
        ds.set_epoch(epoch)
        return collect(make_loader(ds, batch_size=3, shuffle=True))

    first = run(1)
    assert [x.shape for x, _ in first] == [(3, 3, SIZE, SIZE)] * 2 + [(2, 3, SIZE, SIZE)]
    for x, y in first:
        assert y.shape[0] == len(x) and y.shape[2] == 6
        assert_padded_at_end(y)
    assert_same_batches(first, run(1))
    other = run(2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, run(1, seed=1)))


def test_set_epoch_changes_the_next_iteration_of_the_same_loader(reader) -> None:
    ds = DetectionDataset(reader, SIZE, train=True)
    loader = make_loader(ds, batch_size=4, shuffle=False)
    epoch0 = collect(loader)
    ds.set_epoch(1)
    epoch1 = collect(loader)
    ds.set_epoch(0)
    assert_same_batches(collect(loader), epoch0)
    assert not np.array_equal(epoch0[0][0], epoch1[0][0])


def test_two_workers_give_the_same_batches_as_none(reader) -> None:
    ds = DetectionDataset(reader, SIZE, train=True, seed=7)
    serial = make_loader(ds, batch_size=3, shuffle=True, num_workers=0)
    parallel = make_loader(ds, batch_size=3, shuffle=True, num_workers=2)
    for epoch in (0, 3):  # set_epoch after the workers were started still reaches them
        ds.set_epoch(epoch)
        assert_same_batches(collect(parallel), collect(serial))


def test_last_batch_rollover_and_keep(reader) -> None:
    ds = DetectionDataset(reader, SIZE, train=False)
    assert [x.shape[0] for x, _ in make_loader(ds, 3, False, last_batch="keep")] == [3, 3, 2]
    rollover = make_loader(ds, 3, False, last_batch="rollover")
    assert [x.shape[0] for x, _ in rollover] == [3, 3]
    ds.set_epoch(1)
    assert [x.shape[0] for x, _ in rollover] == [3, 3, 3]  # 2 left over + 8 new -> 3 batches
    ds.set_epoch(2)
    assert [x.shape[0] for x, _ in rollover] == [3, 3, 3]  # 1 left over + 8 new
    ds.set_epoch(0)
    assert [x.shape[0] for x, _ in rollover] == [3, 3]  # a pure function of the epoch
    with pytest.raises(ValueError, match="last_batch"):
        make_loader(ds, 3, False, last_batch="drop")
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(ds, 0, False)


def test_labels_feed_the_target_generator(reader) -> None:
    ds = DetectionDataset(reader, SIZE, train=True)
    x, y = next(iter(make_loader(ds, batch_size=4, shuffle=False)))
    feat = mx.nd.zeros((1, 8, 8, 8))
    anchors = mx.nd.contrib.MultiBoxPrior(feat, sizes=(0.2, 0.4), ratios=(1, 2, 0.5))
    n = anchors.shape[1]
    cls_preds = mx.nd.zeros((4, n, len(SYNTHETIC_CLASSES) + 1))
    loc_t, loc_m, cls_t = SSDTargetGenerator()(anchors, y, cls_preds)
    assert loc_t.shape == (4, n * 4) and loc_m.shape == (4, n * 4) and cls_t.shape == (4, n)
    cls_t = cls_t.asnumpy()
    for b in range(4):
        k = int((y[b, :, 0] >= 0).sum().asscalar())
        assert (k > 0) == bool((cls_t[b] > 0).any())
        assert set(np.unique(cls_t[b]).tolist()) <= {-1.0, 0.0, 1.0, 2.0, 3.0}


def test_missing_or_corrupt_image_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.jpg"
    ds = DetectionDataset([Annotation.from_lists(str(missing), 10, 10, [], [])], SIZE, train=False)
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        ds[0]
    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"not an image")
    ds = DetectionDataset([Annotation.from_lists(str(corrupt), 10, 10, [], [])], SIZE, train=True)
    with pytest.raises(ValueError, match="bad.jpg"):
        ds[0]


def test_image_size_must_match_the_annotation(empty_reader) -> None:
    ann = Annotation.from_lists(empty_reader[0].image, 40, 50, [], [])
    with pytest.raises(ValueError, match="a.png.*50x40"):
        DetectionDataset([ann], SIZE, train=False)[0]


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"seed": -1}, {"size": 2.5}])
def test_invalid_arguments(reader, kwargs) -> None:
    args = {"size": SIZE, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError):
        DetectionDataset(reader, train=True, **args)
    with pytest.raises(ValueError, match="epoch"):
        DetectionDataset(reader, SIZE, train=True).set_epoch(-1)


def test_shards_are_disjoint_equal_parts():
    anns = [Annotation.from_lists(f"img{i}.jpg", 8, 8, [], []) for i in range(11)]
    parts = [shard(anns, 3, k) for k in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]  # 11 // 3: the last 2 images are left out
    images = [p[i].image for p in parts for i in range(len(p))]
    assert sorted(images) == sorted(f"img{i}.jpg" for i in range(9))
    assert [a.image for a in (parts[1][0], parts[1][2])] == ["img1.jpg", "img7.jpg"]
    with pytest.raises(IndexError):
        parts[0][3]
    with pytest.raises(ValueError, match="cannot be split"):
        shard(anns[:1], 2, 0)
    with pytest.raises(ValueError, match="out of range"):
        shard(anns, 3, 3)


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="augment must be one of"):
        DetectionDataset([], 64, train=True, augment="mixup")


def test_any_batch_of_any_epoch_is_reproduced(reader) -> None:
    """Resuming in the middle of an epoch: starting at batch k gives the batches k.. of a full
    pass, and what a rollover carries over is the previous epoch's tail, as drawn then."""
    ds = DetectionDataset(reader, SIZE, train=True, seed=3)
    loader = make_loader(ds, 3, True, last_batch="rollover")
    sampler = loader._batch_sampler
    full = {}
    for epoch in range(3):
        ds.set_epoch(epoch)
        full[epoch] = collect(loader)
    ds.set_epoch(2, start_batch=1)
    assert len(loader) == len(full[2]) - 1
    assert_same_batches(collect(loader), full[2][1:])
    # epoch 1 starts with the two samples epoch 0 left over, tagged with epoch 0 (its augmentation)
    order0 = sampler.batches(0)[0] + sampler.batches(0)[1]
    left = [(0, i) for i in range(8) if (0, i) not in order0]
    assert len(left) == 2 and sorted(sampler.batches(1)[0][:2]) == left
    fresh = make_loader(DetectionDataset(reader, SIZE, train=True, seed=3), 3, True, last_batch="rollover")
    assert fresh._batch_sampler.batches(2) == sampler.batches(2)  # no history needed
