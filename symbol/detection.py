"""Inference-time decoding: softmax, MultiBoxDetection, NMS, top-k, all in the graph.

Its settings are a :class:`common.decoding.DecodeConfig` (re-exported here).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from mxnet.gluon import HybridBlock

from common.decoding import MMDET_WH_CLAMP, NMS_MODES, DecodeConfig

from .boxes import VARIANCES

__all__ = ["DecodeConfig", "DetectionOutput", "MMDET_WH_CLAMP", "NMS_MODES", "VARIANCES"]


class DetectionOutput(HybridBlock):
    """Turn raw SSD predictions into at most ``keep_topk`` detections per image.

    Inputs
    ------
    cls_preds : (B, N, C + 1)
        Class logits, background at index 0.
    box_preds : (B, N * 4)
        Caffe CENTER_SIZE offsets ``(dx, dy, dw, dh)`` per anchor.
    anchors : (1, N, 4)
        Normalized corners ``(xmin, ymin, xmax, ymax)``.
    levels : (1, N), optional
        The feature level (0 .. ``num_levels`` - 1) of every anchor; needed by
        ``nms_mode='mmdet'`` only (:class:`symbol.ssd.SSD` supplies it).

    Output
    ------
    (B, keep_topk, 6) rows ``[class_id, score, xmin, ymin, xmax, ymax]``:
    ``class_id`` in 0..C-1 (background removed), normalized corners clipped to
    [0, 1], sorted by descending score; empty rows are all -1.

    ``nms_mode='multibox'`` (the default): each anchor takes its best
    foreground class (MultiBoxDetection's rule); boxes under ``thresh`` are
    dropped, the ``nms_topk`` best go through greedy NMS (per class unless
    ``force_suppress``), and the first ``keep_topk`` survivors are returned.

    ``nms_mode='caffe'``: Caffe SSD's DetectionOutput exactly. Per class,
    every anchor scoring above ``thresh`` is a candidate, the ``nms_topk``
    best of the class go through greedy NMS on the unclipped decoded boxes,
    and the ``keep_topk`` best survivors over all classes are returned (boxes
    clipped to [0, 1] on output). ``force_suppress`` makes the NMS
    class-agnostic here too.

    ``nms_mode='gluoncv'``: GluonCV's SSD (``MultiPerClassDecoder`` and one
    ``box_nms``). Every (anchor, class) pair scoring above ``thresh`` is a
    candidate, the ``nms_topk`` best over all classes go through greedy NMS at
    IoU > ``nms_thresh`` (per class unless ``force_suppress``) on the
    unclipped boxes, and the first ``keep_topk`` (GluonCV's ``post_nms``) are
    returned, clipped to [0, 1] (GluonCV leaves them unclipped).

    ``nms_mode='mmdet'``: mmdetection's SSDHead (``predict_by_feat``). Per
    feature level, the ``nms_topk`` best (anchor, class) pairs scoring above
    ``thresh`` (``nms_pre``); their boxes decoded with the scaled log-size
    offsets clamped at :data:`MMDET_WH_CLAMP` and clipped to the image; then
    greedy NMS at IoU > ``nms_thresh`` over all levels (per class unless
    ``force_suppress``), the first ``keep_topk`` (``max_per_img``) returned.

    ``variances`` are the box coder's (center x, center y, width, height)
    scales, :data:`VARIANCES` unless the model was trained with others (a
    Caffe model's PriorBox ``variance``).
    """

    def __init__(self, decoding: Optional[DecodeConfig] = None, *, num_classes: Optional[int] = None,
                 variances: Sequence[float] = VARIANCES, **settings: Any) -> None:
        settings, kwargs = ({k: v for k, v in settings.items() if k in DecodeConfig.names()},
                            {k: v for k, v in settings.items() if k not in DecodeConfig.names()})
        super().__init__(**kwargs)
        v = tuple(float(x) for x in variances)
        if len(v) != 4 or min(v) <= 0:
            raise ValueError(f"variances must be 4 positive numbers, got {tuple(variances)}")
        self.variances = v
        # Bounds the candidates of nms_mode 'caffe' with force_suppress (num_classes * nms_topk).
        self.num_classes = num_classes
        #: Feature levels of the anchors (nms_mode 'mmdet'); set by the network that owns the block.
        self.num_levels: Optional[int] = None
        self.decoding = (decoding or DecodeConfig()).replace(**settings)

    def configure(self, decoding: Optional[DecodeConfig] = None, **settings: Any) -> None:
        """Use ``decoding``, or the current settings with ``settings`` changed (validated)."""
        self.decoding = (decoding or self.decoding).replace(**settings)
        self._clear_cached_op()

    @property
    def config(self) -> dict:
        """The decoding settings as a dict (keyword arguments of :meth:`configure`)."""
        return self.decoding.to_dict()

    def __getattr__(self, name: str) -> Any:
        if name in DecodeConfig.names():  # self.nms_thresh, ... read the current settings
            return getattr(self.__dict__["decoding"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def hybrid_forward(self, F, cls_preds, box_preds, anchors, levels=None):
        if self.nms_mode == "gluoncv":
            return self._gluoncv(F, cls_preds, box_preds, anchors)
        if self.nms_mode == "mmdet":
            if (levels is None or not self.num_levels) and self.nms_topk > 0:
                raise ValueError("nms_mode 'mmdet' needs the feature level of every anchor: use it on a network "
                                 "built from a preset (symbol.get_model), not on a Caffe graph")
            return self._mmdet(F, cls_preds, box_preds, anchors, levels)
        if self.nms_mode == "caffe":
            if self.force_suppress:
                return self._caffe_class_agnostic(F, cls_preds, box_preds, anchors)
            return self._caffe(F, cls_preds, box_preds, anchors)
        cls_prob = F.transpose(F.softmax(cls_preds, axis=-1), axes=(0, 2, 1))
        det = F.contrib.MultiBoxDetection(cls_prob, box_preds, anchors, clip=True,
                                          threshold=self.thresh, nms_threshold=self.nms_thresh,
                                          force_suppress=self.force_suppress, variances=self.variances,
                                          nms_topk=self.nms_topk)
        # MultiBoxDetection leaves suppressed rows (class -1) in place.
        return self._best_rows(F, det)

    def _best_rows(self, F, det):
        """The ``keep_topk`` rows of class >= 0 of ``det`` (B, M, 6) by descending score,
        then empty rows (-1).

        A top-k and a gather: box_nms would do it too, but its pairwise pass
        starts one parallel loop per kept row, and with OpenMP's threads asleep
        between them that costs ~50 us each (15 ms of a 20 ms forward).
        """
        empty = F.slice_axis(F.zeros_like(det), axis=1, begin=0, end=1) - 1
        det = F.concat(det, F.repeat(empty, repeats=self.keep_topk, axis=1), dim=1)  # never short of rows
        valid = F.slice_axis(det, axis=2, begin=0, end=1) >= 0
        det = F.broadcast_mul(det + 1, valid) - 1  # suppressed rows (class -1) become empty rows
        score = F.slice_axis(det, axis=2, begin=1, end=2)
        key = F.reshape(F.where(valid, score, F.ones_like(score) * -2.0), shape=(0, -1))
        order = F.topk(key, axis=1, k=self.keep_topk, ret_typ="indices", is_ascend=False)  # (B, K)
        batch = F.broadcast_like(F.reshape(F.contrib.arange_like(order, axis=0), shape=(-1, 1)), order)
        return F.gather_nd(det, F.stack(batch, order, axis=0))

    def _caffe(self, F, cls_preds, box_preds, anchors):
        """Caffe's DetectionOutput: per class, every anchor scoring above ``thresh``,
        the ``nms_topk`` best, greedy NMS; then the ``keep_topk`` best of all classes.

        Each (image, class) is one two-class problem for MultiBoxDetection: with
        a single foreground class its per-anchor best class is that class, so it
        does Caffe's per-class work (threshold, top k, greedy NMS) on boxes
        decoded without clipping, as Caffe's are. One difference remains:
        MultiBoxDetection suppresses at IoU >= ``nms_thresh`` where Caffe
        suppresses at IoU > ``nms_thresh``; they differ only for a pair at
        exactly the threshold.
        """
        prob = F.softmax(cls_preds, axis=-1)  # (B, N, C + 1)
        scores = F.transpose(F.slice_axis(prob, axis=2, begin=1, end=None), axes=(0, 2, 1))  # (B, C, N)
        fg = F.expand_dims(F.reshape(scores, shape=(-3, 0)), axis=1)  # (B * C, 1, N)
        loc = F.broadcast_like(F.expand_dims(box_preds, axis=1), scores, lhs_axes=(1,), rhs_axes=(1,))
        det = F.contrib.MultiBoxDetection(F.concat(F.zeros_like(fg), fg, dim=1), F.reshape(loc, shape=(-3, 0)),
                                          anchors, clip=False, threshold=self.thresh,
                                          nms_threshold=self.nms_thresh, force_suppress=False,
                                          variances=self.variances, nms_topk=self.nms_topk)  # (B * C, N, 6)
        det = F.reshape_like(det, scores, lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=2)  # (B, C, N, 6)
        kept = F.slice_axis(det, axis=3, begin=0, end=1) >= 0
        label = F.broadcast_like(F.reshape(F.contrib.arange_like(det, axis=1), shape=(1, -1, 1, 1)), kept)
        det = F.concat(F.where(kept, label, F.ones_like(label) * -1.0),
                       F.slice_axis(det, axis=3, begin=1, end=None), dim=3)
        return self._clip_rows(F, self._best_rows(F, F.reshape(det, shape=(0, -3, 0))))

    def _caffe_class_agnostic(self, F, cls_preds, box_preds, anchors):
        """Caffe mode with ``force_suppress``: per class the ``nms_topk`` best above
        ``thresh``, then one class-agnostic NMS over all of them (box_nms)."""
        scores = F.transpose(F.slice_axis(F.softmax(cls_preds, axis=-1), axis=2, begin=1, end=None),
                             axes=(0, 2, 1))  # (B, C, N)
        boxes = _decode(F, box_preds, anchors, self.variances)  # (B, N, 4), not clipped (as Caffe)
        ids = F.broadcast_like(F.reshape(F.contrib.arange_like(scores, axis=1), shape=(1, -1, 1)), scores)
        boxes = F.broadcast_like(F.expand_dims(boxes, axis=1), F.expand_dims(scores, axis=-1),
                                 lhs_axes=(1,), rhs_axes=(1,))  # (B, C, N, 4)
        det = F.concat(F.expand_dims(ids, axis=-1), F.expand_dims(scores, axis=-1), boxes, dim=-1)
        # box_nms treats the class axis as a batch axis: per class, the nms_topk best boxes
        # scoring > thresh (Caffe: conf > confidence_threshold), no suppression.
        det = F.contrib.box_nms(det, overlap_thresh=1.0, valid_thresh=self.thresh, topk=self.nms_topk,
                                coord_start=2, score_index=1, id_index=0, background_id=-1, force_suppress=True)
        topk = self.nms_topk * self.num_classes if self.nms_topk > 0 and self.num_classes else -1
        det = F.contrib.box_nms(F.reshape(det, shape=(0, -3, 0)), overlap_thresh=self.nms_thresh,
                                valid_thresh=-1.0, topk=topk, coord_start=2, score_index=1, id_index=0,
                                background_id=-1, force_suppress=True)
        return self._clip_rows(F, self._best_rows(F, det))

    def _gluoncv(self, F, cls_preds, box_preds, anchors):
        """GluonCV's SSD decoding: the ``nms_topk`` best (anchor, class) pairs above
        ``thresh``, one class-aware box_nms at IoU > ``nms_thresh``, the first ``keep_topk``."""
        scores = self._foreground(F, cls_preds)
        boxes = _decode(F, box_preds, anchors, self.variances)  # not clipped, as GluonCV's
        det = self._nms(F, self._candidates(F, scores, boxes, self.nms_topk))
        return self._clip_rows(F, self._best_rows(F, det))

    def _mmdet(self, F, cls_preds, box_preds, anchors, levels):
        """mmdetection's SSDHead decoding: per level the ``nms_topk`` best (anchor, class)
        pairs above ``thresh``, boxes with clamped sizes clipped to the image, one
        class-aware NMS at IoU > ``nms_thresh``, the first ``keep_topk``."""
        scores = self._foreground(F, cls_preds)
        boxes = F.clip(_decode(F, box_preds, anchors, self.variances, wh_clamp=MMDET_WH_CLAMP), 0.0, 1.0)
        if self.nms_topk <= 0:  # no per-level bound: every pair is a candidate
            return self._best_rows(F, self._nms(F, self._candidates(F, scores, boxes, -1)))
        level = F.expand_dims(levels, axis=-1)  # (1, N, 1)
        # per level, the scores of the other levels' anchors become -1: no candidates
        parts = [self._candidates(F, F.broadcast_mul(scores + 1, level == i) - 1, boxes, self.nms_topk)
                 for i in range(self.num_levels)]
        return self._best_rows(F, self._nms(F, F.concat(*parts, dim=1)))

    def _foreground(self, F, cls_preds):
        """(B, N, C) foreground probabilities, -1 where not above ``thresh``."""
        prob = F.slice_axis(F.softmax(cls_preds, axis=-1), axis=2, begin=1, end=None)
        return F.where(prob > self.thresh, prob, F.ones_like(prob) * -1.0)

    def _candidates(self, F, scores, boxes, k):
        """Rows ``[class_id, score, box]`` (B, M, 6) of the ``k`` best (anchor, class) pairs
        of ``scores`` (B, N, C) (-1: not a candidate; such rows have class -1), or of every
        pair when ``k`` <= 0.

        The ``k`` best pairs belong to the ``k`` anchors of highest best score, so the
        pairs are ranked among those ``k`` anchors only: two small top-k instead of one
        over all N x C pairs.
        """
        if k <= 0:
            ids = F.broadcast_like(F.reshape(F.contrib.arange_like(scores, axis=2), shape=(1, 1, -1)), scores)
            rows = F.concat(F.expand_dims(ids, axis=-1), F.expand_dims(scores, axis=-1),
                            F.broadcast_like(F.expand_dims(boxes, axis=2), F.expand_dims(scores, axis=-1),
                                             lhs_axes=(2,), rhs_axes=(2,)), dim=-1)  # (B, N, C, 6)
            rows = F.reshape(rows, shape=(0, -3, 0))
            valid = F.slice_axis(rows, axis=2, begin=1, end=2) > -1
            return F.broadcast_mul(rows + 1, valid) - 1
        # never fewer than k anchors: k padding anchors that are no candidates
        pad = F.slice_axis(F.zeros_like(scores), axis=1, begin=0, end=1) - 1  # (B, 1, C)
        scores = F.concat(scores, F.repeat(pad, repeats=k, axis=1), dim=1)
        pad_box = F.slice_axis(F.zeros_like(boxes), axis=1, begin=0, end=1)
        boxes = F.concat(boxes, F.repeat(pad_box, repeats=k, axis=1), dim=1)
        best = F.max(scores, axis=2)  # (B, N + k)
        anchor = F.topk(best, axis=1, k=k, ret_typ="indices", is_ascend=False)  # (B, k)
        batch = F.broadcast_like(F.reshape(F.contrib.arange_like(anchor, axis=0), shape=(-1, 1)), anchor)
        at = F.stack(batch, anchor, axis=0)
        top_scores = F.gather_nd(scores, at)  # (B, k, C)
        top_boxes = F.gather_nd(boxes, at)  # (B, k, 4)
        flat = F.reshape(top_scores, shape=(0, -1))  # (B, k * C)
        pair = F.topk(flat, axis=1, k=k, ret_typ="indices", is_ascend=False)  # (B, k)
        pick = F.stack(batch, pair, axis=0)
        score = F.gather_nd(flat, pick)
        ids = F.reshape(F.broadcast_like(F.reshape(F.contrib.arange_like(top_scores, axis=2), shape=(1, 1, -1)),
                                         top_scores), shape=(0, -1))
        pos = F.reshape(F.broadcast_like(F.reshape(F.contrib.arange_like(top_scores, axis=1), shape=(1, -1, 1)),
                                         top_scores), shape=(0, -1))
        cls = F.gather_nd(ids, pick)
        box = F.gather_nd(top_boxes, F.stack(batch, F.gather_nd(pos, pick), axis=0))  # (B, k, 4)
        valid = score > -1
        cls = F.where(valid, cls, F.ones_like(cls) * -1.0)
        return F.concat(F.expand_dims(cls, axis=-1), F.expand_dims(score, axis=-1), box, dim=-1)

    def _nms(self, F, rows):
        """box_nms of candidate rows (B, M, 6): greedy, IoU > ``nms_thresh`` suppresses,
        per class unless ``force_suppress``; sorted by score, the rest -1."""
        return F.contrib.box_nms(rows, overlap_thresh=self.nms_thresh, valid_thresh=-0.5, topk=-1, coord_start=2,
                                 score_index=1, id_index=0, background_id=-1,
                                 force_suppress=self.force_suppress)

    @staticmethod
    def _clip_rows(F, det):
        """Corners clipped to [0, 1]; empty rows stay -1."""
        head = F.slice_axis(det, axis=-1, begin=0, end=2)
        coords = F.slice_axis(det, axis=-1, begin=2, end=6)
        valid = F.slice_axis(det, axis=-1, begin=0, end=1) >= 0
        coords = F.broadcast_mul(F.clip(coords, 0.0, 1.0) + 1, valid) - 1
        return F.concat(head, coords, dim=-1)


def _decode(F, box_preds, anchors, variances, wh_clamp: Optional[float] = None):
    """Caffe CENTER_SIZE decoding with ``variances``: (B, N * 4) offsets and
    (1, N, 4) corner anchors -> (B, N, 4) corner boxes; with ``wh_clamp`` the
    scaled log-size offsets are clamped to [-wh_clamp, wh_clamp] (mmdetection)."""
    pred = F.reshape(box_preds, shape=(0, -1, 4))
    ax0, ay0, ax1, ay1 = F.split(anchors, num_outputs=4, axis=-1)
    aw, ah = ax1 - ax0, ay1 - ay0
    acx, acy = (ax0 + ax1) * 0.5, (ay0 + ay1) * 0.5
    dx, dy, dw, dh = F.split(pred, num_outputs=4, axis=-1)
    dw, dh = dw * variances[2], dh * variances[3]
    if wh_clamp is not None:
        dw, dh = F.clip(dw, -wh_clamp, wh_clamp), F.clip(dh, -wh_clamp, wh_clamp)
    cx = F.broadcast_add(F.broadcast_mul(dx * variances[0], aw), acx)
    cy = F.broadcast_add(F.broadcast_mul(dy * variances[1], ah), acy)
    hw = F.broadcast_mul(F.exp(dw), aw) * 0.5
    hh = F.broadcast_mul(F.exp(dh), ah) * 0.5
    return F.concat(cx - hw, cy - hh, cx + hw, cy + hh, dim=-1)
