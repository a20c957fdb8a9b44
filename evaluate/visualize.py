"""Draw detections on an image with matplotlib: boxes, class names and scores.

matplotlib is imported on first use. Saving renders with the Agg canvas
directly (no pyplot, no display needed); only ``show=True`` goes through
pyplot and its interactive backend, and falls back to a warning when there is
no display.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from common.fileio import atomic_path

from .detector import Detection

__all__ = ["can_show", "draw_detections"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

_DPI = 100.0


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
    _draw(fig, image, detections)
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


def _draw(fig: Any, image: np.ndarray, detections: Sequence[Detection]) -> None:
    import matplotlib
    from matplotlib.patches import Rectangle

    height, width = image.shape[:2]
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.imshow(image, interpolation="nearest")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    cmap = matplotlib.colormaps["tab10"]
    # Line width and font size follow the image size (in points: 72 per inch).
    side = min(width, height)
    line_px = max(1.0, side / 200.0)
    font_px = max(8.0, side / 40.0)
    to_points = 72.0 / _DPI
    for det in detections:
        xmin, ymin, xmax, ymax = det.bbox
        color = cmap(det.class_id % cmap.N)
        ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, edgecolor=color,
                               linewidth=line_px * to_points))
        ax.text(xmin, ymin, f"{det.class_name} {det.score:.2f}", color="white",
                fontsize=font_px * to_points, va="bottom" if ymin > font_px * 1.5 else "top",
                bbox={"facecolor": color, "alpha": 0.7, "pad": 1.0, "edgecolor": "none"},
                clip_on=True)


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
