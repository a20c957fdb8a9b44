"""Draw detections, or ground-truth boxes, on an image with matplotlib: boxes, class names, scores.

Overlapping objects keep their labels readable: boxes and labels are drawn in
ascending score, so the best is on top, and labels are placed best first, each
at the first free spot of: above its box, inside its top edge, below its box,
inside its bottom edge (the one overlapping the placed labels least when none
is free).

matplotlib is imported on first use. Saving renders with the Agg canvas
directly (no pyplot, no display needed); only ``show=True`` goes through
pyplot and its interactive backend, and falls back to a warning when there is
no display.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from common.fileio import PathLike, atomic_path

from .detector import Detection

__all__ = ["can_show", "class_color", "draw_boxes", "draw_detections", "draw_on_frame"]

logger = logging.getLogger(__name__)


_DPI = 100.0


@dataclass(frozen=True)
class _Item:
    """One box to draw: pixel corners, colour index, label text, and its rank (higher on top)."""

    bbox: tuple[float, float, float, float]
    class_id: int
    text: str
    score: float


def draw_detections(image: np.ndarray, detections: Sequence[Detection], path: Optional[PathLike] = None,
                    *, show: bool = False, title: Optional[str] = None) -> None:
    """Draw ``detections`` on ``image``; save the picture and/or show it.

    Parameters
    ----------
    image : array
        ``(H, W, 3)`` RGB ``uint8`` image the boxes are in pixels of.
    detections : sequence of Detection
        Boxes ``(xmin, ymin, xmax, ymax)`` in pixels, with class names and scores.
    path : str or path, optional
        Where to save; the format follows the extension (``.png``, ``.jpg``,
        ...). The picture is ``W`` x ``H`` pixels; the file is written
        atomically and its directory is created.
    show : bool
        Also open an interactive window (blocks until it is closed). Without
        an interactive backend (no display) a warning is logged instead.
    title : str, optional
        Window title when showing.
    """
    items = [_Item(tuple(d.bbox), int(d.class_id), f"{d.class_name} {d.score:.2f}", float(d.score))
             for d in detections]
    _render(image, items, path, show, title)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
               path: Optional[PathLike] = None, *, difficult: Optional[Sequence[bool]] = None,
               show: bool = False, title: Optional[str] = None) -> None:
    """Draw ground-truth boxes with their class names (no scores); save and/or show.

    Parameters
    ----------
    image : array
        ``(H, W, 3)`` RGB ``uint8`` image.
    boxes : array, shape (N, 4)
        Corners ``(xmin, ymin, xmax, ymax)`` in pixels of ``image``.
    labels : sequence of int, length N
        0-based indices into ``class_names`` (the colour follows the label,
        as in :func:`draw_detections`).
    class_names : sequence of str
    difficult : sequence of bool, optional
        Objects marked difficult are labelled ``NAME (difficult)``.
    path, show, title
        As in :func:`draw_detections`.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = [int(v) for v in np.asarray(labels).reshape(-1)]
    if len(labels) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    hard = [False] * len(labels) if difficult is None else [bool(v) for v in difficult]
    bad = [v for v in labels if not 0 <= v < len(class_names)]
    if bad:
        raise ValueError(f"label {bad[0]} out of range for {len(class_names)} class names")
    # Ground truth has no score: the first box ranks highest, as it would among detections.
    items = [_Item(tuple(b), v, class_names[v] + (" (difficult)" if h else ""), float(len(labels) - k))
             for k, (b, v, h) in enumerate(zip(boxes.tolist(), labels, hard))]
    _render(image, items, path, show, title)


def _render(image: np.ndarray, items: Sequence[_Item], path: Optional[PathLike], show: bool,
            title: Optional[str]) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got shape {image.shape}")
    if path is None and not show:
        raise ValueError("nothing to do: give a path to save to, or show=True")
    height, width = image.shape[:2]
    # A hair over W x H inches*dpi: the Agg canvas truncates its size to whole pixels.
    figsize = ((width + 0.01) / _DPI, (height + 0.01) / _DPI)
    if show:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, dpi=_DPI)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, dpi=_DPI)
    _draw(fig, image, items)
    if path is not None:
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or "png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=_DPI)
        logger.info("saved %s", path)
    if show:
        _show(fig, title)


def can_show() -> bool:
    """Whether pyplot's backend can open a window (false when headless)."""
    import matplotlib
    import matplotlib.pyplot  # noqa: F401  (selects the backend)
    from matplotlib import rcsetup

    interactive = {b.lower() for b in rcsetup.interactive_bk}
    return matplotlib.get_backend().lower() in interactive


