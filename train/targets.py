"""SSD training targets: anchor matching, box encoding, hard negative mining.

:class:`SSDTargetGenerator` wraps ``mx.nd.contrib.MultiBoxTarget``; the NumPy
functions below (:func:`match_anchors`, :func:`match_and_encode`,
:func:`mine_hard_negatives`) reproduce it and are the oracle it is tested
against.

Behaviour of ``MultiBoxTarget`` (MXNet 1.9.1, CPU), checked by experiment
(``tests/train/test_targets.py``):

Labels
    ``(B, M, 5+)`` rows ``[class_id, xmin, ymin, xmax, ymax, ...]``, corners
    normalized like the anchors; extra columns are ignored. Rows are read in
    order up to the first row whose ``class_id`` is ``-1``: padding must come
    last (a ``-1`` row first hides every row after it).
Matching
    1. Greedy bipartite matching: repeatedly take the (anchor, ground truth)
       pair of highest IoU among the anchors and ground truths not yet
       matched, while that IoU is ``> 1e-6``; ties go to the lowest anchor
       index. Every ground truth touching some anchor thus gets one anchor,
       even below ``overlap_threshold``; when two ground truths prefer the same
       anchor, the one with the higher IoU takes it and the other takes its
       next best anchor. A ground truth of zero area matches nothing.
    2. Each remaining anchor takes the ground truth of highest IoU when that
       IoU is strictly ``> overlap_threshold`` (an IoU of exactly 0.5 does not
       match).
Targets
    ``cls_target (B, N)``: ``class_id + 1`` for matched anchors, ``0`` for
    background, ``-1`` ignored. ``loc_target (B, N*4)``: the Caffe
    CENTER_SIZE encoding of the matched box (:func:`symbol.boxes.encode`),
    zeros elsewhere; ``loc_mask (B, N*4)``: 1 on the four entries of each
    matched anchor.
Hard negative mining (``negative_mining_ratio > 0``)
    ``cls_preds`` are *logits* ``(B, C+1, N)`` (class axis before anchors),
    background at class 0; the operator applies its own softmax. Candidates
    are the unmatched anchors whose best IoU with any ground truth is
    ``< negative_mining_thresh``; they are ranked by ascending background
    probability (so by descending cross-entropy against background; ties keep
    anchor order) and the first ``ratio * num_positives`` (all candidates when
    fewer) become background ``0``; every other unmatched anchor is ``-1``.
    With ``negative_mining_ratio <= 0`` every unmatched anchor is ``0``.
    ``minimum_negative_samples`` did not raise the count in our checks and is
    left at 0.
No ground truth
    An image without a valid label row gets ``cls_target == -1`` for every
    anchor, mining or not: it contributes no positives *and no negatives*, so
    a background-only image adds nothing to the loss.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from mxnet.gluon import HybridBlock
from numpy.typing import ArrayLike

from symbol.boxes import VARIANCES, box_iou, encode, softmax

__all__ = ["SSDTargetGenerator", "match_anchors", "match_and_encode", "mine_hard_negatives"]

#: IoU a pair must exceed to be matched by the bipartite stage (MultiBoxTarget's constant).
_MIN_OVERLAP = 1e-6


class SSDTargetGenerator(HybridBlock):
    """Training targets for SSD from anchors, padded labels and class predictions.

    Parameters
    ----------
    overlap_threshold : float
        An anchor not taken by the bipartite stage is matched to a ground truth
        with IoU strictly above this.
    negative_mining_ratio : float
        Mined negatives per positive; ``<= 0`` disables mining (all unmatched
        anchors are background).
    negative_mining_thresh : float
        Only anchors whose best IoU is below this may be mined as negatives.
    minimum_negative_samples : int
        Passed to ``MultiBoxTarget`` (see the module docstring).
    variances : four positive numbers of the box coder.

    ``hybrid_forward(anchors, labels, cls_preds)``:

    - anchors ``(1, N, 4)`` normalized corners,
    - labels ``(B, M, 5+)`` rows ``[class_id, xmin, ymin, xmax, ymax]``,
      padded at the end with ``-1`` rows,
    - cls_preds ``(B, N, C+1)`` logits (the SSD training output; no gradient
      flows through the targets).

    Returns ``(loc_target (B, N*4), loc_mask (B, N*4), cls_target (B, N))``.
    """

    def __init__(self, overlap_threshold: float = 0.5, negative_mining_ratio: float = 3.0,
                 negative_mining_thresh: float = 0.5, minimum_negative_samples: int = 0,
                 variances: Sequence[float] = VARIANCES, **kwargs):
        super().__init__(**kwargs)
        if not 0 < overlap_threshold <= 1:
            raise ValueError(f"overlap_threshold must be in (0, 1], got {overlap_threshold}")
        if not 0 <= negative_mining_thresh <= 1:
            raise ValueError(f"negative_mining_thresh must be in [0, 1], got {negative_mining_thresh}")
        if minimum_negative_samples < 0:
            raise ValueError(f"minimum_negative_samples must be >= 0, got {minimum_negative_samples}")
        v = tuple(float(x) for x in variances)
        if len(v) != 4 or not all(x > 0 for x in v):
            raise ValueError(f"variances must be 4 positive numbers, got {tuple(variances)}")
        self._kwargs = dict(overlap_threshold=float(overlap_threshold), ignore_label=-1,
                            negative_mining_ratio=float(negative_mining_ratio),
                            negative_mining_thresh=float(negative_mining_thresh),
                            minimum_negative_samples=int(minimum_negative_samples), variances=v)

    def hybrid_forward(self, F, anchors, labels, cls_preds):
        cls = F.stop_gradient(F.transpose(cls_preds, axes=(0, 2, 1)))
        loc_target, loc_mask, cls_target = F.contrib.MultiBoxTarget(
            F.stop_gradient(anchors), F.stop_gradient(labels), cls, **self._kwargs)
        return loc_target, loc_mask, cls_target


def match_anchors(anchors: ArrayLike, gt_boxes: ArrayLike,
                  overlap: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """MultiBoxTarget's matching: greedy bipartite, then IoU threshold.

    Parameters
    ----------
    anchors : (N, 4) corners
    gt_boxes : (M, 4) corners (M may be 0)
    overlap : an unmatched anchor takes its best ground truth when IoU ``> overlap``

    Returns
    -------
    matches : (N,) int64, the matched ground-truth index or -1
    max_iou : (N,) each anchor's best IoU with any ground truth (0 when M is 0)
    """
    anchors = np.asarray(anchors)
    gt = np.asarray(gt_boxes, dtype=anchors.dtype if np.issubdtype(anchors.dtype, np.floating) else None)
    if gt.size == 0:
        gt = gt.reshape(0, 4)
    iou = box_iou(anchors, gt)
    n, m = iou.shape
    matches = np.full(n, -1, dtype=np.int64)
    if m == 0:
        return matches, np.zeros(n, dtype=iou.dtype)
    work = iou.astype(np.float64)
    for _ in range(min(n, m)):
        # argmax over the flattened (anchor, gt) table: first maximum in
        # anchor-major order, i.e. the lowest anchor index on a tie.
        flat = int(np.argmax(work))
        a, g = divmod(flat, m)
        if work[a, g] <= _MIN_OVERLAP:
            break
        matches[a] = g
        work[a, :] = -1
        work[:, g] = -1
    best = np.argmax(iou, axis=1)
    best_iou = iou[np.arange(n), best]
    free = (matches < 0) & (best_iou > overlap)
    matches[free] = best[free]
    return matches, iou.max(axis=1)


def match_and_encode(anchors: ArrayLike, gt_boxes: ArrayLike, gt_labels: ArrayLike, overlap: float = 0.5,
                     variances: Sequence[float] = VARIANCES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's targets without hard negative mining (MultiBoxTarget with ratio 0).

    Parameters
    ----------
    anchors : (N, 4) corners
    gt_boxes : (M, 4) corners of the valid ground truths (no padding rows)
    gt_labels : (M,) class ids ``>= 0``
    overlap : threshold of the second matching stage

    Returns
    -------
    loc_target : (N, 4) encoded matched boxes, zeros for unmatched anchors
    loc_mask : (N, 4) 1 for matched anchors
    cls_target : (N,) ``label + 1`` for matched anchors, 0 otherwise; all -1
        when there is no ground truth (MultiBoxTarget's behaviour)
    """
    anchors = np.asarray(anchors)
    labels = np.asarray(gt_labels).reshape(-1)
    gt = np.asarray(gt_boxes, dtype=anchors.dtype).reshape(-1, 4)
    if len(labels) != len(gt):
        raise ValueError(f"gt_labels has {len(labels)} entries for {len(gt)} boxes")
    bad = np.flatnonzero(labels < 0)
    if bad.size:
        raise ValueError(f"gt_labels must be >= 0; entry {bad[0]} is {labels[bad[0]]}")
    n = len(anchors)
    matches, _ = match_anchors(anchors, gt, overlap)
    loc_target = np.zeros((n, 4), dtype=anchors.dtype)
    loc_mask = np.zeros((n, 4), dtype=anchors.dtype)
    if len(gt) == 0:
        return loc_target, loc_mask, np.full(n, -1, dtype=anchors.dtype)
    pos = matches >= 0
    cls_target = np.zeros(n, dtype=anchors.dtype)
    cls_target[pos] = labels[matches[pos]] + 1
    if pos.any():
        loc_target[pos] = encode(gt[matches[pos]], anchors[pos], variances)
        loc_mask[pos] = 1
    return loc_target, loc_mask, cls_target


