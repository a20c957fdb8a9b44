"""The graph's decoding transcribed in NumPy: the oracle of :class:`symbol.detection.DetectionOutput`.

Used by the tests only (the network decodes in the graph). Every function
accepts array-likes and never mutates its inputs.

Behaviour of ``mx.nd.contrib.MultiBoxDetection`` (MXNet 1.9.1, CPU), checked
by experiment and reproduced by :func:`multibox_detection`:

- each anchor takes its best foreground class, the lowest class id on a tie;
- an anchor is dropped when that score is ``< threshold`` (equal is kept);
- survivors are sorted by descending score, only the best ``nms_topk`` are
  kept; here exact ties keep anchor order (a stable sort), which MXNet's
  sorts do not promise: with exactly equal scores the graph may keep another
  of the tied boxes (real networks' scores practically never tie);
- greedy NMS suppresses a box when its IoU with a kept higher-ranked box is
  ``>= nms_threshold`` (not ``>``: an IoU of exactly the threshold suppresses),
  among boxes of the same class unless ``force_suppress``; IoU is computed on
  the clipped boxes and is 0 when the union is empty;
- with ``nms_threshold`` outside ``(0, 1]`` nothing is sorted or suppressed.

(``mx.nd.contrib.box_nms``, by contrast, suppresses only at IoU ``>``
``overlap_thresh`` and keeps only scores ``>`` its ``valid_thresh``, as
GluonCV's and mmdetection's (mmcv's) NMS do: :func:`gluoncv_detection` and
:func:`mmdet_detection` transcribe those two detectors' decoding.)
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .boxes import VARIANCES, _as_float, _boxes, box_iou, decode, softmax

__all__ = ["MMDET_WH_CLAMP", "caffe_detection_output", "detection_output", "gluoncv_detection", "mmdet_detection",
           "multibox_detection", "nms"]

#: mmdetection's DeltaXYWHBBoxCoder clamps the scaled log-size offsets at ``|log(16 / 1000)|``
#: (written out again: the reference does not take the graph's constants).
MMDET_WH_CLAMP = float(np.abs(np.log(16 / 1000)))


def nms(boxes: ArrayLike, scores: ArrayLike, iou_threshold: float, topk: int = -1,
        class_ids: Optional[ArrayLike] = None, strict: bool = False) -> np.ndarray:
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : (N, 4) corners
    scores : (N,)
    iou_threshold : float
        A box is suppressed when its IoU with a kept, higher-ranked box is
        ``>= iou_threshold`` (MultiBoxDetection's rule).
    topk : int
        Only the ``topk`` best-scored boxes take part (the rest are dropped);
        -1 or any non-positive value: all.
    class_ids : (N,), optional
        When given, boxes suppress only boxes of the same class.
    strict : bool
        Suppress only at IoU ``> iou_threshold`` (box_nms's and mmcv's rule).

    Returns
    -------
    (K,) int64 indices of the kept boxes, by descending score; equal scores
    keep their input order.
    """
    b = _boxes(boxes, "boxes", ndim=2)
    s = _as_float(scores)
    if s.shape != (len(b),):
        raise ValueError(f"scores must have shape ({len(b)},), got {s.shape}")
    cls = None
    if class_ids is not None:
        cls = np.asarray(class_ids)
        if cls.shape != (len(b),):
            raise ValueError(f"class_ids must have shape ({len(b)},), got {cls.shape}")
    order = np.argsort(-s, kind="stable")
    if topk > 0:
        order = order[:topk]
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if not alive[pos]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        iou = box_iou(b[i:i + 1], b[rest])[0]
        over = iou > iou_threshold if strict else iou >= iou_threshold
        if cls is not None:
            over &= cls[rest] == cls[i]
        alive[pos + 1:] &= ~over
    return np.asarray(keep, dtype=np.int64)


