"""SSDTargetGenerator (MultiBoxTarget) against hand-computed cases and the NumPy oracle."""
from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from symbol.boxes import box_iou, encode
from train.targets import SSDTargetGenerator, match_and_encode, match_anchors, mine_hard_negatives

# Six anchors; GT0 overlaps anchor 0 (IoU 0.81) and anchor 4 (0.3712), GT1 is a
# small box inside anchor 5 (IoU 1/9) and anchor 3 (0.04).
ANCHORS = np.array([[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1], [.5, .5, 1, 1],
                    [.1, .1, .6, .6], [.6, .6, .9, .9]], np.float32)
LABELS = np.array([[0, 0, 0, .45, .45], [1, .7, .7, .8, .8], [-1, -1, -1, -1, -1]], np.float32)


def _targets(anchors, labels, cls_preds, **kwargs):
    """Run the generator on one batch; cls_preds (B, N, C+1). Returns NumPy arrays."""
    gen = SSDTargetGenerator(**kwargs)
    out = gen(mx.nd.array(anchors[None]), mx.nd.array(labels), mx.nd.array(cls_preds))
    return [o.asnumpy() for o in out]


def test_hand_computed_matching_and_encoding():
    iou = box_iou(ANCHORS, LABELS[:2, 1:])
    np.testing.assert_allclose(iou[[0, 4, 5, 3], [0, 0, 1, 1]], [.81, .1225 / .33, 1 / 9, .04], rtol=1e-5)
    cls_preds = np.zeros((1, 6, 3), np.float32)
    loc_t, loc_m, cls_t = _targets(ANCHORS, LABELS[None], cls_preds, negative_mining_ratio=3)
    # anchor 0 <- GT0 (0.81); anchor 5 <- GT1 only through best match per GT (IoU 1/9 < 0.5);
    # anchor 4 (0.37) is not matched. 2 positives * 3 = 6 negatives wanted, 4 available.
    np.testing.assert_array_equal(cls_t[0], [1, 0, 0, 0, 0, 2])
    expected = np.zeros((6, 4), np.float32)
    expected[0] = [(.225 - .25) / .5 / .1, (.225 - .25) / .5 / .1, np.log(.9) / .2, np.log(.9) / .2]
    expected[5] = [0, 0, np.log(1 / 3) / .2, np.log(1 / 3) / .2]
    np.testing.assert_allclose(expected[[0, 5]], encode(LABELS[:2, 1:], ANCHORS[[0, 5]]), rtol=1e-5)
    np.testing.assert_allclose(loc_t[0].reshape(6, 4), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loc_m[0].reshape(6, 4), np.repeat([[1], [0], [0], [0], [0], [1]], 4, axis=1))


def test_hard_negatives_ranked_by_background_probability_of_logits():
    # ratio 1: 2 positives -> 2 negatives of the 4 candidates (anchors 1-4), the two with the
    # lowest softmax background probability. Anchor 2 has the lowest raw background logit
    # but also a low foreground logit; anchors 3 and 4 have high foreground logits.
    cls_preds = np.zeros((1, 6, 3), np.float32)
    cls_preds[0, 2] = [-1.0, -3.0, -3.0]   # bg prob ~0.79
    cls_preds[0, 3] = [0.0, 2.0, 0.0]      # bg prob ~0.11
    cls_preds[0, 4] = [0.0, 0.0, 1.5]      # bg prob ~0.17
    _, _, cls_t = _targets(ANCHORS, LABELS[None], cls_preds, negative_mining_ratio=1)
    np.testing.assert_array_equal(cls_t[0], [1, -1, -1, 0, 0, 2])
    # the oracle agrees
    loc_o, _, cls_o = match_and_encode(ANCHORS, LABELS[:2, 1:], LABELS[:2, 0])
    _, max_iou = match_anchors(ANCHORS, LABELS[:2, 1:])
    np.testing.assert_array_equal(mine_hard_negatives(cls_o, cls_preds[0], max_iou, ratio=1), cls_t[0])


def test_negative_mining_thresh_ignores_near_misses():
    anchors = np.array([[0, 0, 1, 1], [0, 0, .3, 1], [0, 0, .2, .2], [.8, .8, 1, 1], [.7, .7, 1, 1]], np.float32)
    labels = np.array([[[0, 0, 0, 1, 1]]], np.float32)
    cls_preds = np.zeros((1, 5, 2), np.float32)
    # anchor 1 has IoU 0.3: not a candidate when negative_mining_thresh is 0.25
    _, _, cls_t = _targets(anchors, labels, cls_preds, negative_mining_thresh=.25)
    np.testing.assert_array_equal(cls_t[0], [1, -1, 0, 0, 0])
    # with 0.5 it is; ties in probability keep anchor order, so anchor 4 is left out
    _, _, cls_t = _targets(anchors, labels, cls_preds, negative_mining_thresh=.5)
    np.testing.assert_array_equal(cls_t[0], [1, 0, 0, 0, -1])


