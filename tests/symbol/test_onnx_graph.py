"""symbol.onnx_graph: the ONNX decoding and preprocessing against the MXNet graph they replace.

Each decoding mode, with and without class-agnostic NMS and top-k, runs in ONNX
Runtime on the same predictions as :class:`symbol.detection.DetectionOutput`
(and :mod:`symbol.reference`): the rows must be equal, in the same order. The
corner cases of exactness are pinned separately: scores that tie, an IoU of
exactly the threshold (MultiBoxDetection suppresses it, box_nms keeps it), no
candidate at all, fewer candidate slots than ``keep_topk``.
"""
from __future__ import annotations

import itertools

import mxnet as mx
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from common.decoding import DecodeConfig  # noqa: E402
from symbol.detection import VARIANCES, DetectionOutput  # noqa: E402
from symbol.layers import Preprocess  # noqa: E402
from symbol.onnx_graph import GraphBuilder, add_preprocessing, decoding_model  # noqa: E402
from symbol.presets import Preprocessing  # noqa: E402
from symbol.reference import detection_output  # noqa: E402

MODES = ("multibox", "caffe", "gluoncv", "mmdet")
SIZES = (240, 150, 60)  # priors per feature level


def run_onnx_decoding(anchors, classes, decoding, logits, box, levels=None, variances=VARIANCES) -> np.ndarray:
    model = decoding_model(anchors, classes, decoding, variances, levels)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"cls_preds": logits, "box_preds": box})[0]


def run_mxnet(anchors, classes, decoding, logits, box, levels=None, variances=VARIANCES) -> np.ndarray:
    block = DetectionOutput(decoding, num_classes=classes, variances=variances)
    block.num_levels = None if levels is None else int(levels.max()) + 1
    block.initialize()
    args = [mx.nd.array(logits), mx.nd.array(box), mx.nd.array(anchors[None])]
    if decoding.nms_mode == "mmdet":
        args.append(mx.nd.array(levels[None]))
    return block(*args).asnumpy()


def random_case(seed: int, classes: int = 4, batch: int = 2):
    """Priors of three levels, logits with a few confident foreground pairs, offsets."""
    rng = np.random.default_rng(seed)
    n = sum(SIZES)
    centre = rng.uniform(0, 1, (n, 2))
    size = rng.uniform(0.05, 0.5, (n, 2))
    anchors = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    logits = rng.normal(0, 2, (batch, n, classes + 1)).astype(np.float32)
    logits[..., 0] += 2.0
    box = rng.normal(0, 1, (batch, n * 4)).astype(np.float32)
    levels = np.repeat(np.arange(len(SIZES)), SIZES)
    return anchors, logits, box, levels


@pytest.mark.parametrize("mode,force,topk", list(itertools.product(MODES, (False, True), (50, -1))))
def test_every_mode_equals_the_mxnet_graph(mode, force, topk):
    anchors, logits, box, levels = random_case(0)
    decoding = DecodeConfig(nms_mode=mode, force_suppress=force, nms_topk=topk, keep_topk=120, thresh=0.05,
                            nms_thresh=0.45)
    variances = (0.1, 0.15, 0.2, 0.25)  # distinct, so that a swapped variance shows
    ours = run_onnx_decoding(anchors, 4, decoding, logits, box, levels, variances)
    theirs = run_mxnet(anchors, 4, decoding, logits, box, levels, variances)
    assert ours.shape == theirs.shape == (2, 120, 6)
    np.testing.assert_array_equal(ours[..., 0], theirs[..., 0])  # classes, empty rows, order
    np.testing.assert_allclose(ours, theirs, atol=2e-6, rtol=0)
    reference = detection_output(logits, box, anchors[None], variances=variances, levels=levels,
                                 **decoding.to_dict())
    np.testing.assert_allclose(ours, reference, atol=2e-6, rtol=0)
    valid = ours[..., 0] >= 0
    assert valid.sum(axis=1).min() >= 20  # a real test: many detections per image
    assert np.all(np.diff(np.where(valid, ours[..., 1], -1), axis=1) <= 0)  # by descending score


