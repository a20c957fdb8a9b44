"""The SSD multibox loss: softmax cross-entropy plus smooth L1 box regression."""
from __future__ import annotations

from mxnet.gluon import HybridBlock

__all__ = ["SSDMultiBoxLoss", "NORMALIZATIONS"]

#: Valid values of ``SSDMultiBoxLoss(normalization=...)``.
NORMALIZATIONS = ("positives", "valid")


class SSDMultiBoxLoss(HybridBlock):
    """SSD loss over targets from :class:`train.targets.SSDTargetGenerator`.

    ``cls_loss``: softmax cross-entropy over the selected anchors, those with
    ``cls_target >= 0`` (positives ``> 0`` and background ``0``; ``-1`` is
    ignored). With ``negative_mining_ratio > 0`` the background anchors are
    further limited, per image, to the ``ratio * positives`` of highest
    cross-entropy (hard negative mining, as in Caffe and GluonCV). On targets
    already mined by ``MultiBoxTarget`` with the same ratio this keeps every
    background anchor (its count is already at most ``ratio * positives``) and
    ranks the same way, so the two compose; ``0`` uses ``cls_target`` as given.

    ``box_loss``: Caffe's smooth L1 (sigma 1: ``0.5 x^2`` for ``|x| < 1``,
    ``|x| - 0.5`` otherwise) of ``box_preds - loc_target``, summed over the
    four offsets of each positive (``loc_mask``).

    Both are divided by one batch-wide normalizer, at least 1:

    - ``'positives'`` (Caffe's ``VALID`` over matches): the number of positive
      anchors in the batch;
    - ``'valid'`` (mxnet-ssd's ``SoftmaxOutput(normalization='valid')``): the
      number of selected anchors (positives plus negatives) in the batch.

    Parameters
    ----------
    negative_mining_ratio : float
        Negatives kept per positive; ``<= 0``: no mining in the loss.
    lambd : float
        Weight of the box loss in the total.
    normalization : ``'positives'`` or ``'valid'``

    ``hybrid_forward(cls_preds, box_preds, cls_target, loc_target, loc_mask)``:

    - cls_preds ``(B, N, C+1)`` logits, background at 0;
    - box_preds ``(B, N*4)`` (or ``(B, N, 4)``) offsets;
    - cls_target ``(B, N)``, loc_target and loc_mask ``(B, N*4)``.

    Returns ``(total, cls_loss, box_loss)``, each ``(B,)``: every image's share
    of the batch loss (already divided by the batch normalizer), so ``.sum()``
    is the batch loss and ``total.backward()`` its gradient. Targets carry no
    gradient.
    """

    def __init__(self, negative_mining_ratio: float = 3.0, lambd: float = 1.0,
                 normalization: str = "positives", **kwargs):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if lambd < 0:
            raise ValueError(f"lambd must be >= 0, got {lambd}")
        self._ratio = float(negative_mining_ratio)
        self._lambd = float(lambd)
        self._normalization = normalization

    def hybrid_forward(self, F, cls_preds, box_preds, cls_target, loc_target, loc_mask):
        cls_target = F.stop_gradient(cls_target)
        loc_target = F.stop_gradient(loc_target)
        loc_mask = F.stop_gradient(loc_mask)

        log_prob = F.log_softmax(cls_preds, axis=-1)
        ce = -F.pick(log_prob, F.relu(cls_target), axis=-1)  # (B, N); -1 rows picked at 0, masked below
        pos = cls_target > 0
        neg = cls_target == 0
        if self._ratio > 0:
            # rank background anchors by descending loss; others rank after them
            score = F.where(neg, F.stop_gradient(ce), F.ones_like(ce) * -1.0)
            rank = F.argsort(F.argsort(score, axis=1, is_ascend=False), axis=1)
            quota = F.sum(pos, axis=1, keepdims=True) * self._ratio
            neg = neg * F.broadcast_lesser(rank, quota)
        selected = pos + neg
        cls_loss = F.sum(ce * selected, axis=1)

        diff = F.reshape(box_preds, shape=(0, -1)) - F.reshape(loc_target, shape=(0, -1))
        box_loss = F.sum(F.smooth_l1(diff, scalar=1.0) * F.reshape(loc_mask, shape=(0, -1)), axis=1)

        count = pos if self._normalization == "positives" else selected
        norm = F.maximum(F.sum(count), 1.0)  # (1,)
        cls_loss = F.broadcast_div(cls_loss, norm)
        box_loss = F.broadcast_div(box_loss, norm)
        return cls_loss + self._lambd * box_loss, cls_loss, box_loss