def test_bipartite_resolves_shared_best_anchor():
    # both GTs prefer anchor 0; GT0 (IoU 1.0) takes it, GT1 falls back to anchor 1
    anchors = np.array([[0, 0, .4, .4], [0, 0, .3, .3], [.5, .5, .9, .9]], np.float32)
    for order in ([0, 1], [1, 0]):
        labels = np.array([[0, 0, 0, .4, .4], [1, 0, 0, .35, .35]], np.float32)[order]
        _, _, cls_t = _targets(anchors, labels[None], np.zeros((1, 3, 3), np.float32), negative_mining_ratio=0)
        np.testing.assert_array_equal(cls_t[0], [1, 2, 0])
        np.testing.assert_array_equal(match_and_encode(anchors, labels[:, 1:], labels[:, 0])[2], [1, 2, 0])


def test_threshold_is_strict():
    anchors = np.array([[0, 0, 1, 1], [0, 0, .5, 1], [0, 0, .25, .25]], np.float32)
    labels = np.array([[[0, 0, 0, 1, 1]]], np.float32)
    _, _, cls_t = _targets(anchors, labels, np.zeros((1, 3, 2), np.float32), negative_mining_ratio=0)
    np.testing.assert_array_equal(cls_t[0], [1, 0, 0])  # anchor 1: IoU exactly 0.5, not matched


def test_image_without_boxes_gets_no_positives_and_no_negatives():
    labels = -np.ones((2, 3, 5), np.float32)
    labels[1, 0] = LABELS[0]
    for ratio in (0, 3):
        loc_t, loc_m, cls_t = _targets(ANCHORS, labels, np.zeros((2, 6, 3), np.float32), negative_mining_ratio=ratio)
        np.testing.assert_array_equal(cls_t[0], -1)  # every anchor ignored, even without mining
        assert not loc_m[0].any() and not loc_t[0].any()
        assert cls_t[1, 0] == 1
    np.testing.assert_array_equal(match_and_encode(ANCHORS, np.zeros((0, 4)), np.zeros(0))[2], -1)


def test_padding_row_first_hides_later_rows():
    labels = np.array([[[-1, -1, -1, -1, -1], [0, 0, 0, .45, .45]]], np.float32)
    _, _, cls_t = _targets(ANCHORS, labels, np.zeros((1, 6, 3), np.float32))
    np.testing.assert_array_equal(cls_t[0], -1)


def _random_case(rng, n_anchors, n_gt, pad):
    def boxes(k):
        xy = rng.uniform(0, .7, (k, 2))
        wh = rng.uniform(.05, .5, (k, 2))
        return np.concatenate([xy, np.minimum(xy + wh, 1)], axis=1).astype(np.float32)
    anchors = boxes(n_anchors)
    gt = boxes(n_gt)
    cls = rng.integers(0, 4, n_gt).astype(np.float32)
    labels = np.concatenate([np.concatenate([cls[:, None], gt], 1), -np.ones((pad, 5), np.float32)])
    return anchors, gt, cls, labels


@pytest.mark.parametrize("seed", range(25))
def test_multibox_target_matches_oracle(seed):
    rng = np.random.default_rng(seed)
    anchors, gt, cls, labels = _random_case(rng, int(rng.integers(5, 40)), int(rng.integers(1, 5)), 2)
    logits = rng.normal(size=(1, len(anchors), 5)).astype(np.float32)
    loc_t, loc_m, cls_t = _targets(anchors, labels[None], logits, negative_mining_ratio=0)
    loc_o, mask_o, cls_o = match_and_encode(anchors, gt, cls)
    np.testing.assert_array_equal(cls_t[0], cls_o)
    np.testing.assert_array_equal(loc_m[0], mask_o.ravel())
    np.testing.assert_allclose(loc_t[0], loc_o.ravel(), rtol=1e-4, atol=1e-4)
    # with hard negative mining
    _, _, cls_t = _targets(anchors, labels[None], logits, negative_mining_ratio=3, negative_mining_thresh=.5)
    _, max_iou = match_anchors(anchors, gt)
    mined = mine_hard_negatives(cls_o, logits[0], max_iou, ratio=3, thresh=.5)
    np.testing.assert_array_equal(cls_t[0], mined)
    n_pos = int((cls_o > 0).sum())
    n_cand = int(((cls_o == 0) & (max_iou < .5)).sum())
    assert int((cls_t[0] == 0).sum()) == min(3 * n_pos, n_cand)


def test_hybridized_equals_imperative_and_no_gradient_to_predictions():
    rng = np.random.default_rng(7)
    anchors, _, _, labels = _random_case(rng, 20, 3, 1)
    logits = mx.nd.array(rng.normal(size=(1, 20, 4)))
    args = (mx.nd.array(anchors[None]), mx.nd.array(labels[None]))
    gen = SSDTargetGenerator()
    ref = [o.asnumpy() for o in gen(*args, logits)]
    gen.hybridize()
    logits.attach_grad()
    with mx.autograd.record():
        out = gen(*args, logits)
        s = sum(o.sum() for o in out)
    s.backward()
    for a, b in zip(ref, out):
        np.testing.assert_array_equal(a, b.asnumpy())
    assert not logits.grad.asnumpy().any()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="overlap_threshold"):
        SSDTargetGenerator(overlap_threshold=0)
    with pytest.raises(ValueError, match="variances"):
        SSDTargetGenerator(variances=(.1, .1, .2))
    with pytest.raises(ValueError, match="entry 1"):
        match_and_encode(ANCHORS, LABELS[:2, 1:], [0, -1])
