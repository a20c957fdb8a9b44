"""Precision/recall curves of a VOC evaluation, one PNG per class.

Drawn on matplotlib's Agg canvas directly (no ``pyplot``, no display, no
global figure state), each file written atomically.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from evaluate.metrics import VOCResult
from common.fileio import PathLike

__all__ = ["plot_pr_curves", "pr_curve_path"]

logger = logging.getLogger(__name__)


def pr_curve_path(out_dir: PathLike, class_name: str) -> Path:
    """``OUT_DIR/pr_CLASS.png``, characters other than letters, digits, ``-``, ``_`` and ``.``
    replaced by ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", class_name)
    return Path(out_dir) / f"pr_{safe}.png"


def plot_pr_curves(result: VOCResult, out_dir: PathLike, dpi: int = 80) -> list[Path]:
    """Write the precision/recall curve of every class of ``result``.

    The raw curve is drawn with the precision envelope (the running maximum
    from the right that VOC's AP integrates); the title gives the AP, the
    number of ground-truth boxes and of detections. A class without ground
    truth or without detections gets a figure saying so.

    Returns
    -------
    list of Path
        One file per class, in class order (see :func:`pr_curve_path`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from common.fileio import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    used: set[Path] = set()
    for name, ap in result.ap.items():
        rec = np.asarray(result.recall[name], dtype=np.float64)
        prec = np.asarray(result.precision[name], dtype=np.float64)
        fig = Figure(figsize=(5, 4), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        if result.num_gt[name] == 0:
            ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
        elif rec.size == 0:
            ax.text(0.5, 0.5, "no detections", ha="center", va="center", transform=ax.transAxes)
        else:
            envelope = np.maximum.accumulate(prec[::-1])[::-1]
            ax.plot(rec, prec, color="tab:blue", linewidth=1, label="precision")
            ax.step(rec, envelope, where="post", color="tab:orange", linewidth=1.5,
                    label="envelope")
            ax.legend(loc="lower left")
        ap_text = "n/a" if np.isnan(ap) else f"{ap:.4f}"
        ax.set_title(f"{name}: AP {ap_text} ({result.metric}), {result.num_gt[name]} gt, "
                     f"{result.num_det[name]} det", fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.grid(True, alpha=0.3)
        path = pr_curve_path(out, name)
        k = 2
        while path in used:  # two names that differ only in replaced characters
            path = pr_curve_path(out, f"{name}-{k}")
            k += 1
        used.add(path)
        with atomic_path(path) as tmp:
            fig.savefig(os.fspath(tmp), format="png")
        paths.append(path)
    logger.info("wrote %d precision/recall curves to %s", len(paths), out)
    return paths