def mine_hard_negatives(cls_target: ArrayLike, cls_logits: ArrayLike, max_iou: ArrayLike,
                        ratio: float = 3.0, thresh: float = 0.5) -> np.ndarray:
    """MultiBoxTarget's hard negative mining on one image's targets.

    Parameters
    ----------
    cls_target : (N,) from :func:`match_and_encode` (0 for every unmatched anchor)
    cls_logits : (N, C+1) class logits, background first
    max_iou : (N,) each anchor's best IoU (from :func:`match_anchors`)
    ratio : negatives per positive
    thresh : only anchors with ``max_iou < thresh`` are candidates

    Returns
    -------
    (N,) a new target: the ``ratio * positives`` candidates of lowest
    background probability stay 0, every other unmatched anchor becomes -1.
    """
    target = np.array(cls_target, copy=True)
    if np.all(target < 0):
        return target
    pos = target > 0
    cand = np.flatnonzero((target == 0) & (np.asarray(max_iou) < thresh))
    bg_prob = softmax(np.asarray(cls_logits, dtype=np.float64), axis=-1)[:, 0]
    order = cand[np.argsort(bg_prob[cand], kind="stable")]
    keep = order[:int(pos.sum() * ratio)]
    negatives = ~pos
    negatives[keep] = False
    target[negatives] = -1
    return target
