"""Do two detectors agree? Pair the detections of a reference and of ours, per class.

Used to prove that a converted model detects what its home framework detects
(OpenCV dnn for Caffe files, MXNet's executor for mxnet-ssd symbols): every
detection scoring at least ``thresh`` in either list must have a partner of the
same class in the other, with IoU >= ``min_iou`` and a score within
``score_tol``; none missing, none extra.

>>> ref = np.array([[0, 0.9, 0.1, 0.1, 0.5, 0.5]])
>>> match_detections(ref, ref.copy()).ok
True
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from symbol.boxes import box_iou

__all__ = ["FileParity", "Parity", "compare_detection_files", "match_detections", "read_detection_file"]


@dataclass
class Parity:
    """The outcome of :func:`match_detections`.

    Attributes
    ----------
    pairs : list of (reference row, our row)
        Rows ``[class, score, x1, y1, x2, y2]`` paired by class and overlap.
    missing : list of rows
        Reference detections scoring ``>= thresh + score_tol`` that have no partner.
    extra : list of rows
        Our detections scoring ``>= thresh + score_tol`` that have no partner.
    score_tol, min_iou : float
        The tolerances :attr:`ok` applies.
    """

    pairs: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    score_tol: float = 2e-3
    min_iou: float = 0.97

    @property
    def max_score_diff(self) -> float:
        """Largest ``|score difference|`` over the pairs (0 without pairs)."""
        return max((abs(float(a[1]) - float(b[1])) for a, b in self.pairs), default=0.0)

    @property
    def worst_iou(self) -> float:
        """Smallest IoU of a pair (1 without pairs)."""
        return min((_iou(a, b) for a, b in self.pairs), default=1.0)

    @property
    def ok(self) -> bool:
        """No detection missing or extra, every pair within the tolerances."""
        return (not self.missing and not self.extra and self.max_score_diff <= self.score_tol
                and self.worst_iou >= self.min_iou)

    def summary(self) -> str:
        """One line: counts and worst differences."""
        return (f"{len(self.pairs)} matched, {len(self.missing)} missing, {len(self.extra)} extra; "
                f"worst score difference {self.max_score_diff:.2e}, worst IoU {self.worst_iou:.6f}")


def _ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of the boxes of rows ``a`` and ``b``; equal boxes have IoU 1, also
    when clipping to the image left them without area."""
    iou = box_iou(a[:, 2:6], b[:, 2:6])
    same = np.all(np.abs(a[:, None, 2:6] - b[None, :, 2:6]) <= 1e-6, axis=-1)
    return np.where(same, 1.0, iou)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(_ious(np.asarray(a, np.float64)[None], np.asarray(b, np.float64)[None])[0, 0])


def match_detections(reference: np.ndarray, ours: np.ndarray, thresh: float = 0.3,
                     score_tol: float = 2e-3, min_iou: float = 0.97) -> Parity:
    """Pair two detectors' detections of one image.

    Parameters
    ----------
    reference, ours : (N, 6) and (M, 6) arrays
        Rows ``[class_id, score, xmin, ymin, xmax, ymax]``, boxes as corners in
        the same coordinates for both (normalized or pixels); rows of class -1
        are ignored. Give rows down to ``thresh - score_tol``, so that a
        detection just above the threshold in one list finds its partner just
        below it in the other.
    thresh : float
        Detections scoring at least this must have a partner.
    score_tol, min_iou : float
        What :attr:`Parity.ok` accepts for a pair.

    Returns
    -------
    Parity
        Per class, reference rows in descending score each take the free row
        of ours with the highest IoU (at least 0.5; equal boxes, even without
        area, have IoU 1), the closest score among equal overlaps; a row
        scoring within ``score_tol`` of ``thresh`` may stay unpaired.
    """
    reference = np.asarray(reference, np.float64).reshape(-1, 6)
    ours = np.asarray(ours, np.float64).reshape(-1, 6)
    result = Parity(score_tol=score_tol, min_iou=min_iou)
    low, high = thresh - score_tol, thresh + score_tol
    reference = reference[(reference[:, 0] >= 0) & (reference[:, 1] >= low)]
    ours = ours[(ours[:, 0] >= 0) & (ours[:, 1] >= low)]
    for cls in sorted(set(reference[:, 0].tolist()) | set(ours[:, 0].tolist())):
        a = reference[reference[:, 0] == cls]
        b = ours[ours[:, 0] == cls]
        a = a[np.argsort(-a[:, 1], kind="stable")]
        free = np.ones(len(b), bool)
        iou = _ious(a, b) if len(a) and len(b) else np.zeros((len(a), len(b)))
        for i, row in enumerate(a):
            candidates = np.where(free, iou[i], -1.0)
            best = candidates.max() if len(b) else -1.0
            if best >= 0.5:
                # The best overlap; among equal ones (duplicates) the closest score.
                tied = np.flatnonzero(candidates >= best - 1e-9)
                j = int(tied[np.argmin(np.abs(b[tied, 1] - row[1]))])
                free[j] = False
                result.pairs.append((row, b[j]))
            elif row[1] >= high:
                result.missing.append(row)
        result.extra.extend(row for row, f in zip(b, free) if f and row[1] >= high)
    return result


