"""evaluate.evaluation: readers, detection files, scoring with a stand-in detector, PR plots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dataset.factory import open_dataset
from dataset.voc import VOCFolder
from evaluate.detector import Detection
from evaluate.evaluation import (DetectionFileError, ImagePredictions, detect_reader, evaluate_detector,
                                 format_table, image_keys, read_detections, score_predictions,
                                 write_detections)
from evaluate.plots import plot_pr_curves

NAMES = ("a", "b")
W, H = 100, 80
# image id -> objects (class, 0-based continuous corners, difficult)
OBJECTS = {
    "a1": [("a", (10, 10, 50, 50), False), ("b", (60, 10, 90, 40), True)],
    "a2": [("a", (20, 20, 60, 70), False), ("b", (5, 5, 45, 35), False)],
    "a3": [],
}



@pytest.fixture
def reader(tmp_path, voc_folder_writer) -> VOCFolder:
    return open_dataset("folder", voc_folder_writer(tmp_path / "voc", OBJECTS, W, H), "test", NAMES)


def ground_truth_predictions(reader) -> list[ImagePredictions]:
    return [ImagePredictions(a.boxes, a.labels, np.linspace(1, 0.5, len(a.labels)))
            for a in (reader[i] for i in range(len(reader)))]


class GroundTruthDetector:
    """Stands in for evaluate.detector.Detector: 'detects' the ground truth of the image
    whose pixels it is given (each test image is filled with its index)."""

    def __init__(self, reader, batch_size: int = 2) -> None:
        self.reader, self.batch_size, self.class_names = reader, batch_size, reader.class_names
        self.calls = []

    def detect(self, images):
        self.calls.append(len(images))
        out = []
        for image in images:
            ann = self.reader[int(image[0, 0, 0])]
            out.append([Detection(int(lab), NAMES[lab], 0.9, tuple(map(float, box)))
                        for box, lab in zip(ann.boxes, ann.labels)])
        return out


def test_difficult_boxes_are_kept_and_flagged(reader):
    assert reader[0].difficult.tolist() == [False, True]
    assert reader[0].boxes.tolist() == [[10, 10, 50, 50], [60, 10, 90, 40]]
    assert image_keys(reader) == ["a1", "a2", "a3"]


def test_ground_truth_scores_one(reader):
    preds = ground_truth_predictions(reader)
    for metric in ("voc07", "voc10", "coco"):
        result = score_predictions(reader, preds, metric)
        value = result.mAP if metric != "coco" else result.AP
        assert value == pytest.approx(1.0), metric


def test_hand_computed_ap(reader):
    # class a: TP .9, FP .8 (empty image), TP .7 -> P 1, 1/2, 2/3 at R 1/2, 1/2, 1
    # class b: TP .5, duplicate FP .4, .3 on the difficult box (ignored)
    preds = [ImagePredictions([[10, 10, 50, 50], [60, 10, 90, 40]], [0, 1], [0.9, 0.3]),
             ImagePredictions([[20, 20, 60, 70], [5, 5, 45, 35], [6, 5, 46, 35]], [0, 1, 1],
                              [0.7, 0.5, 0.4]),
             ImagePredictions([[0, 0, 30, 30]], [0], [0.8])]
    r10 = score_predictions(reader, preds, "voc10")
    assert r10.ap["a"] == pytest.approx(0.5 + 0.5 * 2 / 3) and r10.ap["b"] == pytest.approx(1.0)
    assert r10.num_det == {"a": 3, "b": 3} and r10.num_gt == {"a": 2, "b": 1}
    r07 = score_predictions(reader, preds, "voc07")
    assert r07.ap["a"] == pytest.approx((6 + 5 * 2 / 3) / 11)
    counted = score_predictions(reader, preds, "voc10", use_difficult=True)
    assert counted.ap["b"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    table = format_table(r10).splitlines()
    assert table[1].split() == ["a", "0.8333", "2", "3"]
    assert table[-1].split() == ["mAP", "0.9167", "3", "6"]


def test_detection_file_round_trip_uses_voc_pixels(reader, tmp_path):
    preds = ground_truth_predictions(reader)
    path = tmp_path / "dets.json"
    assert write_detections(path, reader, preds) == 4
    records = json.loads(path.read_text())
    assert records[0] == {"image_id": "a1", "class_name": "a", "score": 1.0,
                          "bbox": [11.0, 11.0, 50.0, 50.0]}  # as <xmin>11</xmin> in the XML
    back = read_detections(path, reader)
    for p, q in zip(preds, back):
        np.testing.assert_array_equal(p.boxes, q.boxes)
        np.testing.assert_array_equal(p.labels, q.labels)
        np.testing.assert_array_equal(p.scores, q.scores)
    assert len(back[2]) == 0


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("[{", "not valid JSON"),
    ('{"a": 1}', "must hold a JSON list"),
    ('[1]', "detection 0 must be a JSON object"),
    ('[{"image_id": "zz", "class_name": "a", "score": 1, "bbox": [1, 1, 5, 5]}]',
     "no annotation for image_id 'zz'"),
    ('[{"image_id": "a1", "class_name": "cow", "score": 1, "bbox": [1, 1, 5, 5]}]',
     "unknown class_name 'cow'"),
    ('[{"image_id": "a1", "class_name": "a", "score": 1, "bbox": [1, 1, 5]}]', "'bbox' must be"),
    ('[{"image_id": "a1", "class_name": "a", "score": "x", "bbox": [1, 1, 5, 5]}]', "'score' must be"),
    ('[{"image_id": 1, "class_name": "a", "score": 1, "bbox": [1, 1, 5, 5]}]', "'image_id' must be"),
])
def test_bad_detection_files(reader, tmp_path, content, message):
    path = tmp_path / "dets.json"
    path.write_text(content)
    with pytest.raises(DetectionFileError, match=message):
        read_detections(path, reader)


def test_empty_detection_list_scores_zero(reader, tmp_path):
    path = tmp_path / "dets.json"
    path.write_text("[]")
    result = score_predictions(reader, read_detections(path, reader))
    assert result.mAP == 0.0


def test_evaluate_detector_batches_and_matches(reader, monkeypatch):
    import evaluate.evaluation as ev

    monkeypatch.setattr(ev, "load_image_of", lambda r, i: np.full((H, W, 3), i, np.uint8))
    det = GroundTruthDetector(reader, batch_size=2)
    seen = []
    result = evaluate_detector(det, reader, "voc10", progress=lambda d, n, s: seen.append((d, n)))
    assert result.mAP == pytest.approx(1.0)
    assert det.calls == [2, 1] and seen == [(2, 3), (3, 3)]
    preds = detect_reader(det, reader, limit=1)
    assert len(preds) == 1 and preds[0].labels.tolist() == [0, 1]
    det.class_names = ("b", "a")
    with pytest.raises(ValueError, match="differ from the dataset"):
        evaluate_detector(det, reader)


def test_image_keys_of_several_voc_years():
    class Reader:
        class_names = NAMES
        ids = ("VOC2007/000001", "VOC2012/000002")

    assert image_keys(Reader()) == ["000001", "000002"]
    Reader.ids = ("VOC2007/000001", "VOC2012/000001")
    assert image_keys(Reader()) == ["VOC2007/000001", "VOC2012/000001"]


def test_plot_pr_curves_one_png_per_class(reader, tmp_path):
    preds = ground_truth_predictions(reader)
    preds[2] = ImagePredictions([[0, 0, 30, 30]], [0], [0.95])
    paths = plot_pr_curves(score_predictions(reader, preds), tmp_path / "plots")
    assert [p.name for p in paths] == ["pr_a.png", "pr_b.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in (tmp_path / "plots").iterdir()) == ["pr_a.png", "pr_b.png"]
