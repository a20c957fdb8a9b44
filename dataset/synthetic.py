"""A synthetic VOC-format detection dataset: coloured shapes on cluttered backgrounds.

Useful to check that training, evaluation and export work end to end in
minutes on a CPU. :func:`make_synthetic` writes::

    out/Annotations/000000.xml ...
    out/JPEGImages/000000.jpg ...
    out/ImageSets/Main/train.txt, test.txt

readable with :class:`dataset.voc.VOCFolder`. Classes are
:data:`SYNTHETIC_CLASSES` (filled circles, axis-aligned squares, triangles)
in random colours, on a random background colour with random lines,
elongated ellipses ("blobs", the distractors) and Gaussian noise. Some images
(``empty_fraction``) have no objects. Objects overlap little (intersection
at most a quarter of the smaller box), so none is hidden.

Boxes are the tight bounding box of each shape's drawn pixels, written in
VOC's 1-based inclusive convention (the inverse of :mod:`dataset.voc`'s
reading). Everything derives from ``seed``: the same arguments give
byte-identical files.
"""
from __future__ import annotations

import logging
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from common.fileio import PathLike

__all__ = ["SYNTHETIC_CLASSES", "draw_sample", "make_synthetic", "write_voc_xml"]

logger = logging.getLogger(__name__)


#: Class names of the synthetic dataset, in label order (also the sorted order).
SYNTHETIC_CLASSES = ("circle", "square", "triangle")

_MAX_TRIES = 30
_MAX_OVERLAP = 0.25
_JPEG_QUALITY = 92


def _cv2():
    import cv2  # imported on use: OpenCV is slow to import and only needed here

    return cv2


def _colour(rng: np.random.Generator, avoid: np.ndarray, min_dist: int = 120) -> tuple[int, ...]:
    """A random BGR colour at L1 distance >= ``min_dist`` from ``avoid`` (best of a few tries)."""
    best, best_dist = None, -1
    for _ in range(10):
        c = rng.integers(0, 256, 3)
        dist = int(np.abs(c - avoid).sum())
        if dist > best_dist:
            best, best_dist = c, dist
        if dist >= min_dist:
            break
    return tuple(int(v) for v in best)  # type: ignore[union-attr]


