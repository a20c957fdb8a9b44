"""Detector: resizing, batching and mapping normalized detections back to pixels."""
from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from evaluate.detector import Detector
from symbol import get_model
from symbol.checkpoint import ModelConfig

NAMES = ("cat", "dog")


@pytest.fixture(scope="module")
def detector() -> Detector:
    mx.random.seed(0)
    net = get_model("mobilenet", 300, num_classes=2, multiplier=0.25)
    config = ModelConfig.from_net(net, NAMES)
    return Detector(net, config, batch_size=2, thresh=0.3)


def test_rows_become_sorted_pixel_boxes(detector, monkeypatch) -> None:
    rows = np.full((2, 200, 6), -1.0, dtype=np.float32)
    rows[0, :3] = [[0, 0.40, 0.1, 0.2, 0.5, 0.6],
                   [1, 0.90, 0.0, 0.0, 1.0, 1.0],
                   [0, 0.20, 0.3, 0.3, 0.4, 0.4]]  # under thresh 0.3
    rows[1, :1] = [[1, 0.35, -0.1, 0.5, 0.5, 1.2]]  # outside the image: clipped
    monkeypatch.setattr(detector, "_forward", lambda batch: rows[:len(batch)])
    wide, tall = np.zeros((100, 200, 3), np.uint8), np.zeros((300, 50, 3), np.uint8)
    first, second = detector.detect([wide, tall])
    assert [(d.class_name, d.score) for d in first] == [("dog", pytest.approx(0.9)),
                                                         ("cat", pytest.approx(0.4))]
    np.testing.assert_allclose(first[0].bbox, [0, 0, 200, 100])
    np.testing.assert_allclose(first[1].bbox, [20, 20, 100, 60], rtol=1e-6)
    assert len(second) == 1
    np.testing.assert_allclose(second[0].bbox, [0, 150, 25, 300], rtol=1e-6)


def test_batches_are_padded_to_the_batch_size(detector, monkeypatch) -> None:
    seen = []

    def forward(batch):
        seen.append(batch.shape)
        return np.full((len(batch), 200, 6), -1.0, dtype=np.float32)

    monkeypatch.setattr(detector, "_forward", forward)
    images = [np.zeros((40 + i, 60, 3), np.uint8) for i in range(3)]
    assert detector.detect(images) == [[], [], []]
    assert seen == [(2, 3, 300, 300), (2, 3, 300, 300)]


def test_resize_keeps_pixel_values_rgb_0_255(detector) -> None:
    image = np.zeros((10, 20, 3), np.uint8)
    image[..., 0] = 255  # pure red
    batch = detector._batch([image])
    assert batch.shape == (2, 3, 300, 300) and batch.dtype == np.float32
    assert batch[0, 0].min() == 255 and batch[0, 1:].max() == 0 and batch[1].max() == 0


def test_real_network_detections_are_within_the_image(detector) -> None:
    rng = np.random.RandomState(0)
    image = rng.randint(0, 255, (123, 77, 3)).astype(np.uint8)
    dets = detector.detect([image])[0]
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True) and all(s >= 0.3 for s in scores)
    for d in dets:
        xmin, ymin, xmax, ymax = d.bbox
        assert 0 <= xmin <= xmax <= 77 and 0 <= ymin <= ymax <= 123


@pytest.mark.parametrize("kwargs, message", [({"batch_size": 0}, "batch_size"),
                                             ({"thresh": 1.5}, "thresh")])
def test_bad_arguments(kwargs, message) -> None:
    net = get_model("mobilenet", 300, num_classes=2, multiplier=0.25)
    with pytest.raises(ValueError, match=message):
        Detector(net, ModelConfig.from_net(net, NAMES), **kwargs)


def test_bad_images(detector) -> None:
    with pytest.raises(ValueError, match="image 0 must be an"):
        detector.detect([np.zeros((10, 10), np.uint8)])
