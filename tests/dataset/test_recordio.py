"""dataset.recordio: label layout, .lst writing, im2rec packing and reading back."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dataset.annotation import Annotation
from dataset.loader import DetectionDataset
from dataset.recordio import (RecordDetection, detection_label, make_records,
                              parse_detection_label, write_detection_list)
from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
from dataset.voc import VOCFolder


def _image(path: Path, w: int = 40, h: int = 20) -> str:
    cv2.imwrite(str(path), np.full((h, w, 3), 128, dtype=np.uint8))
    return str(path)


def test_detection_label_layout_and_padding(tmp_path):
    ann = Annotation.from_lists(_image(tmp_path / "a.jpg"), 40, 20, [[4, 2, 20, 10]], [2], [True])
    label = detection_label(ann, 3)
    assert label.shape == (2 + 6 * 3,)
    np.testing.assert_allclose(label[:8], [2, 6, 2, 0.1, 0.1, 0.5, 0.5, 1])
    assert np.all(label[8:] == -1)
    with pytest.raises(ValueError, match="1 objects but the label has room for 0"):
        detection_label(ann, 0)


def test_parse_detection_label_round_trip_and_errors(tmp_path):
    ann = Annotation.from_lists("x.jpg", 40, 20, [[4, 2, 20, 10], [0, 0, 40, 20]], [2, 0],
                                [True, False])
    boxes, labels, difficult = parse_detection_label(detection_label(ann, 5), 40, 20)
    np.testing.assert_allclose(boxes, ann.boxes, atol=1e-4)
    assert labels.tolist() == [2, 0] and difficult.tolist() == [True, False]
    # A foreign layout: header width 4 (two extra values), object width 5 (no difficult flag).
    boxes, labels, difficult = parse_detection_label([4, 5, 9, 9, 1, 0, 0, 0.5, 0.5], 40, 20)
    np.testing.assert_allclose(boxes, [[0, 0, 20, 10]])
    assert labels.tolist() == [1] and difficult.tolist() == [False]
    with pytest.raises(ValueError, match="do not make rows of 6"):
        parse_detection_label([2, 6, 0, 0, 0, 1], 40, 20)
    with pytest.raises(ValueError, match="object 0 has an empty box"):
        parse_detection_label([2, 6, 0, 0.5, 0, 0.5, 1, 0], 40, 20, "rec 3")


def test_write_detection_list_format(tmp_path):
    a = Annotation.from_lists(_image(tmp_path / "a.jpg"), 40, 20, [[4, 2, 20, 10]], [1])
    b = Annotation.from_lists(_image(tmp_path / "b.jpg"), 40, 20, [], [])
    rows = write_detection_list([a, b], tmp_path / "x.lst", root=tmp_path, shuffle=False)
    assert rows == 1
    lines = (tmp_path / "x.lst").read_text().splitlines()
    assert lines[0].split("\t") == ["0", "2", "6", "1", "0.1000000", "0.1000000", "0.5000000",
                                    "0.5000000", "0", "a.jpg"]
    assert lines[1].split("\t") == ["1", "2", "6"] + ["-1"] * 6 + ["b.jpg"]
    with pytest.raises(FileNotFoundError, match="image not found"):
        write_detection_list([Annotation.from_lists(str(tmp_path / "no.jpg"), 4, 4, [], [])],
                             tmp_path / "y.lst")


def test_make_records_round_trip_absolute_paths(tmp_path):
    """Shuffled, no root (absolute paths in the .lst), every record back."""
    make_synthetic(tmp_path / "syn", num_images=5, image_size=64, seed=3)
    reader = VOCFolder(tmp_path / "syn", class_names=SYNTHETIC_CLASSES)
    summary = make_records(reader, tmp_path / "out" / "syn", shuffle=True, seed=1)
    assert summary["images"] == 5
    lst = (tmp_path / "out" / "syn.lst").read_text().splitlines()
    assert all(Path(line.split("\t")[-1]).is_absolute() for line in lst)
    rec = RecordDetection(tmp_path / "out" / "syn.rec", class_names=SYNTHETIC_CLASSES)
    by_path = {a.image: a for a in reader}
    assert rec.ids == tuple(range(5))
    for i, line in enumerate(lst):
        original = by_path[line.split("\t")[-1]]
        image, ann = rec.load(i)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert ann.labels.tolist() == original.labels.tolist()
        np.testing.assert_allclose(ann.boxes, original.boxes, atol=1e-3)
    with pytest.raises(IndexError):
        rec[5]
    with pytest.raises(ValueError, match="only 1 class names"):
        RecordDetection(tmp_path / "out" / "syn.rec", class_names=["circle"])[
            next(i for i in range(5) if rec[i].labels.max(initial=0) > 0)]


def test_record_detection_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="record file not found"):
        RecordDetection(tmp_path / "none.rec", class_names=["a"])


def test_pack_records_reports_im2rec_failure_in_one_message(tmp_path):
    from dataset.recordio import pack_records

    (tmp_path / "folder.jpg").mkdir()  # a directory im2rec cannot read as an image
    (tmp_path / "bad.lst").write_text("0\t2\t6\t-1\t-1\t-1\t-1\t-1\t-1\tfolder.jpg\n")
    with pytest.raises(RuntimeError, match="im2rec") as info:
        pack_records(tmp_path / "bad.lst", tmp_path)
    assert "\n" not in str(info.value)


def test_records_feed_the_training_dataset(tmp_path):
    """RecordDetection plugs into DetectionDataset like the folder reader does."""
    make_synthetic(tmp_path / "syn", num_images=4, image_size=96, seed=3)
    folder = VOCFolder(tmp_path / "syn", class_names=SYNTHETIC_CLASSES)
    make_records([folder[i] for i in range(len(folder))], tmp_path / "rec" / "syn",
                 root=tmp_path / "syn", shuffle=False)
    records = RecordDetection(tmp_path / "rec" / "syn.rec", class_names=SYNTHETIC_CLASSES)
    from_rec = DetectionDataset(records, 64, train=False)
    from_folder = DetectionDataset(folder, 64, train=False)
    for i in range(len(folder)):
        (img_a, lab_a), (img_b, lab_b) = from_rec[i], from_folder[i]
        np.testing.assert_array_equal(img_a, img_b)
        np.testing.assert_allclose(lab_a, lab_b, atol=1.0 / 96)
