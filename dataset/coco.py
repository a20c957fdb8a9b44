"""MS COCO detection reader over an ``instances_*.json`` file (no pycocotools).

COCO boxes are ``[x, y, w, h]`` in continuous pixel coordinates; they become
corners ``(x, y, x + w, y + h)`` clipped to the image, with no one-pixel shift
(unlike VOC, see :mod:`dataset.voc`).

Choices, each as GluonCV's ``COCODetection`` makes them:

- crowd regions (``iscrowd: 1``) are skipped by default; with
  ``keep_crowd=True`` they are kept with ``difficult=True`` so an evaluator can
  ignore detections that fall on them;
- boxes that are empty after clipping (COCO has a few with ``w`` or ``h`` of
  0) are dropped with a debug log line instead of failing the whole file;
  boxes clipped to their image give one warning with their count and an
  example annotation;
- images without (kept) annotations are kept, with ``N = 0``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from common.fileio import PathLike

from .annotation import Annotation, check_class_names

__all__ = ["COCO_CLASSES", "COCODetection"]

logger = logging.getLogger(__name__)


#: The 80 COCO categories (2017 names) in category-id order: the labels 0..79 of models
#: trained on COCO (GluonCV, mmdetection).
COCO_CLASSES = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
                "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
                "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
                "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
                "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
                "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
                "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
                "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
                "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
                "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")


def _load_json(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing list {key!r} (is this an instances_*.json file?)")
    return data


class COCODetection:
    """COCO-format detection dataset.

    Parameters
    ----------
    annotation_json : path-like
        An ``instances_*.json`` file (``images``, ``annotations``,
        ``categories``).
    image_dir : path-like
        Folder holding the images; an image's path is ``image_dir / file_name``
        (images are not opened or checked one by one).
    class_names : sequence of str, optional
        Foreground classes to read, label = index in this sequence; annotations
        of other categories are dropped. ``None``: every category, labels in
        ascending category id order (so ids 1, 3, 90 become labels 0, 1, 2).
    keep_crowd : bool
        Keep ``iscrowd`` boxes as ``difficult`` (default: skip them).

    Attributes
    ----------
    class_names : tuple of str
    category_ids : tuple of int
        ``category_ids[label]`` is the COCO category id of ``label``.
    label_to_category_id, category_id_to_label : dict
        The two mappings, for writing results back in COCO ids.
    ids : tuple of int
        COCO image ids, ascending; ``ds[i]`` annotates image ``ids[i]``.

    Raises
    ------
    FileNotFoundError
        The JSON file or ``image_dir`` is missing.
    ValueError
        Malformed JSON, a class name with no category, duplicated category
        ids or names, or an annotation naming an unknown image or category;
        the message names the file.
    """

    def __init__(self, annotation_json: PathLike, image_dir: PathLike,
                 class_names: Optional[Sequence[str]] = None, keep_crowd: bool = False) -> None:
        path = Path(annotation_json)
        data = _load_json(path)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {self.image_dir}")

        try:
            categories = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: bad category entry ({err!r})") from None
        all_ids = {cid for cid, _ in categories}
        if len(all_ids) != len(categories):
            raise ValueError(f"{path}: duplicated category ids")
        by_name = {}
        for cid, name in categories:
            if name in by_name:
                raise ValueError(f"{path}: category name {name!r} used by ids {by_name[name]} "
                                 f"and {cid}")
            by_name[name] = cid
        if class_names is None:
            if not categories:
                raise ValueError(f"{path}: no categories")
            self.class_names = tuple(name for _, name in categories)
        else:
            self.class_names = check_class_names(class_names)
            missing = [n for n in self.class_names if n not in by_name]
            if missing:
                raise ValueError(f"{path}: no category named {missing}; categories are "
                                 f"{[n for _, n in categories]}")
        self.category_ids: tuple[int, ...] = tuple(by_name[n] for n in self.class_names)
        self.label_to_category_id = dict(enumerate(self.category_ids))
        self.category_id_to_label = {cid: label for label, cid in enumerate(self.category_ids)}

        images = {}
        try:
            for img in data["images"]:
                images[int(img["id"])] = (str(img["file_name"]), int(img["width"]),
                                          int(img["height"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: bad image entry ({err!r})") from None

        objects: dict[int, list[tuple[list[float], int, bool]]] = {i: [] for i in images}
        dropped = 0
        clipped: list[int] = []
        for k, ann in enumerate(data.get("annotations", [])):
            try:
                image_id, cid = int(ann["image_id"]), int(ann["category_id"])
                x, y, w, h = (float(v) for v in ann["bbox"])
                crowd = bool(ann.get("iscrowd", 0))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}: bad annotation {k} ({err!r})") from None
            if image_id not in images:
                raise ValueError(f"{path}: annotation {k} names unknown image id {image_id}")
            if cid not in all_ids:
                raise ValueError(f"{path}: annotation {k} names unknown category id {cid}")
            if cid not in self.category_id_to_label or (crowd and not keep_crowd):
                continue
            _, width, height = images[image_id]
            box = np.clip([x, y, x + w, y + h], 0, [width, height, width, height])
            if not (box[2] > box[0] and box[3] > box[1]):
                dropped += 1
                logger.debug("%s: annotation %d has an empty box %s, dropped", path, k, ann["bbox"])
                continue
            if not np.array_equal(box, [x, y, x + w, y + h]):
                clipped.append(k)
            objects[image_id].append((box.tolist(), self.category_id_to_label[cid], crowd))
        if dropped:
            logger.info("%s: dropped %d empty boxes", path, dropped)
        if clipped:
            logger.warning("%s: clipped %d box%s reaching outside the image to it (e.g. annotation %d, "
                           "id %s)", path, len(clipped), "es" if len(clipped) > 1 else "", clipped[0],
                           data["annotations"][clipped[0]].get("id"))

        self.ids: tuple[int, ...] = tuple(sorted(images))
        self._annotations = []
        for image_id in self.ids:
            file_name, width, height = images[image_id]
            objs = objects[image_id]
            self._annotations.append(Annotation(
                str(self.image_dir / file_name), width, height,
                np.asarray([o[0] for o in objs], dtype=np.float32).reshape(-1, 4),
                np.asarray([o[1] for o in objs], dtype=np.int64),
                np.asarray([o[2] for o in objs], dtype=bool)))
        logger.info("COCODetection %s: %d images, %d classes", path, len(self), len(self.class_names))

    def __len__(self) -> int:
        return len(self._annotations)

    def __getitem__(self, idx: int) -> Annotation:
        return self._annotations[idx]

    def __repr__(self) -> str:
        return f"COCODetection({len(self)} images, {len(self.class_names)} classes)"
