"""Detection metrics: Pascal VOC mAP in pure NumPy, COCO mAP through pycocotools.

Box format
----------
Boxes are corners ``(xmin, ymin, xmax, ymax)``. The evaluators take the
project's continuous, 0-based pixel corners (see :mod:`dataset.annotation`)
and, for VOC, use plain geometry: area ``(xmax - xmin) * (ymax - ymin)``
(``plus_one=False``).

The VOC devkit works on VOC's raw 1-based *inclusive* pixel indices and adds
one to every width and height (``xmax - xmin + 1``). Since the VOC reader
turns a raw box ``(x1, y1, x2, y2)`` into ``(x1 - 1, y1 - 1, x2, y2)``, the two
agree: devkit numbers on raw coordinates with ``plus_one=True`` equal plain
numbers on the project's coordinates with ``plus_one=False`` (exactly, for the
integer coordinates VOC uses). ``plus_one=True`` is there to score raw devkit
coordinates.

VOC scoring (``VOCevaldet.m`` of the devkit, and its Python port)
----------------------------------------------------------------
Per class, the detections of the whole set are ranked by descending score and
taken in turn; a detection is matched to the ground-truth box of its image
and class with the largest IoU (the first one on equal IoU). With that IoU
strictly above ``iou_thresh`` it is

- ignored (neither true nor false positive) when the box is ``difficult``
  (unless ``use_difficult``),
- a false positive when the box was matched already (even if another box
  overlaps it enough: the devkit does not look for a second choice),
- a true positive otherwise;

any other detection is a false positive. The number of positives is the
number of non-difficult boxes (all boxes with ``use_difficult``).

Because a box is only matched by detections of its own image, taking each
image's detections in descending score order gives the same assignment as the
devkit's loop over the whole set; this module does so, vectorized, in
:meth:`VOCMetric.update`. Equal scores are ranked in *insertion order*
(images in ``update`` order, detections in array order), i.e. every sort is
stable, as MATLAB's ``sort`` is (the Python port's ``np.argsort`` is not
stable, so it may order ties differently).

Ignored detections are left out of the precision/recall curves; this leaves
AP unchanged (they would only repeat the previous point).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from dataset.annotation import check_class_names
from common.fileio import PathLike

__all__ = ["COCOMetric", "COCOResult", "VOCMetric", "VOCResult", "box_iou", "match_image",
           "voc_ap"]

logger = logging.getLogger(__name__)


VOC_METRICS = ("voc07", "voc10")
# The 11 recall thresholds exactly as the devkit's Python port (and GluonCV,
# mxnet-ssd, detectron2) compute them: ``np.arange(0., 1.1, 0.1)``, so the
# 4th, 7th and 8th are 0.30000000000000004, 0.6000000000000001 and
# 0.7000000000000001. (MATLAB's ``0:0.1:1`` has 0.30000000000000004 but the
# nearest doubles of 0.6 and 0.7; the two differ only for a recall of
# exactly 0.6 or 0.7.)
_VOC07_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


# --------------------------------------------------------------------------- pure functions
def voc_ap(recall: ArrayLike, precision: ArrayLike, use_07_metric: bool = True) -> float:
    """Average precision of one class from its precision/recall curve, as the VOC devkit.

    Parameters
    ----------
    recall, precision : array-like, shape (K,)
        The curve over the ranked detections (recall non-decreasing). ``K``
        may be 0 (no detections: AP 0).
    use_07_metric : bool
        True: VOC2007's 11-point interpolation, the mean over ``t`` in
        ``0, 0.1, ..., 1`` of the largest precision at recall ``>= t`` (0
        where there is none). False: VOC2010+'s area under the precision
        envelope (precision made non-increasing by a running maximum from the
        right, recall padded with 0 and 1).

    Returns
    -------
    float
        In ``[0, 1]``.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if rec.shape != prec.shape:
        raise ValueError(f"recall and precision must have the same shape, got {rec.shape} and "
                         f"{prec.shape}")
    if use_07_metric:
        ap = 0.0
        for t in _VOC07_THRESHOLDS:  # the devkit's loop, summed in the same order
            above = rec >= t
            p = float(np.max(prec[above])) if above.any() else 0.0
            ap = ap + p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike, *, plus_one: bool) -> np.ndarray:
    """Pairwise IoU of two sets of corner boxes.

    Parameters
    ----------
    boxes_a : array-like, shape (N, 4)
    boxes_b : array-like, shape (M, 4)
        ``(xmin, ymin, xmax, ymax)``.
    plus_one : bool
        True: the devkit's inclusive pixel indices, width ``xmax - xmin + 1``
        (for raw VOC coordinates). False: continuous corners, width
        ``xmax - xmin`` (the project's convention).

    Returns
    -------
    np.ndarray, shape (N, M), float64
        Computed with the devkit's formula (intersection over the sum of the
        areas minus the intersection).
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    one = 1.0 if plus_one else 0.0
    iw = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2])
                    - np.maximum(a[:, None, 0], b[None, :, 0]) + one, 0.0)
    ih = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3])
                    - np.maximum(a[:, None, 1], b[None, :, 1]) + one, 0.0)
    inters = iw * ih
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    uni = area_a[:, None] + area_b[None, :] - inters
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inters / uni
    return np.where(uni > 0, iou, 0.0)


def _as_boxes(value: ArrayLike, name: str, n: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4 or (n is not None and arr.shape[0] != n):
        want = "(N, 4)" if n is None else f"({n}, 4)"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name}[{row}] is not finite: {arr[row].tolist()}")
    return arr


def _as_vector(value: ArrayLike, name: str, n: int, dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0:
        arr = arr.reshape(0)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if dtype is np.int64:
        if n and not (np.issubdtype(arr.dtype, np.integer)
                      or (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))):
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        return arr.astype(np.int64)
    if dtype is np.float64:
        arr = arr.astype(np.float64)
        bad = np.flatnonzero(np.isnan(arr))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] is NaN")
        return arr
    return arr.astype(dtype)


def match_image(det_boxes: ArrayLike, det_scores: ArrayLike, gt_boxes: ArrayLike,
                gt_difficult: Optional[ArrayLike] = None, *, det_labels: Optional[ArrayLike] = None,
                gt_labels: Optional[ArrayLike] = None, iou_thresh: float = 0.5,
                use_difficult: bool = False, plus_one: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The devkit's true/false positive assignment for the detections of one image.

    Parameters
    ----------
    det_boxes : array-like, shape (N, 4)
        Detections, corners ``(xmin, ymin, xmax, ymax)``.
    det_scores : array-like, shape (N,)
        Their scores (no NaN). Taken in descending order, ties in array order.
    gt_boxes : array-like, shape (M, 4)
        Ground-truth corners.
    gt_difficult : array-like of bool, shape (M,), optional
        Difficult flags (all False when omitted).
    det_labels : array-like of int, shape (N,), optional
    gt_labels : array-like of int, shape (M,), optional
        Class indices; a detection is only matched with boxes of its class.
        Give both or neither (neither: one class).
    iou_thresh : float
        A match needs IoU strictly greater than this.
    use_difficult : bool
        Count difficult boxes as ordinary ones.
    plus_one : bool
        Box geometry, see :func:`box_iou`.

    Returns
    -------
    tp, ignored : np.ndarray of bool, shape (N,)
        In the order of the input detections. ``tp[i]``: detection ``i`` is a
        true positive; ``ignored[i]``: it matched a difficult box and counts
        neither way. A detection that is neither is a false positive.
    """
    boxes = _as_boxes(det_boxes, "det_boxes")
    n = boxes.shape[0]
    scores = _as_vector(det_scores, "det_scores", n, np.float64)
    gts = _as_boxes(gt_boxes, "gt_boxes")
    m = gts.shape[0]
    difficult = (np.zeros(m, dtype=bool) if gt_difficult is None
                 else _as_vector(gt_difficult, "gt_difficult", m, bool))
    if (det_labels is None) != (gt_labels is None):
        raise ValueError("give both det_labels and gt_labels, or neither")
    if det_labels is not None:
        dl = _as_vector(det_labels, "det_labels", n, np.int64)
        gl = _as_vector(gt_labels, "gt_labels", m, np.int64)
    else:
        dl, gl = np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
    return _match(boxes, scores, dl, gts, gl, difficult, iou_thresh, use_difficult, plus_one)


