"""Inference-time decoding: softmax, MultiBoxDetection, NMS, top-k, all in the graph."""
from __future__ import annotations

from mxnet.gluon import HybridBlock

from .boxes import VARIANCES

__all__ = ["DetectionOutput", "VARIANCES"]


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

    Output
    ------
    (B, keep_topk, 6) rows ``[class_id, score, xmin, ymin, xmax, ymax]``:
    ``class_id`` in 0..C-1 (background removed), normalized corners clipped to
    [0, 1], sorted by descending score; empty rows are all -1.

    Each anchor takes its best foreground class (MultiBoxDetection's rule);
    boxes under ``thresh`` are dropped, the ``nms_topk`` best go through
    greedy NMS (per class unless ``force_suppress``), and the first
    ``keep_topk`` survivors are returned.
    """

    def __init__(self, nms_thresh: float = 0.45, nms_topk: int = 400, keep_topk: int = 200,
                 thresh: float = 0.01, force_suppress: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.configure(nms_thresh, nms_topk, keep_topk, thresh, force_suppress)

    def configure(self, nms_thresh: float = 0.45, nms_topk: int = 400, keep_topk: int = 200,
                  thresh: float = 0.01, force_suppress: bool = False) -> None:
        """Validate and store the decoding parameters (see the class docstring)."""
        if not 0.0 < nms_thresh <= 1.0:
            raise ValueError(f"nms_thresh must be in (0, 1], got {nms_thresh}")
        if keep_topk < 1:
            raise ValueError(f"keep_topk must be positive, got {keep_topk}")
        if nms_topk == 0 or nms_topk < -1:
            raise ValueError(f"nms_topk must be positive or -1, got {nms_topk}")
        if not 0.0 <= thresh < 1.0:
            raise ValueError(f"thresh must be in [0, 1), got {thresh}")
        self.nms_thresh, self.nms_topk, self.keep_topk = float(nms_thresh), int(nms_topk), int(keep_topk)
        self.thresh, self.force_suppress = float(thresh), bool(force_suppress)
        self._clear_cached_op()

    @property
    def config(self) -> dict:
        """The decoding parameters as keyword arguments of :meth:`configure`."""
        return dict(nms_thresh=self.nms_thresh, nms_topk=self.nms_topk, keep_topk=self.keep_topk,
                    thresh=self.thresh, force_suppress=self.force_suppress)

    def hybrid_forward(self, F, cls_preds, box_preds, anchors):
        cls_prob = F.transpose(F.softmax(cls_preds, axis=-1), axes=(0, 2, 1))
        det = F.contrib.MultiBoxDetection(cls_prob, box_preds, anchors, clip=True,
                                          threshold=self.thresh, nms_threshold=self.nms_thresh,
                                          force_suppress=self.force_suppress, variances=VARIANCES,
                                          nms_topk=self.nms_topk)
        # MultiBoxDetection leaves suppressed rows (class -1) in place; move the
        # survivors to the front by score (no further suppression) ... Rows of
        # class -1 go as background; the score filter (box_nms keeps score >
        # valid_thresh) must let every survivor through, a score of 0 included
        # when thresh is 0, so it sits below any probability. The pairwise pass
        # covers only the first keep_topk rows (all of N would cost O(N^2)).
        det = F.contrib.box_nms(det, overlap_thresh=1.0, valid_thresh=-1.0, topk=self.keep_topk,
                                coord_start=2, score_index=1, id_index=0, background_id=-1,
                                force_suppress=False)
        # ... pad with empty rows so that there are always keep_topk, and cut.
        empty = F.slice_axis(F.zeros_like(det), axis=1, begin=0, end=1) - 1
        det = F.concat(det, F.repeat(empty, repeats=self.keep_topk, axis=1), dim=1)
        return F.slice_axis(det, axis=1, begin=0, end=self.keep_topk)
