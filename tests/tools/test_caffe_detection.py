"""DetectionOutput(nms_mode='caffe') against symbol.boxes' reference and a direct transcription of
Caffe's DetectionOutput loop."""
from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from symbol import reference as ref
from symbol.boxes import VARIANCES
from symbol.detection import DetectionOutput


def caffe_detection_output(logits: np.ndarray, loc: np.ndarray, priors: np.ndarray, conf_thresh: float,
                           nms_thresh: float, top_k: int, keep_top_k: int) -> np.ndarray:
    """One image as weiliu89/caffe computes it: rows [class (0-based), score, x1, y1, x2, y2] by score.

    logits (N, C + 1), loc (N, 4), priors (N, 4) corners. Boxes are decoded
    without clipping; NMS per class on the top_k of each class.
    """
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = (priors[:, 0] + priors[:, 2]) / 2, (priors[:, 1] + priors[:, 3]) / 2
    cx = VARIANCES[0] * loc[:, 0] * pw + pcx
    cy = VARIANCES[1] * loc[:, 1] * ph + pcy
    w, h = np.exp(VARIANCES[2] * loc[:, 2]) * pw, np.exp(VARIANCES[3] * loc[:, 3]) * ph
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    rows = []
    for c in range(1, prob.shape[1]):
        idx = np.where(prob[:, c] > conf_thresh)[0]
        idx = idx[np.argsort(-prob[idx, c], kind="stable")][:top_k]
        kept: list[int] = []
        for i in idx:
            if all(_iou(boxes[i], boxes[j]) <= nms_thresh for j in kept):
                kept.append(i)
        rows += [[c - 1, prob[i, c], *boxes[i]] for i in kept]
    rows = sorted(rows, key=lambda r: -r[1])[:keep_top_k]
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def random_inputs(seed: int, n: int = 300, classes: int = 4):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.1, 1.1, (n, 2))
    size = rng.uniform(0.05, 0.6, (n, 2))
    priors = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    logits = (rng.standard_normal((n, classes + 1)) * 2.0).astype(np.float32)
    loc = rng.standard_normal((n, 4)).astype(np.float32)
    return logits, loc, priors


@pytest.mark.parametrize("seed,top_k,keep", [(0, 400, 200), (1, 20, 50), (2, -1, 30)])
@pytest.mark.parametrize("hybridize", [False, True])
def test_caffe_mode_equals_caffe(seed, top_k, keep, hybridize):
    logits, loc, priors = random_inputs(seed)
    block = DetectionOutput(nms_thresh=0.45, nms_topk=top_k, keep_topk=keep, thresh=0.05, nms_mode="caffe",
                            num_classes=4)
    if hybridize:
        block.hybridize()
    out = block(mx.nd.array(logits[None]), mx.nd.array(loc.reshape(1, -1)), mx.nd.array(priors[None]))
    out = out.asnumpy()[0]
    assert out.shape == (keep, 6)
    valid = out[out[:, 0] >= 0]
    assert np.all(out[len(valid):] == -1)
    expected = caffe_detection_output(logits, loc, priors, 0.05, 0.45, 300 if top_k < 0 else top_k, keep)
    expected[:, 2:] = np.clip(expected[:, 2:], 0, 1)  # clipped on output, after Caffe's NMS
    assert len(valid) == len(expected) > 10
    order = lambda d: d[np.lexsort((d[:, 2], -np.round(d[:, 1], 5), d[:, 0]))]  # noqa: E731
    np.testing.assert_allclose(order(valid), order(expected), atol=1e-5)
    want = ref.detection_output(logits[None], loc.reshape(1, -1), priors[None], **block.config)[0]
    np.testing.assert_allclose(order(valid), order(want[want[:, 0] >= 0]), atol=1e-5)
    assert np.all(want[len(valid):] == -1)


def test_caffe_mode_force_suppress_equals_reference():
    logits, loc, priors = random_inputs(4)
    block = DetectionOutput(nms_topk=30, keep_topk=60, thresh=0.05, force_suppress=True, nms_mode="caffe",
                            num_classes=4)
    block.hybridize()
    got = block(mx.nd.array(logits[None]), mx.nd.array(loc.reshape(1, -1)), mx.nd.array(priors[None]))
    want = ref.detection_output(logits[None], loc.reshape(1, -1), priors[None], **block.config)
    valid = got.asnumpy()[0][:, 0] >= 0
    assert valid.sum() == (want[0][:, 0] >= 0).sum() > 10
    np.testing.assert_allclose(got.asnumpy()[0][valid][:, 1:], want[0][valid][:, 1:], atol=1e-5)


def test_caffe_mode_keeps_several_classes_per_prior():
    """Where MultiBoxDetection keeps only each prior's best class, Caffe keeps every class above thresh."""
    logits = np.log(np.array([[0.1, 0.5, 0.4]], np.float32))
    priors = np.array([[0.2, 0.2, 0.6, 0.6]], np.float32)
    args = (mx.nd.array(logits[None]), mx.nd.zeros((1, 4)), mx.nd.array(priors[None]))
    caffe = DetectionOutput(thresh=0.3, keep_topk=5, nms_mode="caffe", num_classes=2)(*args).asnumpy()[0]
    multibox = DetectionOutput(thresh=0.3, keep_topk=5)(*args).asnumpy()[0]
    np.testing.assert_allclose(caffe[:2, :2], [[0, 0.5], [1, 0.4]], rtol=1e-5)
    assert (multibox[:, 0] >= 0).sum() == 1


def test_caffe_mode_without_detections():
    logits = np.zeros((1, 50, 3), np.float32)
    logits[..., 0] = 10.0  # everything is background
    _, loc, priors = random_inputs(3, n=50, classes=2)
    out = DetectionOutput(nms_mode="caffe", keep_topk=7)(mx.nd.array(logits), mx.nd.array(loc.reshape(1, -1)),
                                                        mx.nd.array(priors[None])).asnumpy()
    assert out.shape == (1, 7, 6) and np.all(out == -1)


def test_nms_mode_is_validated():
    with pytest.raises(ValueError, match="nms_mode must be one of"):
        DetectionOutput(nms_mode="fast")