def _overlaps(box: np.ndarray, others: list[np.ndarray]) -> bool:
    for o in others:
        iw = min(box[2], o[2]) - max(box[0], o[0])
        ih = min(box[3], o[3]) - max(box[1], o[1])
        if iw > 0 and ih > 0:
            smaller = min((box[2] - box[0]) * (box[3] - box[1]), (o[2] - o[0]) * (o[3] - o[1]))
            if iw * ih > _MAX_OVERLAP * smaller:
                return True
    return False


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    cv2 = _cv2()
    base = rng.integers(0, 256, 3)
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = base
    for _ in range(int(rng.integers(3, 12))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(img, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])),
                 tuple(int(v) for v in rng.integers(0, 256, 3)), int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(1, 6))):
        center = tuple(int(v) for v in rng.integers(0, size, 2))
        major = int(rng.integers(max(4, size // 20), max(5, size // 6)))
        axes = (major, max(1, major // int(rng.integers(3, 6))))  # elongated: not a circle
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360,
                    tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return img, base


def _shape_mask(rng: np.random.Generator, shape: str, size: int, x0: int, y0: int,
                s: int) -> np.ndarray:
    """uint8 mask of one shape drawn inside the square ``[x0, x0 + s) x [y0, y0 + s)``."""
    cv2 = _cv2()
    mask = np.zeros((size, size), dtype=np.uint8)
    if shape == "circle":
        r = (s - 1) // 2
        cv2.circle(mask, (x0 + r, y0 + r), r, 255, -1)
    elif shape == "square":
        cv2.rectangle(mask, (x0, y0), (x0 + s - 1, y0 + s - 1), 255, -1)
    else:
        apex = x0 + int(rng.integers(0, s))
        top, bottom = (y0, y0 + s - 1) if rng.random() < 0.5 else (y0 + s - 1, y0)
        pts = np.array([[apex, top], [x0, bottom], [x0 + s - 1, bottom]], dtype=np.int32)
        cv2.fillPoly(mask, [pts], 255)
    return mask


def draw_sample(rng: np.random.Generator, image_size: int = 300, max_objects: int = 4,
                empty_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one synthetic image.

    Returns
    -------
    image : np.ndarray, shape (image_size, image_size, 3), uint8, BGR
    boxes : np.ndarray, shape (N, 4), int64
        Tight corners ``(xmin, ymin, xmax, ymax)`` in continuous 0-based
        pixels (the shape's pixels span ``xmin .. xmax - 1``).
    labels : np.ndarray, shape (N,), int64
        Indices into :data:`SYNTHETIC_CLASSES`. ``N`` is 0 with probability
        ``empty_fraction``, otherwise 1 to ``max_objects`` (fewer when no
        free place is found).
    """
    img, base = _background(rng, image_size)
    n = 0 if rng.random() < empty_fraction else int(rng.integers(1, max_objects + 1))
    smin = max(8, image_size // 10)
    smax = max(smin + 1, image_size // 2)
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(n):
        label = int(rng.integers(0, len(SYNTHETIC_CLASSES)))
        for _ in range(_MAX_TRIES):
            s = int(rng.integers(smin, min(smax, image_size) + 1))
            x0, y0 = (int(v) for v in rng.integers(0, image_size - s + 1, 2))
            mask = _shape_mask(rng, SYNTHETIC_CLASSES[label], image_size, x0, y0, s)
            ys, xs = np.nonzero(mask)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.int64)
            if not _overlaps(box, boxes):
                break
        else:
            continue
        img[mask > 0] = _colour(rng, base)
        boxes.append(box)
        labels.append(label)
    noise = rng.normal(0.0, 10.0, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    return (img, np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64))


def write_voc_xml(path: PathLike, filename: str, width: int, height: int, boxes: np.ndarray,
                  names: Sequence[str], difficult: Optional[Sequence[bool]] = None) -> None:
    """Write a VOC annotation file.

    ``boxes`` ``(N, 4)`` are integer continuous 0-based corners (as
    :func:`dataset.voc.parse_voc_xml` returns them); they are written as VOC's
    1-based inclusive ``(xmin + 1, ymin + 1, xmax, ymax)``.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(names) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(names)} names")
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(int(value))
    ET.SubElement(root, "segmented").text = "0"
    for i, (box, name) in enumerate(zip(boxes, names)):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(int(bool(difficult[i]))) if difficult else "0"
        bndbox = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bndbox, tag).text = str(value)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="\t")
    tree.write(path, encoding="utf-8", xml_declaration=False)


def make_synthetic(output: PathLike, num_images: int = 200, image_size: int = 300,
                   max_objects: int = 4, test_fraction: float = 0.2,
                   empty_fraction: float = 0.1, seed: int = 0,
                   force: bool = False) -> dict[str, int]:
    """Write a synthetic VOC-format dataset to ``output`` (see the module docstring).

    Parameters
    ----------
    output : path-like
        Target folder; created if missing. A non-empty folder is refused
        (``FileExistsError``) unless ``force``, which deletes its
        ``Annotations``, ``JPEGImages`` and ``ImageSets`` sub-folders first
        (and nothing else).
    num_images : int
        Number of images (>= 1), named ``000000`` ... in order.
    image_size : int
        Side of the square images in pixels (>= 32).
    max_objects : int
        Most objects in one image (>= 1).
    test_fraction : float
        Share of images listed in ``test.txt`` (rounded; in [0, 1)); the rest
        go to ``train.txt``. The split is a seeded random choice.
    empty_fraction : float
        Probability that an image has no objects, in [0, 1].
    seed : int
        Seed of everything.

    Returns
    -------
    dict
        ``{"train": ..., "test": ..., "objects": ..., "empty": ...}`` counts.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
    if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
        raise ValueError(f"max_objects must be a positive integer, got {max_objects!r}")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    if not 0 <= empty_fraction <= 1:
        raise ValueError(f"empty_fraction must be in [0, 1], got {empty_fraction!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed!r}")

    out = Path(output)
    subdirs = (out / "Annotations", out / "JPEGImages", out / "ImageSets")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"output folder is not empty: {out} (use --force to overwrite)")
        for d in subdirs:
            if d.is_dir():
                shutil.rmtree(d)
    for d in (out / "Annotations", out / "JPEGImages", out / "ImageSets" / "Main"):
        d.mkdir(parents=True, exist_ok=True)

    cv2 = _cv2()
    children = np.random.SeedSequence(seed).spawn(num_images + 1)
    n_test = int(round(test_fraction * num_images))
    test = set(np.random.default_rng(children[0]).permutation(num_images)[:n_test].tolist())
    train_ids, test_ids = [], []
    n_objects = n_empty = 0
    for i in range(num_images):
        image_id = f"{i:06d}"
        img, boxes, labels = draw_sample(np.random.default_rng(children[i + 1]), image_size,
                                         max_objects, empty_fraction)
        if not cv2.imwrite(str(out / "JPEGImages" / f"{image_id}.jpg"), img,
                           [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
            raise OSError(f"could not write {out / 'JPEGImages' / f'{image_id}.jpg'}")
        write_voc_xml(out / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", image_size,
                      image_size, boxes, [SYNTHETIC_CLASSES[k] for k in labels])
        (test_ids if i in test else train_ids).append(image_id)
        n_objects += len(labels)
        n_empty += len(labels) == 0
    main = out / "ImageSets" / "Main"
    (main / "train.txt").write_text("".join(f"{i}\n" for i in train_ids))
    (main / "test.txt").write_text("".join(f"{i}\n" for i in test_ids))
    summary = {"train": len(train_ids), "test": len(test_ids), "objects": n_objects,
               "empty": n_empty}
    logger.info("wrote %d synthetic images to %s: %s", num_images, out, summary)
    return summary