def _draw(fig: Any, image: np.ndarray, items: Sequence[_Item]) -> None:
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.patches import Rectangle

    height, width = image.shape[:2]
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.imshow(image, interpolation="nearest")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    # Line width and font size follow the image size (in points: 72 per inch).
    side = min(width, height)
    line_px = max(1.0, side / 200.0)
    font_px = max(8.0, side / 40.0)
    to_points = 72.0 / _DPI
    pad_px = 1.0 / to_points  # the label box's padding: 1 point
    renderer = RendererAgg(width, height, fig.dpi)  # measures labels; the figure maps 1 px to 1 px
    placed: list[tuple[float, float, float, float]] = []
    # Place the best first (it gets the natural spot), stack the best on top (highest zorder).
    order = sorted(range(len(items)), key=lambda k: (-items[k].score, k))
    for rank, k in enumerate(order):
        item = items[k]
        xmin, ymin, xmax, ymax = item.bbox
        color = class_color(item.class_id)
        zorder = 2 + 2 * (len(items) - rank)
        ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, edgecolor=color,
                               linewidth=line_px * to_points, zorder=zorder))
        text = ax.text(xmin, ymin, item.text, color="white", fontsize=font_px * to_points, va="bottom",
                       bbox={"facecolor": color, "alpha": 0.7, "pad": 1.0, "edgecolor": "none"},
                       clip_on=True, zorder=zorder + 1)
        extent = text.get_window_extent(renderer=renderer)
        w, h = extent.width + 2 * pad_px, extent.height + 2 * pad_px
        y, va, rect = _label_spot(item.bbox, w, h, pad_px, width, height, placed)
        text.set_y(y)
        text.set_verticalalignment(va)
        placed.append(rect)


@functools.lru_cache(maxsize=None)
def class_color(class_id: int) -> tuple[float, float, float, float]:
    """The colour of a class, RGBA in [0, 1]: matplotlib's ``tab10``, cycling (looked up once
    per class: video draws it on every frame)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return cmap(int(class_id) % cmap.N)


def draw_on_frame(frame: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of ``frame`` with ``detections`` drawn by OpenCV (fast enough for video).

    The same boxes, colours, labels and label placement as
    :func:`draw_detections`, in OpenCV's Hershey font.

    Parameters
    ----------
    frame : array
        ``(H, W, 3)`` RGB ``uint8``.
    detections : sequence of Detection
        Boxes ``(xmin, ymin, xmax, ymax)`` in pixels of ``frame``.

    Returns
    -------
    array
        ``(H, W, 3)`` RGB ``uint8``.
    """
    import cv2

    out = np.ascontiguousarray(frame, dtype=np.uint8).copy()
    height, width = out.shape[:2]
    side = min(width, height)
    thickness = max(1, int(round(side / 200.0)))
    scale = max(8.0, side / 40.0) / 22.0  # Hershey simplex: ~22 px per unit of scale
    font = cv2.FONT_HERSHEY_SIMPLEX
    pad = 1.0
    placed: list[tuple[float, float, float, float]] = []
    spots = []
    # Labels placed best first; everything drawn in ascending score, so the best is on top.
    for det in sorted(detections, key=lambda d: -d.score):
        text = f"{det.class_name} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        _, _, rect = _label_spot(tuple(det.bbox), tw + 2 * pad, th + base + 2 * pad, pad, width, height, placed)
        placed.append(rect)
        spots.append((det, text, rect, base))
    for det, text, rect, base in reversed(spots):
        color = tuple(int(round(255 * c)) for c in class_color(det.class_id)[:3])
        xmin, ymin, xmax, ymax = (int(round(v)) for v in det.bbox)
        cv2.rectangle(out, (xmin, ymin), (xmax, ymax), color, thickness)
        x0, y0, x1, y1 = (int(round(v)) for v in rect)
        patch = out[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
        if patch.size:  # the label's background, 70% opaque as in draw_detections
            patch[...] = (0.3 * patch + 0.7 * np.array(color, np.float64)).astype(np.uint8)
        cv2.putText(out, text, (x0 + int(pad), y1 - int(pad) - base), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def _label_spot(bbox: tuple[float, float, float, float], w: float, h: float, pad: float, width: int,
                height: int, placed: Sequence[tuple[float, float, float, float]]
                ) -> tuple[float, str, tuple[float, float, float, float]]:
    """``(y, va, rect)`` of a ``w`` x ``h`` label (padding ``pad`` included) for ``bbox``.

    The first spot inside the image that overlaps no placed label, of: above the box, inside
    its top edge, below it, inside its bottom edge; else the in-image spot overlapping least.
    """
    xmin, ymin, _, ymax = bbox
    x0 = xmin - pad
    spots = [(ymin, "bottom", ymin - h), (ymin, "top", ymin), (ymax, "top", ymax), (ymax, "bottom", ymax - h)]
    candidates = []
    for y, va, top in spots:
        rect = (x0, top, x0 + w, top + h)
        if top < 0 or top + h > height:
            continue
        cost = sum(_overlap(rect, other) for other in placed)
        if cost == 0:
            return y, va, rect
        candidates.append((cost, y, va, rect))
    if candidates:
        _, y, va, rect = min(candidates, key=lambda c: c[0])
        return y, va, rect
    return ymin, "top", (x0, ymin, x0 + w, ymin + h)


def _show(fig: Any, title: Optional[str]) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    if not can_show():
        logger.warning("cannot show the picture: matplotlib backend %r is not interactive "
                       "(no display?)", matplotlib.get_backend())
        plt.close(fig)
        return
    if title and fig.canvas.manager is not None:
        fig.canvas.manager.set_window_title(title)
    plt.show()
    plt.close(fig)
