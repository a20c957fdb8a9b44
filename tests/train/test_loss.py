"""SSDMultiBoxLoss against a NumPy computation; autograd and hybridization."""
from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from symbol.boxes import softmax
from train.loss import SSDMultiBoxLoss
from train.targets import SSDTargetGenerator

# batch of 2 images, 5 anchors, 2 foreground classes
CLS_PREDS = np.array([[[2.0, 0.5, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.5, 0.5, 0.5]],
                      [[0.0, 0.0, 0.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 2.0, 0.0]]],
                     np.float32)
CLS_TARGET = np.array([[1, 0, -1, 0, 2], [-1, -1, -1, -1, -1]], np.float32)  # image 1 has no boxes
LOC_TARGET = np.zeros((2, 20), np.float32)
LOC_TARGET[0, :4] = [0.5, -0.2, 2.0, 0.1]
LOC_TARGET[0, 16:] = [-1.5, 0.3, 0.0, 0.7]
LOC_MASK = np.zeros((2, 20), np.float32)
LOC_MASK[0, :4] = LOC_MASK[0, 16:] = 1
BOX_PREDS = np.full((2, 20), 0.2, np.float32)


def _loss(loss, cls_preds=CLS_PREDS, box_preds=BOX_PREDS, cls_target=CLS_TARGET):
    out = loss(*(mx.nd.array(a) for a in (cls_preds, box_preds, cls_target, LOC_TARGET, LOC_MASK)))
    return [o.asnumpy() for o in out]


def _numpy_loss(selected, norm, lambd=1.0):
    logp = np.log(softmax(CLS_PREDS.astype(np.float64), axis=-1))
    tgt = np.maximum(CLS_TARGET, 0).astype(int)
    ce = -np.take_along_axis(logp, tgt[..., None], -1)[..., 0]
    cls = (ce * selected).sum(1) / norm
    d = np.abs(BOX_PREDS - LOC_TARGET).astype(np.float64)
    sl1 = np.where(d < 1, 0.5 * d ** 2, d - 0.5)
    box = (sl1 * LOC_MASK).sum(1) / norm
    return cls + lambd * box, cls, box


@pytest.mark.parametrize("normalization, norm", [("positives", 2), ("valid", 4)])
def test_equals_numpy_without_mining(normalization, norm):
    # 2 positives, 2 negatives, anchor 2 and image 1 ignored
    out = _loss(SSDMultiBoxLoss(negative_mining_ratio=0, lambd=0.5, normalization=normalization))
    selected = (CLS_TARGET >= 0).astype(np.float64)
    for got, want in zip(out, _numpy_loss(selected, norm, lambd=0.5)):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert out[0][1] == 0  # the image without boxes contributes nothing


def test_mining_in_loss_keeps_highest_loss_negatives():
    # ratio 0.5: 2 positives -> 1 negative: anchor 3 (bg logit 0 vs 3) beats anchor 1
    out = _loss(SSDMultiBoxLoss(negative_mining_ratio=0.5, normalization="valid"))
    selected = np.array([[1, 0, 0, 1, 1], [0] * 5], np.float64)
    for got, want in zip(out, _numpy_loss(selected, 3)):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # ratio 3 keeps both negatives: same as no mining
    np.testing.assert_allclose(_loss(SSDMultiBoxLoss(negative_mining_ratio=3))[0],
                               _loss(SSDMultiBoxLoss(negative_mining_ratio=0))[0], rtol=1e-6)


def test_no_boxes_at_all_is_finite_zero():
    cls_target = -np.ones_like(CLS_TARGET)
    loss = SSDMultiBoxLoss()
    out = loss(*(mx.nd.array(a) for a in (CLS_PREDS, BOX_PREDS, cls_target, np.zeros_like(LOC_TARGET),
                                          np.zeros_like(LOC_MASK))))
    for o in out:
        assert np.all(np.isfinite(o.asnumpy())) and not o.asnumpy().any()


def test_hybridized_equals_imperative():
    loss = SSDMultiBoxLoss(negative_mining_ratio=0.5)
    ref = _loss(loss)
    loss.hybridize()
    for a, b in zip(ref, _loss(loss)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_one_sgd_step_decreases_loss_with_generated_targets():
    rng = np.random.default_rng(0)
    anchors = np.array([[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1], [.5, .5, 1, 1],
                        [.1, .1, .6, .6], [.6, .6, .9, .9]], np.float32)
    labels = mx.nd.array([[[0, 0, 0, .45, .45], [1, .7, .7, .8, .8]]])
    cls_p = mx.gluon.Parameter("cls", shape=(1, 6, 3), init=mx.init.Normal(1.0))
    box_p = mx.gluon.Parameter("box", shape=(1, 24), init=mx.init.Normal(1.0))
    for p in (cls_p, box_p):
        p.initialize(ctx=mx.cpu())
        p.set_data(mx.nd.array(rng.normal(size=p.shape)))
    trainer = mx.gluon.Trainer({"cls": cls_p, "box": box_p}, "sgd", {"learning_rate": 0.1})
    targets = SSDTargetGenerator()
    loss = SSDMultiBoxLoss()
    targets.hybridize()
    loss.hybridize()

    def step():
        with mx.autograd.record():
            loc_t, loc_m, cls_t = targets(mx.nd.array(anchors[None]), labels, cls_p.data())
            total, _, _ = loss(cls_p.data(), box_p.data(), cls_t, loc_t, loc_m)
        total.backward()
        return float(total.sum().asscalar())

    before = step()
    assert np.abs(cls_p.grad().asnumpy()).sum() > 0 and np.abs(box_p.grad().asnumpy()).sum() > 0
    trainer.step(1)
    after = step()
    assert np.isfinite(before) and after < before


def test_invalid_arguments():
    with pytest.raises(ValueError, match="normalization"):
        SSDMultiBoxLoss(normalization="batch")
    with pytest.raises(ValueError, match="lambd"):
        SSDMultiBoxLoss(lambd=-1)
