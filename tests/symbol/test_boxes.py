"""Properties and hand-computed values of the pure-NumPy box module."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbol import boxes, reference

FAST = settings(max_examples=40, deadline=None)

coord = st.floats(-1.0, 1.0, allow_nan=False, width=64)
side = st.floats(0.01, 2.0, allow_nan=False, width=64)
variance = st.floats(0.05, 2.0, allow_nan=False, width=64)


@st.composite
def corner_boxes(draw, min_n: int = 1, max_n: int = 8, positive: bool = True) -> np.ndarray:
    """(N, 4) corners; with ``positive`` every box has width and height >= 0.01."""
    n = draw(st.integers(min_n, max_n))
    rows = []
    for _ in range(n):
        x, y = draw(coord), draw(coord)
        if positive:
            w, h = draw(side), draw(side)
        else:
            w, h = draw(st.floats(-0.5, 2.0, width=64)), draw(st.floats(-0.5, 2.0, width=64))
        rows.append((x, y, x + w, y + h))
    return np.array(rows, dtype=np.float64)


@st.composite
def box_pairs(draw, max_n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, 4) positive-size corner arrays of the same length."""
    a = draw(corner_boxes(max_n=max_n))
    b = draw(corner_boxes(min_n=len(a), max_n=len(a)))
    return a, b