def tied_logits(seed: int, num_anchors: int, classes: int = 3, batch: int = 2) -> np.ndarray:
    """Logits of 0 or -200 only: every probability is exactly 1, 1/2, 1/3 or 0 in any softmax,
    so equal scores are equal floats (ties), one prior may tie between two classes."""
    rng = np.random.default_rng(seed)
    logits = np.full((batch, num_anchors, classes + 1), -200.0, np.float32)
    kind = rng.integers(0, 5, (batch, num_anchors))
    first = rng.integers(1, classes + 1, (batch, num_anchors))
    second = first % classes + 1
    b, n = np.indices(kind.shape)
    for k, columns in enumerate(([first], [0, first], [first, second], [0, first, second], [0])):
        for col in columns:
            col = np.broadcast_to(col, kind.shape)
            logits[b[kind == k], n[kind == k], col[kind == k]] = 0.0
    return logits


@pytest.mark.parametrize("mode,force,topk", list(itertools.product(MODES, (False, True), (60, -1))))
def test_tied_scores_follow_the_stable_order(mode, force, topk):
    """Exact ties everywhere, cut by the top-k and keep_topk: the rows are symbol.reference's, whose
    sorts are stable (equal scores in prior order, class order in caffe mode), row for row.

    (MXNet's own operators do not promise an order among equal scores, and do not keep one:
    on these logits DetectionOutput disagrees with the reference, and so with this graph, about
    which of the tied boxes survive; real scores tie practically never.)"""
    anchors, _, box, levels = random_case(1)
    logits = tied_logits(1, len(anchors))
    decoding = DecodeConfig(nms_mode=mode, force_suppress=force, nms_topk=topk, keep_topk=150, thresh=0.2)
    ours = run_onnx_decoding(anchors, 3, decoding, logits, box, levels)
    reference = detection_output(logits, box, anchors[None], levels=levels, **decoding.to_dict())
    scores = ours[..., 1][ours[..., 0] >= 0]
    assert len(scores) >= 100 and len(np.unique(scores)) <= 3  # ties indeed
    np.testing.assert_array_equal(ours[..., 0], reference[..., 0])
    np.testing.assert_allclose(ours, reference, atol=2e-6, rtol=0)


@pytest.mark.parametrize("mode,suppressed", [("multibox", True), ("caffe", True), ("gluoncv", False),
                                             ("mmdet", False)])
