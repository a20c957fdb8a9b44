"""The parts of the ONNX detector that MXNet's exporter cannot write, built with ``onnx.helper``.

:mod:`symbol.onnx_export` joins three graphs: :func:`add_preprocessing` (the
model's mean, std and channel order, so that the ONNX input is RGB 0..255 as the
MXNet model's), the backbone and heads (MXNet's own exporter), and
:func:`add_decoding` (softmax, the priors as constants, box decoding with the
variances, candidates, ONNX's ``NonMaxSuppression`` and the best ``keep_topk``
rows), which reproduces :class:`symbol.detection.DetectionOutput` for every
``nms_mode``. Nothing here imports MXNet: :func:`decoding_model` wraps the
decoding alone, to be tested against the MXNet graph on any predictions.

How each decoding maps onto ONNX, exactly
-----------------------------------------
ONNX Runtime's ``NonMaxSuppression`` (CPU) keeps, per image and class row, the
boxes scoring ``> score_threshold``, visits them by descending score (equal
scores by ascending box index, the order of a stable sort) and drops a box
whose IoU with a kept one is ``> iou_threshold``; its IoU is MXNet's
arithmetic (intersection over the two areas added, less the intersection,
0 for an empty box). So:

- ``multibox`` (MultiBoxDetection): every prior's best foreground class (the
  lowest id on a tie, as ``ArgMax``), kept when its score is ``>= thresh``,
  the best ``nms_topk`` of those (``TopK`` ranks equal values by index, as
  MultiBoxDetection's stable sort), boxes clipped to [0, 1] before NMS. MXNet
  suppresses at IoU ``>=`` the threshold: the ONNX threshold is the float32
  just below it, which is the same test on float32 IoUs.
- ``caffe`` (per class MultiBoxDetection): per class the ``nms_topk`` best
  priors scoring ``>= thresh``, NMS at IoU ``>=`` (as above) on unclipped
  boxes. With ``force_suppress``: per class the ``nms_topk`` best scoring
  ``> thresh``, then one class-agnostic NMS at IoU ``>`` over all of them
  (box_nms's rules); one prior may be a candidate of several classes.
- ``gluoncv``: the ``nms_topk`` best (prior, class) pairs scoring
  ``> thresh``, class-aware NMS at IoU ``>`` on unclipped boxes.
- ``mmdet``: per feature level the ``nms_topk`` best pairs scoring
  ``> thresh``, sizes clamped, boxes clipped, class-aware NMS at IoU ``>``.

Then, as ``DetectionOutput``, the ``keep_topk`` best kept rows by descending
score, boxes clipped to [0, 1], empty rows all -1. A candidate set where a
prior has at most one class is laid out ``(B, C, N)`` (NMS per class row);
class-agnostic NMS over (prior, class) pairs gets one row of candidates
with their boxes gathered. Equal scores keep the order MXNet's stable sorts
give them (prior order, or class then prior in ``caffe`` mode).
"""
from __future__ import annotations

import itertools
from typing import Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.decoding import MMDET_WH_CLAMP, DecodeConfig

__all__ = ["OPSET", "GraphBuilder", "add_decoding", "add_preprocessing", "decoding_model"]

#: The ONNX opset the parts are written for: the newest MXNet 1.9.1's exporter translates to.
OPSET = 13
#: What an empty detection row holds, and the score of a pair that is no candidate.
EMPTY = -1.0
#: The ranking key of a candidate NMS dropped: below every candidate's score and below EMPTY.
_DROPPED = -2.0


