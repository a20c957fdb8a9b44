"""Box arithmetic in pure NumPy: formats, IoU, the Caffe SSD box coder.

This module is the reference ("oracle") the MXNet graph code (anchors,
targets, decoding) is tested against, and what the training targets use. Every function accepts array-likes, never mutates its inputs and
keeps a floating input's dtype (so a float32 reference follows MXNet's float32
arithmetic); non-floating inputs are promoted to float64.

Box formats
-----------
corners
    ``(xmin, ymin, xmax, ymax)``, with ``xmin <= xmax`` and ``ymin <= ymax`` for
    a proper box. A box with ``xmax <= xmin`` or ``ymax <= ymin`` is empty (area 0).
center
    ``(cx, cy, w, h)``.

The NumPy transcriptions of the decoding (the oracle of the graph's
:class:`~symbol.detection.DetectionOutput`) are :mod:`symbol.reference`'s.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["VARIANCES", "corner_to_center", "center_to_corner", "box_area", "box_iou", "encode", "decode", "softmax"]

#: Caffe SSD's box-regression variances (center x, center y, width, height).
VARIANCES = (0.1, 0.1, 0.2, 0.2)


def _as_float(x: ArrayLike) -> np.ndarray:
    """``x`` as a floating array: floating dtypes kept, anything else float64 (no copy needed)."""
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def _boxes(x: ArrayLike, name: str, ndim: Optional[int] = None) -> np.ndarray:
    """Validate a box array: last dimension 4 (and exactly ``ndim`` dimensions if given)."""
    arr = _as_float(x)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got {arr.shape}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have shape ({'N, ' * (ndim - 1)}4), got {arr.shape}")
    return arr


def _variances(variances: Sequence[float]) -> tuple[float, float, float, float]:
    v = tuple(float(x) for x in variances)
    if len(v) != 4 or not all(x > 0 for x in v):
        raise ValueError(f"variances must be 4 positive numbers, got {tuple(variances)}")
    return v  # type: ignore[return-value]


def corner_to_center(boxes: ArrayLike) -> np.ndarray:
    """``(..., 4)`` corners ``(xmin, ymin, xmax, ymax)`` -> ``(..., 4)`` ``(cx, cy, w, h)``."""
    b = _boxes(boxes, "boxes")
    x1, y1, x2, y2 = (b[..., i] for i in range(4))
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def center_to_corner(boxes: ArrayLike) -> np.ndarray:
    """``(..., 4)`` ``(cx, cy, w, h)`` -> ``(..., 4)`` corners ``(xmin, ymin, xmax, ymax)``."""
    b = _boxes(boxes, "boxes")
    cx, cy, w, h = (b[..., i] for i in range(4))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def box_area(boxes: ArrayLike) -> np.ndarray:
    """``(..., 4)`` corners -> ``(...)`` areas; an inverted box (``xmax < xmin``) has area 0."""
    b = _boxes(boxes, "boxes")
    w = np.maximum(b[..., 2] - b[..., 0], 0)
    h = np.maximum(b[..., 3] - b[..., 1], 0)
    return w * h


def box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Pairwise intersection over union.

    Parameters
    ----------
    a : (N, 4) corners
    b : (M, 4) corners

    Returns
    -------
    (N, M) IoU in [0, 1]. A pair whose union is empty (both boxes of zero area)
    has IoU 0, never NaN.
    """
    a = _boxes(a, "a", ndim=2)
    b = _boxes(b, "b", ndim=2)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    safe = np.where(union > 0, union, 1)
    return np.where(union > 0, inter / safe, 0).astype(inter.dtype, copy=False)


def encode(gt: ArrayLike, anchors: ArrayLike, variances: Sequence[float] = VARIANCES) -> np.ndarray:
    """Caffe CENTER_SIZE regression targets of ground-truth boxes w.r.t. anchors.

    Parameters
    ----------
    gt : (N, 4) corners, positive width and height
    anchors : (N, 4) corners, positive width and height (broadcastable to ``gt``)
    variances : four positive numbers ``(v0, v1, v2, v3)``

    Returns
    -------
    (N, 4) offsets ``(dx, dy, dw, dh)``:
    ``((gcx - acx) / aw / v0, (gcy - acy) / ah / v1, log(gw / aw) / v2, log(gh / ah) / v3)``,
    the encoding of ``mx.nd.contrib.MultiBoxTarget``.
    """
    v0, v1, v2, v3 = _variances(variances)
    g = corner_to_center(gt)
    a = corner_to_center(anchors)
    if np.any(g[..., 2:] <= 0) or np.any(a[..., 2:] <= 0):
        raise ValueError("encode needs boxes and anchors of positive width and height")
    return np.stack([(g[..., 0] - a[..., 0]) / a[..., 2] / v0,
                     (g[..., 1] - a[..., 1]) / a[..., 3] / v1,
                     np.log(g[..., 2] / a[..., 2]) / v2,
                     np.log(g[..., 3] / a[..., 3]) / v3], axis=-1)


def decode(deltas: ArrayLike, anchors: ArrayLike, variances: Sequence[float] = VARIANCES) -> np.ndarray:
    """Inverse of :func:`encode`: offsets applied to anchors, as unclipped corners.

    Parameters
    ----------
    deltas : (N, 4) offsets ``(dx, dy, dw, dh)``
    anchors : (N, 4) corners (broadcastable to ``deltas``)
    variances : four positive numbers

    Returns
    -------
    (N, 4) corners ``(xmin, ymin, xmax, ymax)``, computed in the order of
    ``mx.nd.contrib.MultiBoxDetection``.
    """
    v0, v1, v2, v3 = _variances(variances)
    d = _boxes(deltas, "deltas")
    a = corner_to_center(anchors)
    cx = d[..., 0] * v0 * a[..., 2] + a[..., 0]
    cy = d[..., 1] * v1 * a[..., 3] + a[..., 1]
    w = np.exp(d[..., 2] * v2) * a[..., 2]
    h = np.exp(d[..., 3] * v3) * a[..., 3]
    return center_to_corner(np.stack([cx, cy, w, h], axis=-1))


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax of ``x`` along ``axis`` (shape kept)."""
    z = _as_float(x)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