def _decoder_inputs(cls_prob: ArrayLike, loc_preds: ArrayLike, anchors: ArrayLike
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoders' inputs checked and shaped: ``(prob (B, C + 1, N), loc (B, N, 4), anchors (N, 4))``."""
    prob = _as_float(cls_prob)
    if prob.ndim != 3 or prob.shape[1] < 2:
        raise ValueError(f"cls_prob must have shape (B, C + 1, N) with C >= 1, got {prob.shape}")
    batch, _, num = prob.shape
    loc = _as_float(loc_preds)
    if loc.shape != (batch, num * 4):
        raise ValueError(f"loc_preds must have shape ({batch}, {num * 4}), got {loc.shape}")
    anc = _boxes(anchors, "anchors").reshape(-1, 4)
    if len(anc) != num:
        raise ValueError(f"anchors must hold {num} boxes, got {len(anc)}")
    return prob, loc.reshape(batch, num, 4), anc


def multibox_detection(cls_prob: ArrayLike, loc_preds: ArrayLike, anchors: ArrayLike,
                       threshold: float = 0.01, nms_threshold: float = 0.45, nms_topk: int = 400,
                       force_suppress: bool = False, variances: Sequence[float] = VARIANCES,
                       clip: bool = True) -> list[np.ndarray]:
    """What ``mx.nd.contrib.MultiBoxDetection`` computes, without its padding rows.

    Parameters
    ----------
    cls_prob : (B, C + 1, N)
        Class probabilities, background at index 0.
    loc_preds : (B, N * 4)
        Offsets ``(dx, dy, dw, dh)`` per anchor (see :func:`encode`).
    anchors : (1, N, 4) or (N, 4)
        Corners.
    threshold, nms_threshold, nms_topk, force_suppress, variances, clip
        As in MultiBoxDetection (see the module docstring for the exact rules).

    Returns
    -------
    One (K, 6) array per image, rows ``[class_id, score, xmin, ymin, xmax, ymax]``
    of the surviving detections, ``class_id`` in 0..C-1, sorted by descending
    score. MultiBoxDetection returns the same rows first and then rows whose
    class is -1 (suppressed or empty).
    """
    prob, loc, anc = _decoder_inputs(cls_prob, loc_preds, anchors)
    batch, _, num = prob.shape
    out = []
    for img in range(batch):
        fg = prob[img, 1:]
        cls = np.argmax(fg, axis=0)  # first maximum: the lowest class id wins a tie
        score = fg[cls, np.arange(num)]
        valid = np.flatnonzero(score >= threshold)
        boxes = decode(loc[img][valid], anc[valid], variances)
        if clip:
            boxes = np.clip(boxes, 0, 1)
        det = np.concatenate([cls[valid, None].astype(prob.dtype), score[valid, None], boxes], axis=1)
        if 0 < nms_threshold <= 1:
            keep = nms(boxes, score[valid], nms_threshold, topk=nms_topk,
                       class_ids=None if force_suppress else cls[valid])
            det = det[keep]
        out.append(det)
    return out


def caffe_detection_output(cls_prob: ArrayLike, loc_preds: ArrayLike, anchors: ArrayLike,
                           threshold: float = 0.01, nms_threshold: float = 0.45, nms_topk: int = 400,
                           force_suppress: bool = False,
                           variances: Sequence[float] = VARIANCES) -> list[np.ndarray]:
    """What Caffe SSD's DetectionOutput layer computes (share_location, CENTER_SIZE).

    Unlike :func:`multibox_detection`, every (anchor, class) pair scoring
    ``> threshold`` is a candidate; per class the ``nms_topk`` best go
    through greedy NMS that suppresses at IoU ``> nms_threshold`` (over all
    classes at once with ``force_suppress``), on the decoded boxes, not
    clipped.

    Returns
    -------
    One (K, 6) array per image, rows ``[class_id, score, xmin, ymin, xmax, ymax]``
    by descending score (stable), boxes not clipped; Caffe's ``keep_top_k``
    is the first rows.
    """
    prob, loc, anc = _decoder_inputs(cls_prob, loc_preds, anchors)
    batch, classes, num = prob.shape
    out = []
    for img in range(batch):
        boxes = decode(loc[img], anc, variances)
        cand = []
        for c in range(1, classes):
            idx = np.flatnonzero(prob[img, c] > threshold)
            idx = idx[np.argsort(-prob[img, c, idx], kind="stable")]
            if nms_topk > 0:
                idx = idx[:nms_topk]
            cand += [(c - 1, i) for i in idx]
        cand.sort(key=lambda ci: -prob[img, ci[0] + 1, ci[1]])
        kept: list[tuple[int, int]] = []
        for c, i in cand:
            rivals = [j for k, j in kept if force_suppress or k == c]
            if not rivals or box_iou(boxes[i:i + 1], boxes[rivals]).max() <= nms_threshold:
                kept.append((c, i))
        rows = [[c, prob[img, c + 1, i], *boxes[i]] for c, i in kept]
        out.append(np.asarray(rows, dtype=prob.dtype).reshape(-1, 6))
    return out


def _pairs(prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchor, class, score) of the (anchor, class) pairs of ``prob`` (N, C) scoring
    ``> threshold``, by descending score (stable in anchor-major order)."""
    anchor, cls = np.nonzero(prob > threshold)
    score = prob[anchor, cls]
    order = np.argsort(-score, kind="stable")
    return anchor[order], cls[order], score[order]


def gluoncv_detection(cls_prob: ArrayLike, loc_preds: ArrayLike, anchors: ArrayLike,
                      threshold: float = 0.01, nms_threshold: float = 0.45, nms_topk: int = 400,
                      force_suppress: bool = False, variances: Sequence[float] = VARIANCES) -> list[np.ndarray]:
    """What GluonCV's ``SSD`` computes in inference (MultiPerClassDecoder, then one box_nms).

    Every (anchor, class) pair scoring ``> threshold`` is a candidate; the
    ``nms_topk`` best of them over all classes go through greedy NMS that
    suppresses at IoU ``> nms_threshold`` among boxes of the same class (all
    boxes with ``force_suppress``), on the decoded boxes, not clipped.

    Parameters
    ----------
    cls_prob : (B, C + 1, N)
        Class probabilities, background at index 0.
    loc_preds : (B, N * 4)
    anchors : (1, N, 4) or (N, 4) corners

    Returns
    -------
    One (K, 6) array per image, rows ``[class_id, score, xmin, ymin, xmax, ymax]``
    by descending score, boxes not clipped; GluonCV's ``post_nms`` is the first rows.
    """
    prob, loc, anc = _decoder_inputs(cls_prob, loc_preds, anchors)
    batch, _, num = prob.shape
    out = []
    for img in range(batch):
        boxes = decode(loc[img], anc, variances)
        anchor, cls, score = _pairs(prob[img, 1:].T, threshold)
        if nms_topk > 0:
            anchor, cls, score = anchor[:nms_topk], cls[:nms_topk], score[:nms_topk]
        keep = nms(boxes[anchor], score, nms_threshold, class_ids=None if force_suppress else cls, strict=True)
        rows = np.concatenate([cls[keep, None].astype(prob.dtype), score[keep, None], boxes[anchor[keep]]], axis=1)
        out.append(rows.reshape(-1, 6))
    return out


def mmdet_detection(cls_prob: ArrayLike, loc_preds: ArrayLike, anchors: ArrayLike, levels: ArrayLike,
                    threshold: float = 0.02, nms_threshold: float = 0.45, nms_topk: int = 1000,
                    force_suppress: bool = False, variances: Sequence[float] = VARIANCES) -> list[np.ndarray]:
    """What mmdetection's ``SSDHead.predict_by_feat`` computes (mmdetection 3.x, and 2.x since
    2.18: ``filter_scores_and_topk``, ``delta2bbox``, ``batched_nms``).

    Per feature level, the (anchor, class) pairs scoring ``> threshold``, the
    ``nms_topk`` best of them (``nms_pre``); their boxes decoded with the
    scaled log-size offsets clamped at :data:`MMDET_WH_CLAMP` and clipped to
    the image; then greedy NMS over all levels that suppresses at IoU ``>
    nms_threshold`` among boxes of the same class (all with ``force_suppress``).

    Parameters
    ----------
    cls_prob : (B, C + 1, N)
        Class probabilities, background at index 0 (mmdetection's last channel,
        moved by the converter).
    loc_preds : (B, N * 4)
    anchors : (1, N, 4) or (N, 4) corners
    levels : (N,) or (1, N)
        The feature level of every anchor.

    Returns
    -------
    One (K, 6) array per image, rows ``[class_id, score, xmin, ymin, xmax, ymax]``
    by descending score, boxes clipped to [0, 1]; mmdetection's ``max_per_img``
    is the first rows.
    """
    prob, loc, anc = _decoder_inputs(cls_prob, loc_preds, anchors)
    batch, _, num = prob.shape
    lvl = np.asarray(levels).reshape(-1)
    if lvl.shape != (num,):
        raise ValueError(f"levels must hold {num} entries, got {lvl.shape}")
    v0, v1, v2, v3 = variances
    out = []
    for img in range(batch):
        picked = []
        for level in np.unique(lvl):
            idx = np.flatnonzero(lvl == level)
            anchor, cls, score = _pairs(prob[img, 1:][:, idx].T, threshold)
            if nms_topk > 0:
                anchor, cls, score = anchor[:nms_topk], cls[:nms_topk], score[:nms_topk]
            picked.append((idx[anchor], cls, score))
        anchor, cls, score = (np.concatenate(parts) for parts in zip(*picked))
        d = loc[img, anchor] * np.asarray([v0, v1, v2, v3], dtype=loc.dtype)
        d[:, 2:] = np.clip(d[:, 2:], -MMDET_WH_CLAMP, MMDET_WH_CLAMP)
        boxes = np.clip(decode(d, anc[anchor], (1.0, 1.0, 1.0, 1.0)), 0, 1)
        order = np.argsort(-score, kind="stable")
        keep = order[nms(boxes[order], score[order], nms_threshold,
                         class_ids=None if force_suppress else cls[order], strict=True)]
        rows = np.concatenate([cls[keep, None].astype(prob.dtype), score[keep, None], boxes[keep]], axis=1)
        out.append(rows.reshape(-1, 6))
    return out


def detection_output(cls_preds: ArrayLike, box_preds: ArrayLike, anchors: ArrayLike,
                     nms_thresh: float = 0.45, nms_topk: int = 400, keep_topk: int = 200,
                     thresh: float = 0.01, force_suppress: bool = False,
                     variances: Sequence[float] = VARIANCES, nms_mode: str = "multibox",
                     levels: Optional[ArrayLike] = None) -> np.ndarray:
    """Reference of ``symbol.detection.DetectionOutput``.

    Parameters
    ----------
    cls_preds : (B, N, C + 1)
        Class logits, background at index 0.
    box_preds : (B, N * 4)
        Offsets ``(dx, dy, dw, dh)`` per anchor.
    anchors : (1, N, 4)
        Corners.
    nms_thresh, nms_topk, keep_topk, thresh, force_suppress, variances, nms_mode
        As in :class:`symbol.detection.DetectionOutput`.
    levels : (N,), optional
        The feature level of every anchor (``nms_mode='mmdet'`` only).

    Returns
    -------
    (B, keep_topk, 6) rows ``[class_id, score, xmin, ymin, xmax, ymax]``: the
    first ``keep_topk`` detections of :func:`multibox_detection` (or of
    :func:`caffe_detection_output`, :func:`gluoncv_detection` or
    :func:`mmdet_detection` by ``nms_mode``; clipped corners, descending
    score), then rows of -1.
    """
    if keep_topk < 1:
        raise ValueError(f"keep_topk must be positive, got {keep_topk}")
    logits = _as_float(cls_preds)
    if logits.ndim != 3:
        raise ValueError(f"cls_preds must have shape (B, N, C + 1), got {logits.shape}")
    prob = np.transpose(softmax(logits, axis=-1), (0, 2, 1))
    if nms_mode in ("caffe", "gluoncv"):
        decoder = caffe_detection_output if nms_mode == "caffe" else gluoncv_detection
        dets = decoder(prob, box_preds, anchors, thresh, nms_thresh, nms_topk, force_suppress, variances)
        dets = [np.concatenate([d[:keep_topk, :2], np.clip(d[:keep_topk, 2:], 0, 1)], axis=1) for d in dets]
    elif nms_mode == "mmdet":
        if levels is None:
            raise ValueError("nms_mode 'mmdet' needs the anchors' levels")
        dets = mmdet_detection(prob, box_preds, anchors, levels, thresh, nms_thresh, nms_topk, force_suppress,
                               variances)
    else:
        dets = multibox_detection(prob, box_preds, anchors, threshold=thresh, nms_threshold=nms_thresh,
                                  nms_topk=nms_topk, force_suppress=force_suppress, variances=variances,
                                  clip=True)
    out = np.full((len(dets), keep_topk, 6), -1, dtype=prob.dtype)
    for img, det in enumerate(dets):
        det = det[:keep_topk]
        out[img, :len(det)] = det
    return out
