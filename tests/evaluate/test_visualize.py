"""evaluate/visualize.py on pixels: overlapping labels stay readable, the best on top; ground truth."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from common.images import load_image
from evaluate.detector import Detection
from evaluate.visualize import draw_boxes, draw_detections

BLACK = np.zeros((200, 200, 3), np.uint8)
# Two detections of different classes with nearly the same box: their labels compete for one spot.
BEST = Detection(0, "alpha", 0.9, (50.0, 60.0, 150.0, 150.0))
OTHER = Detection(1, "beta", 0.5, (52.0, 62.0, 150.0, 150.0))


def label_pixels(picture: np.ndarray, class_id: int) -> int:
    """Pixels of a label background of ``class_id``: its tab10 colour at alpha 0.7 over black."""
    want = 0.7 * np.array(matplotlib.colormaps["tab10"](class_id)[:3]) * 255
    return int((np.abs(picture.astype(float) - want).max(axis=2) < 8).sum())


def render(tmp_path: Path, detections, name: str) -> np.ndarray:
    path = tmp_path / f"{name}.png"
    draw_detections(BLACK, detections, path)
    return load_image(path)


def test_overlapping_labels_are_both_visible(tmp_path):
    alone = {0: label_pixels(render(tmp_path, [BEST], "best"), 0),
             1: label_pixels(render(tmp_path, [OTHER], "other"), 1)}
    assert alone[0] > 150 and alone[1] > 150
    both = render(tmp_path, [BEST, OTHER], "both")  # the detector's order: best first
    assert label_pixels(both, 0) >= 0.95 * alone[0]
    assert label_pixels(both, 1) >= 0.95 * alone[1]
    # The input order does not matter: placed best first, drawn best on top.
    np.testing.assert_array_equal(render(tmp_path, [OTHER, BEST], "reversed"), both)


def label_rows(picture: np.ndarray, class_id: int) -> np.ndarray:
    want = 0.7 * np.array(matplotlib.colormaps["tab10"](class_id)[:3]) * 255
    return np.flatnonzero((np.abs(picture.astype(float) - want).max(axis=2) < 8).any(axis=1))


def test_the_best_label_keeps_its_spot_above_the_box(tmp_path):
    both = render(tmp_path, [OTHER, BEST], "both")
    assert label_rows(both, 0).max() <= 60  # the best label sits above its box top (y = 60)
    assert label_rows(both, 1).min() >= 61  # the other moved inside its own box, below its top (y = 62)


def test_when_no_spot_is_free_the_best_is_on_top(tmp_path):
    # Five boxes filling the picture: labels must share spots, and the best is drawn last.
    full = [Detection(k, f"c{k}", 0.1 * (k + 1), (0.0, 0.0, 200.0, 200.0)) for k in range(5)]
    best = full[-1]
    background = (render(tmp_path, [], "blank") == 255).all(axis=2)  # the figure's edge, if any
    text = (render(tmp_path, [best], "one").min(axis=2) > 200) & ~background  # its white letters
    assert text.sum() > 20
    for order in (full, full[::-1]):
        picture = render(tmp_path, order, "full")
        assert (picture[text].min(axis=1) > 200).mean() > 0.95  # nothing drawn over them


def test_ground_truth_boxes_are_drawn_with_class_names(tmp_path):
    path = tmp_path / "gt.png"
    draw_boxes(BLACK, np.array([[20, 100, 120, 180]]), [2], ["a", "b", "c"], path, difficult=[True])
    picture = load_image(path)
    green = np.array(matplotlib.colormaps["tab10"](2)[:3]) * 255
    # the box's left and bottom edges in class 2's colour, its inside untouched
    assert np.abs(picture[140, 19:22].astype(float) - green).max(axis=1).min() < 30
    assert np.abs(picture[178:182, 70].astype(float) - green).max(axis=1).min() < 30
    assert picture[140, 70].max() == 0
    assert label_pixels(picture, 2) > 100  # the label "c (difficult)" above the box
    with pytest.raises(ValueError, match="label 3 out of range for 3 class names"):
        draw_boxes(BLACK, np.array([[1, 1, 5, 5]]), [3], ["a", "b", "c"], path)
