"""Tests of dataset/synthetic.py and tools/make_synthetic.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataset.synthetic import SYNTHETIC_CLASSES, draw_sample, make_synthetic
from dataset.voc import VOCFolder
from tools.make_synthetic import main

ARGS = ["--num-images", "24", "--image-size", "96", "--max-objects", "3",
        "--test-fraction", "0.25", "--empty-fraction", "0.2"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path / "a"), "--seed", "5", *ARGS]) == 0
    assert main(["--out", str(tmp_path / "b"), "--seed", "5", *ARGS]) == 0
    assert main(["--out", str(tmp_path / "c"), "--seed", "6", *ARGS]) == 0
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert len(a) == 24 * 2 + 2
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_output_is_readable_by_voc_folder(tmp_path: Path) -> None:
    summary = make_synthetic(tmp_path, num_images=40, image_size=64, max_objects=4,
                             test_fraction=0.25, empty_fraction=0.3, seed=1)
    assert summary["train"] == 30 and summary["test"] == 10
    assert summary["empty"] > 0
    train = VOCFolder(tmp_path, image_set="train", class_names=SYNTHETIC_CLASSES)
    test = VOCFolder(tmp_path, image_set="test", class_names=SYNTHETIC_CLASSES)
    assert len(train) == 30 and len(test) == 10
    assert not set(train.ids) & set(test.ids)
    everything = VOCFolder(tmp_path)
    assert everything.class_names == SYNTHETIC_CLASSES
    assert sum(a.num_objects for a in everything) == summary["objects"]
    assert sum(a.num_objects == 0 for a in everything) == summary["empty"]
    for ann in everything:
        assert (ann.width, ann.height) == (64, 64)
        assert ann.num_objects <= 4 and Path(ann.image).is_file()


def test_boxes_are_tight_around_the_shapes() -> None:
    img, boxes, labels = draw_sample(np.random.default_rng(0), 128, 5, empty_fraction=0.0)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert 1 <= len(boxes) <= 5 and labels.shape == (len(boxes),)
    assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= 128) & (boxes[:, 2:] > boxes[:, :2])).all()
    squares = boxes[labels == SYNTHETIC_CLASSES.index("square")]
    np.testing.assert_array_equal(squares[:, 2] - squares[:, 0], squares[:, 3] - squares[:, 1])


def test_refuses_non_empty_output_unless_forced(tmp_path: Path, capsys) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["--out", str(tmp_path), *ARGS]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--force", *ARGS]) == 0
    assert main(["--out", str(tmp_path), "--force", "--num-images", "3"]) == 0
    assert len(list((tmp_path / "Annotations").iterdir())) == 3        # stale files removed
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("kwargs", [{"num_images": 0}, {"image_size": 8}, {"max_objects": 0},
                                    {"test_fraction": 1.0}, {"empty_fraction": -0.1}])
def test_invalid_arguments(tmp_path: Path, kwargs) -> None:
    with pytest.raises(ValueError):
        make_synthetic(tmp_path, **kwargs)