class GraphBuilder:
    """Nodes and initializers of an ONNX graph under construction.

    Every name it makes starts with ``prefix`` (so that graphs built apart can
    be merged); equal constants are stored once.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._ids = itertools.count()
        self._consts: dict[tuple, str] = {}

    def _name(self, hint: str) -> str:
        return f"{self.prefix}{hint}_{next(self._ids)}"

    def const(self, value, dtype=np.float32, hint: str = "const") -> str:
        """The name of an initializer holding ``value`` as ``dtype``."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self._name(hint)
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, outputs: int = 1, hint: Optional[str] = None, **attrs):
        """Add a node; returns its output name (a list of names when ``outputs > 1``)."""
        names = [self._name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    # ---------------------------------------------------------------- shorthands
    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", x, self.ints(axis))

    def reshape(self, x: str, *shape: int) -> str:
        return self.op("Reshape", x, self.ints(*shape))

    def slice(self, x: str, axis: int, begin: int, end: int) -> str:
        return self.op("Slice", x, self.ints(begin), self.ints(end), self.ints(axis))

    def full_like(self, x: str, value: float) -> str:
        """A float tensor of ``x``'s (run-time) shape filled with ``value``."""
        return self.op("ConstantOfShape", self.op("Shape", x),
                       value=numpy_helper.from_array(np.array([value], np.float32)))

    def where_else(self, cond: str, x: str, value: float) -> str:
        """``x`` where ``cond``, else ``value``."""
        return self.op("Where", cond, x, self.const(value))

    def topk(self, x: str, k: int, axis: int) -> tuple[str, str]:
        """The ``k`` largest along ``axis`` (equal values by ascending index): (values, int64 indices)."""
        values, indices = self.op("TopK", x, self.ints(k), outputs=2, axis=axis, largest=1, sorted=1)
        return values, indices


# ---------------------------------------------------------------------- preprocessing
def add_preprocessing(g: GraphBuilder, x: str, mean: Sequence[float], std: Sequence[float], bgr: bool) -> str:
    """:class:`symbol.layers.Preprocess` in ONNX.

    ``x``: (B, 3, H, W) RGB pixel values in 0..255. Returns the name of
    ``(x[:, ::-1] if bgr else x) - mean) * (1 / std)`` per channel, computed in
    float32 as MXNet does (the reciprocal rounded to float32 once).
    """
    if bgr:
        x = g.op("Gather", x, g.const([2, 1, 0], np.int64), axis=1)
    mean = np.asarray(mean, np.float64)
    if np.any(mean != 0):
        x = g.op("Sub", x, g.const(mean.reshape(1, 3, 1, 1)))
    if any(float(s) != 1.0 for s in std):
        inv = [1.0 / float(s) for s in std]  # Python's double, cast to float32 as MXNet's scalar is
        x = g.op("Mul", x, g.const(np.asarray(inv, np.float64).reshape(1, 3, 1, 1)))
    return x


# ---------------------------------------------------------------------- decoding
def _decode_boxes(g: GraphBuilder, box_preds: str, anchors: np.ndarray, variances: Sequence[float],
                  wh_clamp: Optional[float] = None) -> str:
    """(B, N * 4) Caffe CENTER_SIZE offsets -> (B, N, 4) corners, unclipped, in MXNet's float32
    arithmetic: ``cx = dx * v0 * aw + acx``, ``w / 2 = exp(dw * v2) * aw / 2``."""
    a = np.asarray(anchors, np.float32).reshape(-1, 4)
    size = a[:, 2:] - a[:, :2]  # (N, 2): aw, ah
    centre = (a[:, :2] + a[:, 2:]) / np.float32(2)
    v = np.asarray(variances, np.float32)
    loc = g.reshape(box_preds, 0, -1, 4)
    shift = g.op("Add", g.op("Mul", g.op("Mul", g.slice(loc, 2, 0, 2), g.const(v[:2])), g.const(size)),
                 g.const(centre))
    scale = g.op("Mul", g.slice(loc, 2, 2, 4), g.const(v[2:]))
    if wh_clamp is not None:
        scale = g.op("Clip", scale, g.const(-wh_clamp), g.const(wh_clamp))
    half = g.op("Mul", g.op("Mul", g.op("Exp", scale), g.const(size)), g.const(0.5))
    return g.op("Concat", g.op("Sub", shift, half), g.op("Add", shift, half), axis=2, hint="boxes")


def _clip01(g: GraphBuilder, x: str) -> str:
    return g.op("Clip", x, g.const(0.0), g.const(1.0))


def _suppress_at(threshold: float, inclusive: bool) -> float:
    """NonMaxSuppression's ``iou_threshold`` (it suppresses at IoU > it) that suppresses at
    IoU >= ``threshold`` when ``inclusive`` (MultiBoxDetection's rule), else at IoU > it."""
    t = np.float32(threshold)
    return float(np.nextafter(t, np.float32(-1)) if inclusive else t)


def _nms(g: GraphBuilder, boxes: str, scores: str, count: int, iou_threshold: float) -> str:
    """NonMaxSuppression of ``scores`` (B, rows, M) over ``boxes`` (B, M, 4); candidates are the
    scores > -0.5 (EMPTY marks the rest). Returns the kept (image, row, box) triples (K, 3).

    The boxes are corners ``(x1, y1, x2, y2)``; the operator reads ``(y1, x1, y2, x2)``, a
    reflection of the same boxes, under which IoUs (and so NMS) do not change.
    """
    return g.op("NonMaxSuppression", boxes, scores, g.const(count, np.int64), g.const(iou_threshold),
                g.const(EMPTY / 2), center_point_box=0)


def _kept_scores(g: GraphBuilder, scores: str, selected: str) -> str:
    """``scores`` where NMS kept the candidate (``selected`` (K, 3) triples), else _DROPPED."""
    return g.op("ScatterND", g.full_like(scores, _DROPPED), selected, g.op("GatherND", scores, selected))


def _mask_topk(g: GraphBuilder, scores: str, k: int, size: int) -> str:
    """``scores`` (..., size) with all but the ``k`` largest of the last axis set to EMPTY."""
    if k >= size:
        return scores
    values, indices = g.topk(scores, k, axis=-1)
    return g.op("ScatterElements", g.full_like(scores, EMPTY), indices, values, axis=-1)


def _rows(g: GraphBuilder, key: str, size: int, keep_topk: int, boxes: str, where) -> str:
    """The ``keep_topk`` best candidates of ``key`` (B, size) (_DROPPED: none) as detection rows.

    ``where(index) -> (class, prior)`` maps int64 indices (B, K) into ``key`` to the
    candidate's class and prior; the prior's box is taken from ``boxes`` (B, N, 4) and clipped.
    """
    if size < keep_topk:  # never short of rows
        key = g.op("Pad", key, g.ints(0, 0, 0, keep_topk - size), g.const(_DROPPED))
    score, index = g.topk(key, keep_topk, axis=1)
    index = g.op("Min", index, g.const(size - 1, np.int64))  # the padding's rows are dropped below
    cls, prior = where(index)
    box = _clip01(g, g.op("GatherND", boxes, g.unsqueeze(prior, 2), batch_dims=1))  # (B, K, 4)
    rows = g.op("Concat", g.unsqueeze(g.op("Cast", cls, to=TensorProto.FLOAT), 2), g.unsqueeze(score, 2), box,
                axis=2)
    valid = g.unsqueeze(g.op("Greater", score, g.const(EMPTY)), 2)
    return g.where_else(valid, rows, EMPTY)


def _per_class_rows(g: GraphBuilder, scores: str, boxes: str, num_classes: int, num_anchors: int,
                    iou_threshold: float, keep_topk: int, class_major: bool) -> str:
    """NMS per class of ``scores`` (B, C, N) (EMPTY: no candidate) over ``boxes`` (B, N, 4), then
    the best rows; equal scores ranked class-major (``caffe``) or prior-major."""
    kept = _kept_scores(g, scores, _nms(g, boxes, scores, num_anchors, iou_threshold))
    if class_major:
        n = g.const(num_anchors, np.int64)
        key = g.reshape(kept, 0, -1)
        return _rows(g, key, num_classes * num_anchors, keep_topk, boxes,
                     lambda i: (g.op("Div", i, n), g.op("Mod", i, n)))
    c = g.const(num_classes, np.int64)
    key = g.reshape(g.op("Transpose", kept, perm=[0, 2, 1]), 0, -1)  # (B, N * C)
    return _rows(g, key, num_classes * num_anchors, keep_topk, boxes,
                 lambda i: (g.op("Mod", i, c), g.op("Div", i, c)))


def _agnostic_rows(g: GraphBuilder, scores: str, classes: str, priors: str, size: int, boxes: str,
                   iou_threshold: float, keep_topk: int) -> str:
    """Class-agnostic NMS of a candidate list: ``scores`` (B, M) (EMPTY: none), their int64
    ``classes`` and ``priors`` (B, M), in the order ties are broken; then the best rows."""
    cand_boxes = g.op("GatherND", boxes, g.unsqueeze(priors, 2), batch_dims=1)  # (B, M, 4)
    row = g.unsqueeze(scores, 1)  # (B, 1, M)
    kept = g.reshape(_kept_scores(g, row, _nms(g, cand_boxes, row, size, iou_threshold)), 0, -1)
    return _rows(g, kept, size, keep_topk, boxes,
                 lambda i: (g.op("GatherElements", classes, i, axis=1), g.op("GatherElements", priors, i, axis=1)))


def _pair_list(g: GraphBuilder, pairs: str, num_classes: int, k: int) -> tuple[str, str, str]:
    """The ``k`` best (prior, class) pairs of ``pairs`` (B, n * C), prior-major: (scores, classes,
    priors), each (B, k), priors counted from the start of ``pairs``."""
    score, index = g.topk(pairs, k, axis=1)
    c = g.const(num_classes, np.int64)
    return score, g.op("Mod", index, c), g.op("Div", index, c)


def add_decoding(g: GraphBuilder, cls_preds: str, box_preds: str, anchors: np.ndarray, num_classes: int,
                 decoding: DecodeConfig, variances: Sequence[float],
                 levels: Optional[np.ndarray] = None) -> str:
    """:class:`symbol.detection.DetectionOutput` in ONNX (see the module docstring).

    Parameters
    ----------
    g : GraphBuilder
    cls_preds : str
        (B, N, C + 1) class logits, background at index 0.
    box_preds : str
        (B, N * 4) Caffe CENTER_SIZE offsets ``(dx, dy, dw, dh)`` per prior.
    anchors : (N, 4) or (1, N, 4) array
        The priors, normalized corners ``(xmin, ymin, xmax, ymax)``: stored as constants.
    num_classes : int
        C, foreground classes.
    decoding : DecodeConfig
    variances : four floats
    levels : (N,) int array, optional
        Every prior's feature level, non-decreasing (``nms_mode='mmdet'`` with ``nms_topk > 0``).

    Returns
    -------
    str
        The name of the (B, keep_topk, 6) detections ``[class_id, score, xmin, ymin, xmax,
        ymax]``: normalized corners clipped to [0, 1], by descending score, empty rows -1.

    Raises
    ------
    ValueError
        ``mmdet`` without the priors' levels, or levels that are not contiguous runs.
    """
    anchors = np.asarray(anchors, np.float32).reshape(-1, 4)
    n, c, d = len(anchors), int(num_classes), decoding
    fg = g.slice(g.op("Softmax", cls_preds, axis=2), 2, 1, c + 1)  # (B, N, C)
    k = n if d.nms_topk <= 0 else min(d.nms_topk, n)

    if d.nms_mode == "multibox":
        boxes = _clip01(g, _decode_boxes(g, box_preds, anchors, variances))
        best = g.op("ReduceMax", fg, axes=[2], keepdims=0)  # (B, N)
        cls = g.op("ArgMax", fg, axis=2, keepdims=0, select_last_index=0)  # the lowest id on a tie
        cand = _mask_topk(g, g.where_else(g.op("GreaterOrEqual", best, g.const(d.thresh)), best, EMPTY), k, n)
        if d.force_suppress:
            scores = g.unsqueeze(cand, 1)  # (B, 1, N)
        else:
            onehot = g.op("Equal", g.unsqueeze(cls, 1), g.const(np.arange(c).reshape(1, c, 1), np.int64))
            scores = g.where_else(onehot, g.unsqueeze(cand, 1), EMPTY)  # (B, C, N)
        kept = _kept_scores(g, scores, _nms(g, boxes, scores, n, _suppress_at(d.nms_thresh, True)))
        key = g.op("ReduceMax", kept, axes=[1], keepdims=0)  # (B, N): a prior has one class
        return _rows(g, key, n, d.keep_topk, boxes, lambda i: (g.op("GatherElements", cls, i, axis=1), i))

    if d.nms_mode == "caffe":
        boxes = _decode_boxes(g, box_preds, anchors, variances)  # unclipped, as Caffe's
        scores = g.op("Transpose", fg, perm=[0, 2, 1])  # (B, C, N)
        if not d.force_suppress:
            cand = g.where_else(g.op("GreaterOrEqual", scores, g.const(d.thresh)), scores, EMPTY)
            return _per_class_rows(g, _mask_topk(g, cand, k, n), boxes, c, n,
                                   _suppress_at(d.nms_thresh, True), d.keep_topk, class_major=True)
        cand = g.where_else(g.op("Greater", scores, g.const(d.thresh)), scores, EMPTY)
        score, prior = g.topk(cand, k, axis=2)  # (B, C, k): per class, class-major
        cls = g.op("Expand", g.const(np.arange(c).reshape(1, c, 1), np.int64), g.op("Shape", prior))
        return _agnostic_rows(g, g.reshape(score, 0, -1), g.reshape(cls, 0, -1), g.reshape(prior, 0, -1), c * k,
                              boxes, _suppress_at(d.nms_thresh, False), d.keep_topk)

    if d.nms_mode == "gluoncv":
        boxes = _decode_boxes(g, box_preds, anchors, variances)  # unclipped, as GluonCV's
    elif d.nms_mode == "mmdet":
        boxes = _clip01(g, _decode_boxes(g, box_preds, anchors, variances, wh_clamp=MMDET_WH_CLAMP))
    else:
        raise ValueError(f"nms_mode {d.nms_mode!r} has no ONNX decoding")
    pairs = g.reshape(g.where_else(g.op("Greater", fg, g.const(d.thresh)), fg, EMPTY), 0, -1)  # (B, N * C)
    iou = _suppress_at(d.nms_thresh, False)
    if d.nms_mode == "gluoncv" or d.nms_topk <= 0:
        runs = [(0, n)]
    else:
        runs = _level_runs(levels, n)
    if d.force_suppress:
        parts = []
        for begin, end in runs:
            part = pairs if (begin, end) == (0, n) else g.slice(pairs, 1, begin * c, end * c)
            size = (end - begin) * c
            score, cls, prior = _pair_list(g, part, c, size if d.nms_topk <= 0 else min(d.nms_topk, size))
            parts.append((score, cls, g.op("Add", prior, g.const(begin, np.int64)) if begin else prior))
        score, cls, prior = (g.op("Concat", *p, axis=1) if len(p) > 1 else p[0] for p in zip(*parts))
        size = sum(min(d.nms_topk, (e - b) * c) if d.nms_topk > 0 else (e - b) * c for b, e in runs)
        return _agnostic_rows(g, score, cls, prior, size, boxes, iou, d.keep_topk)
    masked = []
    for begin, end in runs:
        part = pairs if (begin, end) == (0, n) else g.slice(pairs, 1, begin * c, end * c)
        size = (end - begin) * c
        masked.append(_mask_topk(g, part, size if d.nms_topk <= 0 else d.nms_topk, size))
    pairs = g.op("Concat", *masked, axis=1) if len(masked) > 1 else masked[0]
    scores = g.op("Transpose", g.reshape(pairs, 0, n, c), perm=[0, 2, 1])  # (B, C, N)
    return _per_class_rows(g, scores, boxes, c, n, iou, d.keep_topk, class_major=False)


def _level_runs(levels: Optional[np.ndarray], num_anchors: int) -> list[tuple[int, int]]:
    """The ``[begin, end)`` prior ranges of each feature level (``levels`` must be runs of
    0, 1, ... in order, as :class:`symbol.ssd.SSD` lays its priors out)."""
    if levels is None:
        raise ValueError("nms_mode 'mmdet' needs the feature level of every prior (a network built "
                         "from a preset gives them)")
    lv = np.asarray(levels).reshape(-1)
    if lv.shape != (num_anchors,):
        raise ValueError(f"levels must hold {num_anchors} entries, got {lv.shape}")
    starts = np.flatnonzero(np.diff(lv)) + 1
    bounds = [0, *starts.tolist(), num_anchors]
    runs = list(zip(bounds[:-1], bounds[1:]))
    if [int(lv[b]) for b, _ in runs] != list(range(len(runs))):
        raise ValueError("the priors' levels must be contiguous runs 0, 1, 2, ... in order")
    return runs


def decoding_model(anchors: np.ndarray, num_classes: int, decoding: DecodeConfig,
                   variances: Sequence[float], levels: Optional[np.ndarray] = None) -> onnx.ModelProto:
    """The decoding alone as a model: inputs ``cls_preds`` (B, N, C + 1) and ``box_preds``
    (B, N * 4), output ``detections`` (B, keep_topk, 6) (see :func:`add_decoding`)."""
    n, c = len(np.asarray(anchors).reshape(-1, 4)), int(num_classes)
    g = GraphBuilder("decode/")
    g.op("Identity", add_decoding(g, "cls_preds", "box_preds", anchors, c, decoding, variances, levels))
    g.nodes[-1].output[0] = "detections"
    graph = helper.make_graph(
        g.nodes, "ssd_decoding",
        [helper.make_tensor_value_info("cls_preds", TensorProto.FLOAT, ["batch", n, c + 1]),
         helper.make_tensor_value_info("box_preds", TensorProto.FLOAT, ["batch", n * 4])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["batch", decoding.keep_topk, 6])],
        initializer=g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