def _match(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, gt_boxes: np.ndarray,
           gt_labels: np.ndarray, difficult: np.ndarray, iou_thresh: float, use_difficult: bool,
           plus_one: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_image` on validated arrays.

    The devkit's choice of box does not depend on which boxes are matched
    already, so the sequential loop reduces to: the box of largest IoU per
    detection, then a true positive for the first (highest-ranked) detection
    of each box and a false positive for the later ones.
    """
    n = boxes.shape[0]
    tp = np.zeros(n, dtype=bool)
    ignored = np.zeros(n, dtype=bool)
    if n == 0 or gt_boxes.shape[0] == 0:
        return tp, ignored
    order = np.argsort(-scores, kind="stable")
    iou = box_iou(boxes[order], gt_boxes, plus_one=plus_one)
    iou[labels[order][:, None] != gt_labels[None, :]] = -np.inf
    jmax = np.argmax(iou, axis=1)  # first box on equal IoU, as the devkit's max()
    ovmax = iou[np.arange(n), jmax]
    hit = ovmax > iou_thresh
    if not use_difficult:
        skip = hit & difficult[jmax]
        ignored[order[skip]] = True
        hit &= ~skip
    ranks = np.flatnonzero(hit)
    _, first = np.unique(jmax[ranks], return_index=True)
    tp[order[ranks[first]]] = True
    return tp, ignored


# --------------------------------------------------------------------------- VOC
def _json_float(value: float) -> Optional[float]:
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True)
class VOCResult:
    """The scores of a :class:`VOCMetric`.

    Attributes
    ----------
    metric : str
        ``"voc07"`` (11-point AP) or ``"voc10"`` (area AP).
    mAP : float
        Mean AP over the classes with at least one counted ground-truth box
        (NaN when there is none).
    ap : dict of str to float
        AP per class name; NaN for a class without counted ground truth.
    num_gt : dict of str to int
        Counted ground-truth boxes per class (non-difficult ones unless
        ``use_difficult``).
    num_det : dict of str to int
        Detections per class, including those ignored on difficult boxes.
    precision, recall : dict of str to np.ndarray, shape (K,)
        The curve of each class over its ranked detections, ignored ones
        left out (read-only arrays; empty for a class without detections;
        recall is NaN for a class without counted ground truth).
    no_ground_truth : tuple of str
        The classes left out of ``mAP``.
    iou_thresh : float
    """

    metric: str
    mAP: float
    ap: dict
    num_gt: dict
    num_det: dict
    precision: dict = field(repr=False)
    recall: dict = field(repr=False)
    no_ground_truth: tuple = ()
    iou_thresh: float = 0.5

    def to_dict(self) -> dict:
        """``{"metric": ..., "mAP": float, "ap": {class_name: float}}``, JSON-safe.

        A NaN (the AP of a class without ground truth, or ``mAP`` when no
        class has any) becomes ``None`` (JSON ``null``).
        """
        return {"metric": self.metric, "mAP": _json_float(self.mAP),
                "ap": {name: _json_float(v) for name, v in self.ap.items()}}


class VOCMetric:
    """Pascal VOC mAP over a set of images, fed one image at a time.

    Parameters
    ----------
    class_names : sequence of str
        Foreground classes; label ``i`` is ``class_names[i]``.
    iou_thresh : float
        A detection matches a box with IoU strictly above this (default 0.5).
    metric : {"voc07", "voc10"}
        11-point AP (VOC2007 test) or area AP (VOC2010 and later).
    use_difficult : bool
        Count difficult boxes as ordinary ones (default: detections on them
        are ignored and they are not counted as positives).
    plus_one : bool
        False (default): the project's continuous corners. True: raw VOC
        1-based inclusive coordinates with the devkit's ``+ 1`` widths; see
        the module docstring.

    Examples
    --------
    >>> m = VOCMetric(["cat", "dog"], metric="voc10")
    >>> m.update([[0, 0, 10, 10]], [1], [0.9], [[0, 0, 10, 10]], [1])
    >>> m.get().to_dict()
    {'metric': 'voc10', 'mAP': 1.0, 'ap': {'cat': None, 'dog': 1.0}}

    (The 11-point AP of a perfect class is ``1.0000000000000002``: the devkit
    sums eleven ``p / 11``, and so does :func:`voc_ap`.)
    """

    def __init__(self, class_names: Sequence[str], iou_thresh: float = 0.5, metric: str = "voc07",
                 use_difficult: bool = False, plus_one: bool = False) -> None:
        self.class_names = check_class_names(class_names)
        if metric not in VOC_METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(VOC_METRICS)}")
        if not 0.0 <= float(iou_thresh) < 1.0:
            raise ValueError(f"iou_thresh must be in [0, 1), got {iou_thresh}")
        self.metric = metric
        self.iou_thresh = float(iou_thresh)
        self.use_difficult = bool(use_difficult)
        self.plus_one = bool(plus_one)
        self.reset()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def reset(self) -> None:
        """Forget every image seen."""
        self.num_images = 0
        self._labels: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._tp: list[np.ndarray] = []
        self._ignored: list[np.ndarray] = []
        self._num_gt = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, pred_boxes: ArrayLike, pred_labels: ArrayLike, pred_scores: ArrayLike,
               gt_boxes: ArrayLike, gt_labels: ArrayLike, gt_difficult: Optional[ArrayLike] = None,
               image_id: Any = None) -> None:
        """Add the detections and the ground truth of ONE image.

        Parameters
        ----------
        pred_boxes : array-like, shape (N, 4)
            Detected corners ``(xmin, ymin, xmax, ymax)``, pixels.
        pred_labels : array-like of int, shape (N,)
            0-based foreground class indices; rows with a negative label (the
            ``-1`` padding of MXNet's detection output) are skipped.
        pred_scores : array-like, shape (N,)
            Confidences (no NaN). Equal scores rank in insertion order.
        gt_boxes : array-like, shape (M, 4)
            Ground-truth corners, same convention as ``pred_boxes``.
        gt_labels : array-like of int, shape (M,)
            0-based class indices; negative ones are padding and skipped.
        gt_difficult : array-like of bool, shape (M,), optional
            Difficult flags (all False when omitted).
        image_id : any, optional
            Named in error messages.

        Raises
        ------
        ValueError
            An array of the wrong shape (the message names it), a class index
            ``>= len(class_names)``, a NaN score or a non-finite box.
        """
        where = "" if image_id is None else f"image {image_id!r}: "
        try:
            boxes = _as_boxes(pred_boxes, "pred_boxes")
            n = boxes.shape[0]
            labels = _as_vector(pred_labels, "pred_labels", n, np.int64)
            scores = _as_vector(pred_scores, "pred_scores", n, np.float64)
            gts = _as_boxes(gt_boxes, "gt_boxes")
            m = gts.shape[0]
            gt_lab = _as_vector(gt_labels, "gt_labels", m, np.int64)
            difficult = (np.zeros(m, dtype=bool) if gt_difficult is None
                         else _as_vector(gt_difficult, "gt_difficult", m, bool))
            for name, lab in (("pred_labels", labels), ("gt_labels", gt_lab)):
                bad = np.flatnonzero(lab >= self.num_classes)
                if bad.size:
                    raise ValueError(f"{name}[{bad[0]}] = {lab[bad[0]]} is not a class index "
                                     f"(there are {self.num_classes} classes)")
        except ValueError as err:
            raise ValueError(f"{where}{err}") from None
        keep = labels >= 0
        if not keep.all():
            boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
        keep = gt_lab >= 0
        if not keep.all():
            gts, gt_lab, difficult = gts[keep], gt_lab[keep], difficult[keep]
        if self.use_difficult:
            difficult = np.zeros_like(difficult)
        tp, ignored = _match(boxes, scores, labels, gts, gt_lab, difficult, self.iou_thresh,
                             self.use_difficult, self.plus_one)
        self._num_gt += np.bincount(gt_lab[~difficult], minlength=self.num_classes)
        self._labels.append(labels)
        self._scores.append(scores)
        self._tp.append(tp)
        self._ignored.append(ignored)
        self.num_images += 1

    def update_batch(self, pred_boxes: ArrayLike, pred_labels: ArrayLike, pred_scores: ArrayLike,
                     gt_boxes: ArrayLike, gt_labels: ArrayLike,
                     gt_difficult: Optional[ArrayLike] = None) -> None:
        """Add a batch of images, as GluonCV's ``VOC07MApMetric.update``.

        Each argument is a sequence over the images (a list, or an array or
        MXNet NDArray whose first axis is the batch): shapes ``(B, N, 4)``,
        ``(B, N)`` or ``(B, N, 1)``, and ``(B, M, 4)``, ``(B, M)`` or
        ``(B, M, 1)``. Rows with a negative label are padding. ``gt_difficult``
        may be None.
        """
        def images(value: Any) -> list[np.ndarray]:
            if value is None:
                return []
            if hasattr(value, "asnumpy"):
                value = value.asnumpy()
            if isinstance(value, np.ndarray):
                return list(value)
            return [v.asnumpy() if hasattr(v, "asnumpy") else np.asarray(v) for v in value]

        def flat(a: np.ndarray) -> np.ndarray:
            return a.reshape(-1) if a.ndim == 2 and a.shape[-1] == 1 else a

        batches = [images(v) for v in (pred_boxes, pred_labels, pred_scores, gt_boxes, gt_labels)]
        diff = images(gt_difficult)
        b = len(batches[0])
        for v, name in zip(batches + ([diff] if gt_difficult is not None else []),
                           ("pred_boxes", "pred_labels", "pred_scores", "gt_boxes", "gt_labels",
                            "gt_difficult")):
            if len(v) != b:
                raise ValueError(f"{name} holds {len(v)} images, pred_boxes holds {b}")
        for i in range(b):
            self.update(batches[0][i], flat(batches[1][i]), flat(batches[2][i]), batches[3][i],
                        flat(batches[4][i]), flat(diff[i]) if diff else None,
                        image_id=f"batch index {i}")

    def get(self) -> VOCResult:
        """Score every image seen since the last :meth:`reset`."""
        if self._labels:
            labels = np.concatenate(self._labels)
            scores = np.concatenate(self._scores)
            tp_all = np.concatenate(self._tp)
            ignored = np.concatenate(self._ignored)
        else:
            labels = np.zeros(0, np.int64)
            scores = np.zeros(0)
            tp_all = ignored = np.zeros(0, bool)
        # One stable sort by (class, descending score): ties keep insertion order.
        order = np.lexsort((-scores, labels))
        labels, tp_all, ignored = labels[order], tp_all[order], ignored[order]
        bounds = np.searchsorted(labels, np.arange(self.num_classes + 1))
        ap, num_gt, num_det, precision, recall = {}, {}, {}, {}, {}
        for c, name in enumerate(self.class_names):
            lo, hi = bounds[c], bounds[c + 1]
            counted = ~ignored[lo:hi]
            tp_c = tp_all[lo:hi][counted]
            tp = np.cumsum(tp_c, dtype=np.float64)
            fp = np.cumsum(~tp_c, dtype=np.float64)
            npos = int(self._num_gt[c])
            prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            if npos > 0:
                rec = tp / float(npos)
                ap[name] = voc_ap(rec, prec, use_07_metric=self.metric == "voc07")
            else:
                rec = np.full_like(tp, np.nan)
                ap[name] = float("nan")
            prec.setflags(write=False)
            rec.setflags(write=False)
            precision[name], recall[name] = prec, rec
            num_gt[name], num_det[name] = npos, int(hi - lo)
        no_gt = tuple(n for n in self.class_names if num_gt[n] == 0)
        valid = [ap[n] for n in self.class_names if num_gt[n] > 0]
        mean = float(np.mean(valid)) if valid else float("nan")
        if no_gt:
            logger.info("VOC mAP: %d classes without ground truth, left out: %s", len(no_gt),
                        ", ".join(no_gt))
        return VOCResult(self.metric, mean, ap, num_gt, num_det, precision, recall, no_gt,
                         self.iou_thresh)


# --------------------------------------------------------------------------- COCO
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")


@dataclass(frozen=True)
class COCOResult:
    """COCO bbox scores, pycocotools' ``COCOeval.stats`` by name.

    The twelve ``stats`` are kept in ``stats``; ``-1`` is pycocotools' value
    where the ground truth has no box of that area range. ``summary`` is the
    text ``COCOeval.summarize`` printed (captured, not printed).
    """

    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    AR1: float
    AR10: float
    AR100: float
    stats: tuple = field(default=(), repr=False)
    summary: str = field(default="", repr=False)

    def to_dict(self) -> dict:
        """``{"metric": "coco", "AP": ..., ..., "AR100": ...}``, JSON-safe floats."""
        return {"metric": "coco", **{k: float(getattr(self, k)) for k in COCO_STATS}}


class COCOMetric:
    """COCO bbox mAP through pycocotools' ``COCOeval``.

    Parameters
    ----------
    annotation : path-like or pycocotools.coco.COCO
        The ground truth: an ``instances_*.json`` file or a loaded ``COCO``.
    label_to_category_id : mapping of int to int, or sequence of int
        COCO category id of each contiguous label, e.g.
        ``COCODetection.label_to_category_id`` (or its ``category_ids``).

    Every image of the ground truth is scored, whether or not :meth:`update`
    saw it (an image without detections counts its boxes as missed).
    Predictions are pixel corners of the original image in the project's
    continuous convention; they are written as COCO ``[x, y, w, h]`` with
    ``w = xmax - xmin``, the exact inverse of :mod:`dataset.coco`.
    """

    def __init__(self, annotation: Union[PathLike, Any],
                 label_to_category_id: Union[Mapping[int, int], Sequence[int]]) -> None:
        from pycocotools.coco import COCO

        if isinstance(annotation, COCO):
            self.coco = annotation
        else:
            path = Path(annotation)
            if not path.is_file():
                raise FileNotFoundError(f"COCO annotation file not found: {path}")
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO(str(path))
        if isinstance(label_to_category_id, Mapping):
            mapping = {int(k): int(v) for k, v in label_to_category_id.items()}
        else:
            mapping = {i: int(v) for i, v in enumerate(label_to_category_id)}
        if not mapping:
            raise ValueError("label_to_category_id is empty")
        if sorted(mapping) != list(range(len(mapping))):
            raise ValueError(f"label_to_category_id must map labels 0..{len(mapping) - 1}, got "
                             f"labels {sorted(mapping)}")
        unknown = sorted(set(mapping.values()) - set(self.coco.getCatIds()))
        if unknown:
            raise ValueError(f"category ids {unknown} are not in the ground truth (its ids: "
                             f"{sorted(self.coco.getCatIds())})")
        self._category_ids = np.array([mapping[i] for i in range(len(mapping))], dtype=np.int64)
        self._image_ids = set(self.coco.getImgIds())
        self.reset()

    @property
    def label_to_category_id(self) -> dict[int, int]:
        return {i: int(c) for i, c in enumerate(self._category_ids)}

    def reset(self) -> None:
        """Forget every detection."""
        self._results: list[dict] = []

    def update(self, image_id: int, pred_boxes: ArrayLike, pred_labels: ArrayLike,
               pred_scores: ArrayLike) -> None:
        """Add the detections of one image.

        Parameters
        ----------
        image_id : int
            The COCO image id (``COCODetection.ids[i]`` for sample ``i``).
        pred_boxes : array-like, shape (N, 4)
            Corners ``(xmin, ymin, xmax, ymax)`` in pixels of the original image.
        pred_labels : array-like of int, shape (N,)
            Contiguous labels; negative ones (padding) are skipped.
        pred_scores : array-like, shape (N,)
            No NaN.

        Raises
        ------
        ValueError
            Unknown image id or label, wrong shapes, NaN scores or boxes.
        """
        try:
            image_id = int(image_id)
        except (TypeError, ValueError):
            raise ValueError(f"image_id must be an integer COCO image id, got {image_id!r}") from None
        where = f"image {image_id}: "
        if image_id not in self._image_ids:
            raise ValueError(f"{where}not an image of the ground truth")
        try:
            boxes = _as_boxes(pred_boxes, "pred_boxes")
            n = boxes.shape[0]
            labels = _as_vector(pred_labels, "pred_labels", n, np.int64)
            scores = _as_vector(pred_scores, "pred_scores", n, np.float64)
        except ValueError as err:
            raise ValueError(f"{where}{err}") from None
        bad = np.flatnonzero(labels >= len(self._category_ids))
        if bad.size:
            raise ValueError(f"{where}pred_labels[{bad[0]}] = {labels[bad[0]]} is not a label "
                             f"(there are {len(self._category_ids)})")
        keep = labels >= 0
        boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        cats = self._category_ids[labels]
        self._results.extend(
            {"image_id": image_id, "category_id": int(c), "bbox": b, "score": s}
            for c, b, s in zip(cats.tolist(), xywh.tolist(), scores.tolist()))

    def results(self) -> list[dict]:
        """The detections as COCO results (a new list of new dicts)."""
        return [{**r, "bbox": list(r["bbox"])} for r in self._results]

    def save_results(self, path: PathLike) -> None:
        """Write :meth:`results` as a COCO results JSON file (temp file, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._results, f)
        os.replace(tmp, path)

    def get(self) -> COCOResult:
        """Run ``COCOeval`` (bbox) on the detections, its printing captured.

        With no detections at all, pycocotools' ``loadRes`` would fail; an
        empty result set is scored instead, which gives 0 for every stat
        whose area range has ground truth (-1 for the others, as pycocotools).
        """
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            if self._results:
                dt = self.coco.loadRes(copy.deepcopy(self._results))  # loadRes edits the dicts
            else:
                dt = COCO()
                dt.dataset = {"images": list(self.coco.dataset.get("images", [])),
                              "categories": copy.deepcopy(self.coco.dataset.get("categories", [])),
                              "annotations": []}
                dt.createIndex()
            ev = COCOeval(self.coco, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = tuple(float(s) for s in ev.stats)
        summary = text.getvalue()
        logger.debug("COCOeval output:\n%s", summary)
        return COCOResult(*stats[:9], stats=stats, summary=summary)
