"""Tests of dataset/coco.py on a small instances JSON written by the test."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataset.coco import COCODetection


def _coco(tmp_path: Path, **overrides) -> Path:
    data = {
        "images": [
            {"id": 42, "file_name": "b.jpg", "width": 100, "height": 50},
            {"id": 7, "file_name": "a.jpg", "width": 640, "height": 480},
            {"id": 9, "file_name": "empty.jpg", "width": 20, "height": 20},
        ],
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
                       {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 90, "bbox": [600, 470, 100, 100],
             "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 640, 480], "iscrowd": 1},
            {"id": 4, "image_id": 42, "category_id": 1, "bbox": [1.5, 2.5, 3, 4]},
            {"id": 5, "image_id": 42, "category_id": 1, "bbox": [5, 5, 0, 4]},
        ],
    }
    data.update(overrides)
    path = tmp_path / "instances_test.json"
    path.write_text(json.dumps(data))
    (tmp_path / "images").mkdir(exist_ok=True)
    return path


def test_labels_are_contiguous_in_category_id_order(tmp_path: Path) -> None:
    ds = COCODetection(_coco(tmp_path), tmp_path / "images")
    assert ds.class_names == ("person", "car", "toothbrush")
    assert ds.category_ids == (1, 3, 90)
    assert ds.label_to_category_id == {0: 1, 1: 3, 2: 90}
    for label, cid in ds.label_to_category_id.items():
        assert ds.category_id_to_label[cid] == label


def test_boxes_converted_clipped_crowd_skipped_empty_kept(tmp_path: Path) -> None:
    ds = COCODetection(_coco(tmp_path), tmp_path / "images")
    assert ds.ids == (7, 9, 42) and len(ds) == 3
    a = ds[0]
    assert Path(a.image) == tmp_path / "images" / "a.jpg" and (a.width, a.height) == (640, 480)
    np.testing.assert_array_equal(a.boxes, [[10, 20, 40, 60], [600, 470, 640, 480]])
    assert a.labels.tolist() == [1, 2] and not a.difficult.any()
    assert ds[1].num_objects == 0                      # image without annotations kept
    b = ds[2]                                          # zero-width box dropped
    np.testing.assert_allclose(b.boxes, [[1.5, 2.5, 4.5, 6.5]])
    assert b.labels.tolist() == [0]


def test_crowd_kept_as_difficult(tmp_path: Path) -> None:
    ds = COCODetection(_coco(tmp_path), tmp_path / "images", keep_crowd=True)
    assert ds[0].labels.tolist() == [1, 2, 0]
    assert ds[0].difficult.tolist() == [False, False, True]
    np.testing.assert_array_equal(ds[0].boxes[2], [0, 0, 640, 480])


def test_class_subset_in_given_order(tmp_path: Path) -> None:
    ds = COCODetection(_coco(tmp_path), tmp_path / "images", class_names=["toothbrush", "car"])
    assert ds.category_ids == (90, 3) and ds.label_to_category_id == {0: 90, 1: 3}
    assert ds[0].labels.tolist() == [1, 0] and ds[2].num_objects == 0
    with pytest.raises(ValueError, match="no category named.*'dog'"):
        COCODetection(_coco(tmp_path), tmp_path / "images", class_names=["dog"])


@pytest.mark.parametrize("overrides, match", [
    ({"annotations": [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]}, "unknown image"),
    ({"annotations": [{"image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 1]}]},
     "unknown category"),
    ({"annotations": [{"image_id": 7, "category_id": 3}]}, "bad annotation 0"),
    ({"categories": None}, "missing list 'categories'"),
    ({"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "duplicated category ids"),
])
def test_bad_json_errors_name_the_file(tmp_path: Path, overrides, match) -> None:
    path = _coco(tmp_path, **overrides)
    with pytest.raises(ValueError, match=match) as info:
        COCODetection(path, tmp_path / "images")
    assert str(path) in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        COCODetection(tmp_path / "missing.json", tmp_path)
    path = _coco(tmp_path)
    with pytest.raises(FileNotFoundError, match="no_images"):
        COCODetection(path, tmp_path / "no_images")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="malformed JSON"):
        COCODetection(path, tmp_path / "images")


def test_coco_class_names_are_the_2017_categories_in_id_order():
    """Models trained on COCO label its 80 categories 0..79 in id order; GluonCV ships the same list."""
    from gluoncv.data import COCODetection as GluonCOCO

    from dataset.coco import COCO_CLASSES

    assert COCO_CLASSES == tuple(GluonCOCO.CLASSES) and len(set(COCO_CLASSES)) == 80
