"""The decoding settings, declared once: :class:`DecodeConfig` and :data:`NMS_MODES`.

Free of MXNet, so that the command lines can offer the modes without loading
it. The decoding itself is :class:`symbol.detection.DetectionOutput`; the
network (``SSDBase.set_nms``), checkpoint configs (``nms``), the detector and
the command lines all pass a :class:`DecodeConfig`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["DecodeConfig", "MMDET_WH_CLAMP", "NMS_MODES"]

#: ``multibox``: MXNet's MultiBoxDetection (each prior votes for its best class).
#: ``caffe``: Caffe's DetectionOutput (every class above the threshold per prior, top-k per class).
#: ``gluoncv``: GluonCV's SSD (every class above the threshold per prior, top-k over all classes).
#: ``mmdet``: mmdetection's SSDHead (top-k pairs per feature level, clamped sizes, clipped boxes).
NMS_MODES = ("multibox", "caffe", "gluoncv", "mmdet")

#: ``nms_mode='mmdet'``: mmdetection's bound on the scaled log-size offsets, ``|log(16 / 1000)|``.
MMDET_WH_CLAMP = math.log(1000 / 16)


@dataclass(frozen=True)
class DecodeConfig:
    """How raw predictions become detections (see :class:`symbol.detection.DetectionOutput`).

    Attributes
    ----------
    nms_thresh : float
        NMS IoU threshold, in (0, 1].
    nms_topk : int
        Candidates that enter NMS (per class in ``caffe`` mode, per feature
        level in ``mmdet`` mode, over all classes otherwise); -1: all.
    keep_topk : int
        Detections kept per image.
    thresh : float
        Score threshold of the candidates, in [0, 1).
    force_suppress : bool
        Class-agnostic NMS.
    nms_mode : {'multibox', 'caffe', 'gluoncv', 'mmdet'}
        Whose decoding (see :class:`symbol.detection.DetectionOutput`).
    """

    nms_thresh: float = 0.45
    nms_topk: int = 400
    keep_topk: int = 200
    thresh: float = 0.01
    force_suppress: bool = False
    nms_mode: str = "multibox"

    def __post_init__(self) -> None:
        if self.nms_mode not in NMS_MODES:
            raise ValueError(f"nms_mode must be one of {NMS_MODES}, got {self.nms_mode!r}")
        if not 0.0 < self.nms_thresh <= 1.0:
            raise ValueError(f"nms_thresh must be in (0, 1], got {self.nms_thresh}")
        if self.keep_topk < 1:
            raise ValueError(f"keep_topk must be positive, got {self.keep_topk}")
        if self.nms_topk == 0 or self.nms_topk < -1:
            raise ValueError(f"nms_topk must be positive or -1, got {self.nms_topk}")
        if not 0.0 <= self.thresh < 1.0:
            raise ValueError(f"thresh must be in [0, 1), got {self.thresh}")
        for name, kind in (("nms_thresh", float), ("nms_topk", int), ("keep_topk", int), ("thresh", float),
                           ("force_suppress", bool)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names (the keys of a checkpoint config's ``nms``)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DecodeConfig":
        """Settings from a dict; missing ones keep their defaults, unknown ones are an error."""
        unknown = sorted(set(d) - set(cls.names()))
        if unknown:
            raise ValueError(f"unknown decoding settings {unknown}; valid: {', '.join(cls.names())}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> "DecodeConfig":
        """A copy with the given settings changed; None values leave a setting as it is
        (unset command-line flags)."""
        return DecodeConfig.from_dict({**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})