# --------------------------------------------------------------------------- detection files
@dataclass
class FileParity:
    """Two detection files (``demo.py --save-json``'s format) compared image by image.

    Attributes
    ----------
    images : list of (str, Parity)
        Each image of the reference file (its name as written) and its :class:`Parity`.
    """

    images: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for _, p in self.images)

    def summary(self, thresh: float) -> str:
        """One line: images, detections >= ``thresh`` matched, missing, extra, worst differences."""
        pairs = [pair for _, p in self.images for pair in p.pairs if max(pair[0][1], pair[1][1]) >= thresh]
        missing = sum(len(p.missing) for _, p in self.images)
        extra = sum(len(p.extra) for _, p in self.images)
        score = max((p.max_score_diff for _, p in self.images), default=0.0)
        iou = min((p.worst_iou for _, p in self.images), default=1.0)
        return (f"{len(self.images)} image(s): {len(pairs)} detection(s) >= {thresh:g} matched, "
                f"{missing} missing, {extra} extra; worst score difference {score:.1e}, "
                f"worst IoU {iou:.6f}: {'the same' if self.ok else 'DIFFERENT'}")


def read_detection_file(path) -> dict[str, tuple[float, float, list[tuple[str, float, list[float]]]]]:
    """The detections of a ``demo.py --save-json`` file, by image.

    Returns
    -------
    dict
        ``image -> (width, height, [(class_name, score, [xmin, ymin, xmax, ymax]), ...])``,
        boxes in pixels, as written.

    Raises
    ------
    FileNotFoundError, ValueError
        No such file, or not such a file (the message names it and the entry).
    """
    from common.fileio import read_json

    data = read_json(path, "detection file")
    if not isinstance(data, list):
        raise ValueError(f"{path}: not a detection file of demo.py --save-json (a JSON list of images)")
    out = {}
    for k, entry in enumerate(data):
        try:
            rows = [(str(d["class_name"]), float(d["score"]), [float(v) for v in d["bbox"]])
                    for d in entry["detections"]]
            if any(len(box) != 4 for _, _, box in rows):
                raise ValueError("a bbox of other than 4 numbers")
            out[str(entry["image"])] = (float(entry["width"]), float(entry["height"]), rows)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: image entry {k} is not one of demo.py --save-json "
                             f"({type(err).__name__}: {err})") from None
    return out


def compare_detection_files(reference, ours, thresh: float = 0.3, score_tol: float = 2e-3,
                            min_iou: float = 0.97) -> FileParity:
    """Compare two ``demo.py --save-json`` files with :func:`match_detections`, per image.

    Images are paired by the name written in the files, else by file name
    when the folders differ; classes by name; boxes in pixels. Every image of
    ``reference`` must be in ``ours``.

    Raises
    ------
    ValueError
        A file that cannot be read, or an image of the reference that ``ours`` lacks.
    """
    ref = read_detection_file(reference)
    got = read_detection_file(ours)
    by_name: dict[str, list[str]] = {}
    for image in got:
        by_name.setdefault(os.path.basename(image), []).append(image)
    names = sorted({c for _, _, rows in list(ref.values()) + list(got.values()) for c, _, _ in rows})
    ids = {c: i for i, c in enumerate(names)}

    def rows(dets: list) -> np.ndarray:
        return np.array([[ids[c], s, *box] for c, s, box in dets], np.float64).reshape(-1, 6)

    result = FileParity()
    for image, (_, _, dets) in ref.items():
        if image in got:
            other = image
        elif len(by_name.get(os.path.basename(image), [])) == 1:
            other = by_name[os.path.basename(image)][0]
        else:
            raise ValueError(f"{ours} has no detections of {image} (in {reference})")
        result.images.append((image, match_detections(rows(dets), rows(got[other][2]), thresh, score_tol, min_iou)))
    return result