def test_iou_exactly_at_the_threshold(mode, suppressed):
    """Two boxes of IoU exactly 0.5 (dyadic corners, zero offsets): MultiBoxDetection (multibox,
    caffe) suppresses at IoU >= 0.5, box_nms (gluoncv, mmdet) only above it."""
    anchors = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.25, 0.5], [0.5, 0.5, 1, 1]], np.float32)
    logits = np.log(np.array([[[0.1, 0.9], [0.2, 0.8], [0.9, 0.1]]], np.float32))
    box = np.zeros((1, 12), np.float32)
    decoding = DecodeConfig(nms_mode=mode, nms_thresh=0.5, keep_topk=5, thresh=0.5)
    levels = np.zeros(3, np.int64)
    ours = run_onnx_decoding(anchors, 1, decoding, logits, box, levels)
    np.testing.assert_allclose(ours, run_mxnet(anchors, 1, decoding, logits, box, levels), atol=1e-6, rtol=0)
    assert (ours[0, :, 0] >= 0).sum() == (1 if suppressed else 2)
    np.testing.assert_allclose(ours[0, 0], [0, 0.9, 0, 0, 0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize("mode,force,kept", [("multibox", False, 3), ("multibox", True, 3), ("caffe", False, 3),
                                              ("caffe", True, 1), ("gluoncv", False, 1), ("mmdet", True, 1)])
def test_score_exactly_at_the_threshold(mode, force, kept):
    """Scores of exactly 0.5 at a threshold of 0.5: MultiBoxDetection (multibox, caffe) keeps them,
    box_nms's and the pair candidates' ``>`` (caffe with force_suppress, gluoncv, mmdet) do not."""
    anchors = np.array([[0, 0, 0.25, 0.25], [0.5, 0.5, 0.75, 0.75], [0, 0.5, 0.25, 0.75], [0.5, 0, 0.75, 0.25]],
                       np.float32)
    logits = np.array([[[0, 0], [0, 1], [1, 0], [0, 0]]], np.float32)  # 0.5, 0.73, 0.27, 0.5
    box = np.zeros((1, 16), np.float32)
    decoding = DecodeConfig(nms_mode=mode, force_suppress=force, keep_topk=6, thresh=0.5)
    levels = np.zeros(4, np.int64)
    ours = run_onnx_decoding(anchors, 1, decoding, logits, box, levels)
    theirs = run_mxnet(anchors, 1, decoding, logits, box, levels)
    assert (ours[0, :, 0] >= 0).sum() == kept
    by_row = [rows[np.lexsort(rows.T[::-1])] for rows in (ours[0], theirs[0])]  # equal scores in any order
    np.testing.assert_allclose(*by_row, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_no_candidate_gives_empty_rows(mode):
    anchors, logits, box, levels = random_case(2)
    logits[..., 0] += 30.0  # background everywhere
    decoding = DecodeConfig(nms_mode=mode, keep_topk=10, thresh=0.3)
    ours = run_onnx_decoding(anchors, 4, decoding, logits, box, levels)
    np.testing.assert_array_equal(ours, np.full((2, 10, 6), -1, np.float32))


@pytest.mark.parametrize("mode,force", list(itertools.product(MODES, (False, True))))
def test_fewer_candidates_than_keep_topk(mode, force):
    """8 priors, 1 class, 50 rows asked: the rows past the candidates are empty."""
    rng = np.random.default_rng(3)
    anchors = np.concatenate([rng.uniform(0, 0.5, (8, 2)), rng.uniform(0.5, 1, (8, 2))], 1).astype(np.float32)
    logits = rng.normal(0, 2, (2, 8, 2)).astype(np.float32)
    box = rng.normal(0, 1, (2, 32)).astype(np.float32)
    levels = np.repeat([0, 1], 4)
    decoding = DecodeConfig(nms_mode=mode, force_suppress=force, nms_topk=3, keep_topk=50, thresh=0.0)
    ours = run_onnx_decoding(anchors, 1, decoding, logits, box, levels)
    theirs = run_mxnet(anchors, 1, decoding, logits, box, levels)
    assert ours.shape == (2, 50, 6) and (ours[..., 0] >= 0).sum() >= 2
    np.testing.assert_allclose(ours, theirs, atol=2e-6, rtol=0)


def test_mmdet_needs_levels():
    anchors, _, _, _ = random_case(0)
    with pytest.raises(ValueError, match="feature level"):
        decoding_model(anchors, 4, DecodeConfig(nms_mode="mmdet"), VARIANCES)
    with pytest.raises(ValueError, match="contiguous"):
        decoding_model(anchors, 4, DecodeConfig(nms_mode="mmdet"), VARIANCES, np.arange(len(anchors)) % 2)


@pytest.mark.parametrize("spec", [Preprocessing((104.0, 117.0, 123.0), (1.0, 1.0, 1.0), True),
                                  Preprocessing((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), False),
                                  Preprocessing((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), True),
                                  Preprocessing((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False)])
def test_preprocessing_equals_the_block(spec):
    g = GraphBuilder("pre/")
    out = add_preprocessing(g, "data", spec.mean, spec.std, spec.bgr)
    g.nodes.append(onnx.helper.make_node("Identity", [out], ["y"]))
    graph = onnx.helper.make_graph(
        g.nodes, "pre", [onnx.helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [2, 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3, 8, 8])], initializer=g.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 8, 8)).astype(np.float32)
    ours = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    block = Preprocess(spec)
    block.initialize()
    np.testing.assert_array_equal(ours, block(mx.nd.array(x)).asnumpy())