@st.composite
def nms_inputs(draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Boxes crowded into the unit square, scores with ties, a few classes, a threshold."""
    n = draw(st.integers(0, 12))
    rows = []
    for _ in range(n):
        x, y = draw(st.floats(0, 0.6)), draw(st.floats(0, 0.6))
        w, h = draw(st.floats(0.05, 0.4)), draw(st.floats(0.05, 0.4))
        rows.append((x, y, x + w, y + h))
    b = np.array(rows, dtype=np.float64).reshape(n, 4)
    scores = np.array(draw(st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), min_size=n, max_size=n)))
    cls = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=np.int64)
    thr = draw(st.floats(0.05, 1.0))
    return b, scores, cls, thr


# ---------------------------------------------------------------- formats
@FAST
@given(corner_boxes())
def test_corner_center_round_trip(b: np.ndarray) -> None:
    np.testing.assert_allclose(boxes.center_to_corner(boxes.corner_to_center(b)), b, atol=1e-12)
    c = boxes.corner_to_center(b)
    np.testing.assert_allclose(boxes.corner_to_center(boxes.center_to_corner(c)), c, atol=1e-12)


def test_formats_accept_leading_dimensions() -> None:
    b = np.array([[[0.0, 0.0, 2.0, 4.0]], [[1.0, 1.0, 2.0, 2.0]]])
    c = boxes.corner_to_center(b)
    assert c.shape == (2, 1, 4)
    np.testing.assert_array_equal(c, [[[1.0, 2.0, 2.0, 4.0]], [[1.5, 1.5, 1.0, 1.0]]])
    np.testing.assert_array_equal(boxes.center_to_corner(c), b)


def test_float32_is_kept_and_ints_promoted() -> None:
    b32 = np.array([[0, 0, 1, 1]], dtype=np.float32)
    assert boxes.corner_to_center(b32).dtype == np.float32
    assert boxes.box_iou(b32, b32).dtype == np.float32
    assert boxes.decode(np.zeros((1, 4), np.float32), b32).dtype == np.float32
    assert boxes.corner_to_center([[0, 0, 2, 2]]).dtype == np.float64


# ---------------------------------------------------------------- IoU
@FAST
@given(corner_boxes(positive=False), corner_boxes(positive=False))
def test_iou_symmetric_and_bounded(a: np.ndarray, b: np.ndarray) -> None:
    iou = boxes.box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert np.all(np.isfinite(iou))
    assert np.all((iou >= 0) & (iou <= 1 + 1e-12))
    np.testing.assert_allclose(iou, boxes.box_iou(b, a).T, atol=1e-12)


@FAST
@given(corner_boxes())
def test_iou_with_itself_is_one(b: np.ndarray) -> None:
    np.testing.assert_allclose(np.diag(boxes.box_iou(b, b)), 1.0, rtol=1e-12)


@FAST
@given(corner_boxes(), corner_boxes(), st.floats(1e-9, 1.0))
def test_iou_of_disjoint_boxes_is_zero(a: np.ndarray, b: np.ndarray, gap: float) -> None:
    # every shifted box starts right of every box of a (the gap outlasts rounding;
    # touching boxes are in test_iou_hand_values)
    shifted = b.copy()
    shift = a[:, 2].max() - b[:, 0].min() + gap
    shifted[:, [0, 2]] += shift
    np.testing.assert_array_equal(boxes.box_iou(a, shifted), 0.0)


def test_iou_hand_values() -> None:
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0],      # intersection 1, union 7
                  [0.0, 0.0, 2.0, 1.0],      # inside: 2 / 4
                  [2.0, 0.0, 4.0, 2.0],      # touching edge: 0
                  [1.0, 1.0, 1.0, 1.0]])     # zero area inside a: 0
    np.testing.assert_allclose(boxes.box_iou(a, b), [[1 / 7, 0.5, 0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(boxes.box_area(np.concatenate([a, b])), [4, 4, 2, 4, 0])


def test_iou_zero_area_pairs_are_zero_not_nan() -> None:
    z = np.array([[0.5, 0.5, 0.5, 0.5], [0.2, 0.3, 0.2, 0.9]])
    with np.errstate(all="raise"):
        iou = boxes.box_iou(z, z)
    np.testing.assert_array_equal(iou, 0.0)


def test_iou_empty_inputs() -> None:
    assert boxes.box_iou(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)


@pytest.mark.parametrize("a, b", [(np.zeros((2, 3)), np.zeros((2, 4))),
                                  (np.zeros((2, 4)), np.zeros(4)),
                                  (np.zeros((1, 2, 4)), np.zeros((2, 4)))])
def test_iou_rejects_malformed_boxes(a: np.ndarray, b: np.ndarray) -> None:
    with pytest.raises(ValueError, match="must have shape"):
        boxes.box_iou(a, b)


def test_formats_reject_wrong_last_dimension() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        boxes.corner_to_center(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        boxes.box_area(np.float64(1.0))


# ---------------------------------------------------------------- box coder
@FAST
@given(box_pairs(), st.one_of(st.just(boxes.VARIANCES), st.tuples(variance, variance, variance, variance)))
def test_decode_inverts_encode(pair: tuple[np.ndarray, np.ndarray], var: tuple) -> None:
    gt, anchors = pair
    deltas = boxes.encode(gt, anchors, var)
    assert deltas.shape == gt.shape
    np.testing.assert_allclose(boxes.decode(deltas, anchors, var), gt, atol=1e-9)


@FAST
@given(corner_boxes(), st.data())
def test_encode_inverts_decode(anchors: np.ndarray, data: st.DataObject) -> None:
    vals = data.draw(st.lists(st.floats(-3, 3), min_size=4 * len(anchors), max_size=4 * len(anchors)))
    deltas = np.array(vals).reshape(-1, 4)
    np.testing.assert_allclose(boxes.encode(boxes.decode(deltas, anchors), anchors), deltas, atol=1e-8)


def test_encode_hand_value() -> None:
    gt = np.array([[0.1, 0.1, 0.5, 0.3]])       # center (0.3, 0.2), size 0.4 x 0.2
    anchor = np.array([[0.2, 0.2, 0.4, 0.4]])   # center (0.3, 0.3), size 0.2 x 0.2
    np.testing.assert_allclose(boxes.encode(gt, anchor), [[0.0, -5.0, math.log(2) / 0.2, 0.0]], atol=1e-12)
    np.testing.assert_allclose(boxes.encode(gt, anchor, (1, 1, 1, 1)), [[0.0, -0.5, math.log(2), 0.0]],
                               atol=1e-12)
    np.testing.assert_allclose(boxes.decode([[0.0, -5.0, math.log(2) / 0.2, 0.0]], anchor), gt, atol=1e-12)


def test_coder_rejects_bad_arguments() -> None:
    a = np.array([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="variances"):
        boxes.encode(a, a, (0.1, 0.1, 0.2))
    with pytest.raises(ValueError, match="variances"):
        boxes.decode(a, a, (0.1, 0.1, 0.2, 0.0))
    with pytest.raises(ValueError, match="positive width"):
        boxes.encode(np.array([[0.0, 0.0, 0.0, 1.0]]), a)


# ---------------------------------------------------------------- NMS
@FAST
@given(nms_inputs(), st.booleans())
def test_nms_properties(inputs: tuple, per_class: bool) -> None:
    b, scores, cls, thr = inputs
    class_ids = cls if per_class else None
    keep = reference.nms(b, scores, thr, class_ids=class_ids)
    n = len(b)
    same = cls[:, None] == cls[None, :] if per_class else np.ones((n, n), dtype=bool)
    # a subset, without repeats, by descending score (ties in input order)
    assert keep.dtype == np.int64
    assert len(set(keep.tolist())) == len(keep) and np.all((keep >= 0) & (keep < n))
    assert np.all(np.diff(scores[keep]) <= 0)
    order = np.argsort(-scores, kind="stable")
    assert keep.tolist() == [i for i in order if i in set(keep.tolist())]
    iou = boxes.box_iou(b, b)
    # no kept pair that the rule would suppress
    kk = np.ix_(keep, keep)
    off_diag = ~np.eye(len(keep), dtype=bool)
    assert not np.any((iou[kk] >= thr) & same[kk] & off_diag)
    # every dropped box is suppressed by a kept box ranked before it
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    for j in set(range(n)) - set(keep.tolist()):
        assert any(rank[i] < rank[j] and same[i, j] and iou[i, j] >= thr for i in keep), j


@FAST
@given(nms_inputs(), st.integers(1, 6))
def test_nms_topk_keeps_only_the_best(inputs: tuple, topk: int) -> None:
    b, scores, cls, thr = inputs
    keep = reference.nms(b, scores, thr, topk=topk, class_ids=cls)
    best = np.argsort(-scores, kind="stable")[:topk]
    assert set(keep.tolist()) <= set(best.tolist())
    full = reference.nms(b[best], scores[best], thr, class_ids=cls[best])
    assert keep.tolist() == best[full].tolist()


def test_nms_suppresses_at_exactly_the_threshold() -> None:
    b = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.25]])  # IoU exactly 0.5
    s = np.array([0.9, 0.8])
    assert reference.nms(b, s, 0.5).tolist() == [0]
    assert reference.nms(b, s, np.nextafter(0.5, 1)).tolist() == [0, 1]
    assert reference.nms(b, s, 0.5, class_ids=[0, 1]).tolist() == [0, 1]


def test_nms_hand_example() -> None:
    b = np.array([[0, 0, 1, 1], [0, 0, 1, 0.9], [0.1, 0, 1, 1], [2, 2, 3, 3], [0, 0, 1, 1]])
    s = np.array([0.5, 0.9, 0.4, 0.3, 0.5])
    # 1 (0.9) suppresses 0, 2 and 4 (IoU 0.9, 0.81 / 0.99, 0.9); 3 is alone
    assert reference.nms(b, s, 0.5).tolist() == [1, 3]
    # at 0.95 nothing overlaps that much except the identical 0 and 4 (tie: 0 first)
    assert reference.nms(b, s, 0.95).tolist() == [1, 0, 2, 3]
    assert reference.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_nms_rejects_mismatched_scores() -> None:
    with pytest.raises(ValueError, match="scores"):
        reference.nms(np.zeros((3, 4)), np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="class_ids"):
        reference.nms(np.zeros((3, 4)), np.zeros(3), 0.5, class_ids=[0, 1])


# ---------------------------------------------------------------- no mutation
@FAST
@given(box_pairs(), nms_inputs())
def test_inputs_are_not_mutated(pair: tuple[np.ndarray, np.ndarray], inputs: tuple) -> None:
    gt, anchors = pair
    b, scores, cls, thr = inputs
    args = [gt, anchors, b, scores, cls]
    copies = [x.copy() for x in args]
    boxes.corner_to_center(gt)
    boxes.center_to_corner(gt)
    boxes.box_area(gt)
    boxes.box_iou(gt, anchors)
    boxes.decode(boxes.encode(gt, anchors), anchors)
    reference.nms(b, scores, thr, topk=3, class_ids=cls)
    for x, c in zip(args, copies):
        np.testing.assert_array_equal(x, c)


def test_reference_decoders_do_not_mutate() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
    loc = rng.normal(size=(2, 20)).astype(np.float32)
    anchors = np.tile(np.array([[0.1, 0.1, 0.6, 0.6]], np.float32), (1, 5, 1))
    copies = [logits.copy(), loc.copy(), anchors.copy()]
    out = reference.detection_output(logits, loc, anchors, keep_topk=7)
    assert out.shape == (2, 7, 6) and out.dtype == np.float32
    for x, c in zip([logits, loc, anchors], copies):
        np.testing.assert_array_equal(x, c)


# ---------------------------------------------------------------- MultiBoxDetection reference
def test_multibox_detection_hand_example() -> None:
    anchors = np.array([[[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.36], [0.5, 0.5, 1.0, 1.0]]])
    # classes: background, A, B; anchor 2 ties A and B -> A (the lower id)
    prob = np.array([[[0.1, 0.2, 0.2], [0.6, 0.7, 0.4], [0.3, 0.1, 0.4]]])
    loc = np.zeros((1, 12))
    loc[0, 8:] = [1.0, 0.0, 0.0, 0.0]  # anchor 2 moves right by 0.1 * 0.5, then clipped
    (det,) = reference.multibox_detection(prob, loc, anchors, nms_threshold=0.5)
    np.testing.assert_allclose(det, [[0, 0.7, 0.0, 0.0, 0.4, 0.36],
                                     [0, 0.4, 0.55, 0.5, 1.0, 1.0]])
    # anchor 0 would survive a threshold above IoU 0.9
    (det,) = reference.multibox_detection(prob, loc, anchors, nms_threshold=0.95)
    assert det[:, 1].tolist() == [0.7, 0.6, 0.4]
    # a score equal to the threshold is kept
    (det,) = reference.multibox_detection(prob, loc, anchors, threshold=0.7)
    assert det[:, 1].tolist() == [0.7]


def test_detection_output_pads_and_empty_image() -> None:
    logits = np.zeros((2, 3, 3), np.float32)
    logits[0, :, 1] = 5.0    # image 0: three confident class-0 boxes
    logits[1, :, 0] = 20.0   # image 1: all background
    anchors = np.array([[[0, 0, 0.2, 0.2], [0.4, 0.4, 0.6, 0.6], [0.8, 0.8, 1, 1]]], np.float32)
    out = reference.detection_output(logits, np.zeros((2, 12), np.float32), anchors, keep_topk=5)
    assert out.shape == (2, 5, 6)
    np.testing.assert_array_equal(out[0, :3, 0], 0)
    np.testing.assert_allclose(out[0, :3, 2:], anchors[0])
    np.testing.assert_array_equal(out[0, 3:], -1)
    np.testing.assert_array_equal(out[1], -1)
    assert reference.detection_output(logits, np.zeros((2, 12)), anchors, keep_topk=2).shape == (2, 2, 6)
