"""Tests of dataset/annotation.py: validation of the per-image record."""
from __future__ import annotations

import numpy as np
import pytest

from dataset.annotation import Annotation, check_class_names


def test_valid_annotation_is_converted_and_read_only() -> None:
    ann = Annotation("a.jpg", 100, 50, [[0, 0, 100, 50], [10.5, 5, 20, 6]], [0, 2], [False, True])
    assert ann.boxes.dtype == np.float32 and ann.boxes.shape == (2, 4)
    assert ann.labels.dtype == np.int64 and ann.labels.tolist() == [0, 2]
    assert ann.difficult.tolist() == [False, True]
    assert ann.num_objects == 2
    np.testing.assert_allclose(ann.normalized_boxes()[0], [0, 0, 1, 1])
    with pytest.raises(ValueError):
        ann.boxes[0, 0] = 3.0
    with pytest.raises(AttributeError):
        ann.width = 3  # type: ignore[misc]


def test_difficult_defaults_to_false() -> None:
    ann = Annotation("a.jpg", 10, 10, [[1, 1, 2, 2]], [0])
    assert ann.difficult.tolist() == [False]


@pytest.mark.parametrize("boxes, labels", [([], []), (np.zeros((0, 4)), np.zeros(0, np.int64))])
def test_image_without_objects_is_valid(boxes, labels) -> None:
    ann = Annotation("empty.jpg", 10, 10, boxes, labels)
    assert ann.boxes.shape == (0, 4) and ann.labels.shape == (0,) and ann.difficult.shape == (0,)
    assert ann.num_objects == 0


def test_inputs_are_not_aliased() -> None:
    boxes = np.array([[1, 1, 2, 2]], dtype=np.float32)
    ann = Annotation("a.jpg", 10, 10, boxes, [0])
    boxes[0, 0] = 0
    assert ann.boxes[0, 0] == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"width": 0}, "width"),
    ({"height": 2.5}, "height"),
    ({"boxes": [[1, 1, 2]]}, r"shape \(N, 4\)"),
    ({"labels": [0, 1]}, "labels must have shape"),
    ({"labels": [-1]}, "negative"),
    ({"labels": [0.5]}, "integers"),
    ({"difficult": [True, False]}, "difficult must have shape"),
    ({"boxes": [[5, 1, 5, 2]]}, "box 0"),
    ({"boxes": [[1, 1, 11, 2]]}, "outside"),
    ({"boxes": [[-1, 1, 3, 2]]}, "outside"),
    ({"boxes": [[np.nan, 1, 3, 2]]}, "box 0"),
])
def test_invalid_annotation_raises(kwargs, match) -> None:
    args = {"image": "bad.jpg", "width": 10, "height": 10, "boxes": [[1, 1, 2, 2]],
            "labels": [0], "difficult": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        Annotation(**args)
    assert "bad.jpg" in str(info.value)


def test_check_class_names() -> None:
    assert check_class_names(["a", "b"]) == ("a", "b")
    for bad in ([], "car", ["a", "a"], ["a", ""], ["a", 3]):
        with pytest.raises(ValueError):
            check_class_names(bad)
