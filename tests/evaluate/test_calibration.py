"""Calibration images (evaluate.calibration): which images, read how, and where a checkpoint may go."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from dataset.synthetic import make_synthetic
from evaluate.calibration import (DIRECTORY, CalibrationSource, _spread, calibration_images,
                                  check_output_prefix)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    make_synthetic(root, num_images=12, image_size=64, seed=5, test_fraction=0.25)
    return root


def test_spread_is_even_distinct_and_fixed():
    assert _spread(10, 20) == list(range(10))
    assert _spread(10, 3) == [0, 4, 9]  # 0, 4.5 -> 4 (round half to even), 9
    assert _spread(100, 64) == sorted(set(_spread(100, 64))) and len(_spread(100, 64)) == 64


def test_images_of_a_dataset_split(synthetic):
    train = (synthetic / "ImageSets" / "Main" / "train.txt").read_text().split()
    images = calibration_images(CalibrationSource("folder", synthetic, "train"), 4)
    assert len(images) == 4 and all(i.shape == (64, 64, 3) and i.dtype == np.uint8 for i in images)
    # the first and the last image of the split, RGB as load_image reads them
    first = cv2.imread(str(synthetic / "JPEGImages" / f"{train[0]}.jpg"))[:, :, ::-1]
    last = cv2.imread(str(synthetic / "JPEGImages" / f"{train[-1]}.jpg"))[:, :, ::-1]
    np.testing.assert_array_equal(images[0], first)
    np.testing.assert_array_equal(images[-1], last)
    assert len(calibration_images(CalibrationSource("folder", synthetic, "train"), 100)) == len(train)


def test_images_of_a_folder(synthetic, tmp_path):
    for i, name in enumerate(sorted(os.listdir(synthetic / "JPEGImages"))[:3]):
        (tmp_path / f"{i}.JPG").write_bytes((synthetic / "JPEGImages" / name).read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    source = CalibrationSource(DIRECTORY, tmp_path)
    assert source.to_dict() == {"kind": "dir", "root": str(tmp_path)}
    assert len(calibration_images(source, 64)) == 3


def test_bad_sources(tmp_path, synthetic):
    with pytest.raises(ValueError, match="no calibration images in"):
        calibration_images(CalibrationSource(DIRECTORY, tmp_path), 4)
    with pytest.raises(FileNotFoundError, match="folder not found"):
        calibration_images(CalibrationSource(DIRECTORY, tmp_path / "nope"), 4)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        calibration_images(CalibrationSource(DIRECTORY, tmp_path), 4)
    with pytest.raises(FileNotFoundError, match="the sets in .* are: test, train"):  # not that split
        calibration_images(CalibrationSource("folder", synthetic, "val"), 4)
    with pytest.raises(ValueError, match="unknown calibration source kind"):
        CalibrationSource("imagenet", tmp_path)
    with pytest.raises(ValueError, match="positive integer"):
        calibration_images(CalibrationSource("folder", synthetic, "train"), 0)


def test_output_prefix_checks(tmp_path):
    check_output_prefix(tmp_path / "new" / "deeper" / "ssd_int8")  # creatable: fine, and nothing made
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="is a folder"):
        check_output_prefix(tmp_path)
    with pytest.raises(ValueError, match="own prefix"):
        check_output_prefix(tmp_path / "ssd", tmp_path / "ssd")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        check_output_prefix(tmp_path / "file" / "ssd_int8")
