"""Score a detector, or saved detections, on a dataset reader: the logic behind ``evaluate.py``.

A *reader* is any of the dataset readers :func:`dataset.factory.open_dataset`
returns (:class:`dataset.voc.VOCDetection`, :class:`dataset.voc.VOCFolder`,
:class:`dataset.coco.COCODetection`, :class:`dataset.recordio.RecordDetection`):
``len(reader)``, ``reader[i]`` an :class:`~dataset.annotation.Annotation`,
``reader.ids`` and ``reader.class_names``. VOC readers must keep difficult
objects (``use_difficult=True``, the default) and COCO readers crowd regions
(``keep_crowd=True``): the metric decides what they count for.

Predictions are one :class:`ImagePredictions` per image of the reader, in
reader order, boxes in the project's continuous 0-based pixel corners.

Two detection file formats, chosen by the dataset (not by the metric):

- COCO readers: the standard COCO results JSON, a list of ``{"image_id":
  int, "category_id": int, "bbox": [x, y, w, h], "score": float}``;
- every other reader: a JSON list of ``{"image_id": str, "class_name": str,
  "score": float, "bbox": [xmin, ymin, xmax, ymax]}`` where ``image_id`` is
  the annotation's file name without ``.xml`` (``"000005"``; with several VOC
  years, ``"VOC2007/000005"`` when the short id is ambiguous; the record id
  for RecordIO) and ``bbox`` is in VOC's 1-based inclusive pixel indices, as
  in the XML files: a project box ``(x1, y1, x2, y2)`` is written
  ``(x1 + 1, y1 + 1, x2, y2)``, the inverse of :mod:`dataset.voc`'s reading.

>>> reader = open_dataset("folder", "data/synthetic", "test")            # doctest: +SKIP
>>> result = evaluate_detector(Detector.from_checkpoint("model/syn", 30), reader)  # doctest: +SKIP
>>> result.mAP                                                            # doctest: +SKIP
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence, Union

import numpy as np

from evaluate.metrics import COCOMetric, COCOResult, VOCMetric, VOCResult
from common.fileio import PathLike

__all__ = ["DetectionFileError", "ImagePredictions", "METRICS", "coco_ground_truth", "detect_reader",
           "detection_records", "evaluate_detector", "format_table", "image_keys", "is_coco_reader",
           "load_image_of", "make_metric", "read_detections", "score_predictions", "write_detections",
           "write_metrics"]

logger = logging.getLogger(__name__)

Result = Union[VOCResult, COCOResult]
#: ``progress(done, total, seconds)`` after each batch.
Progress = Callable[[int, int, float], None]

METRICS = ("voc07", "voc10", "coco")


class DetectionFileError(ValueError):
    """A detection file that cannot be scored; the message names the file and the entry."""


class DetectorLike(Protocol):
    """What :func:`detect_reader` needs (e.g. :class:`evaluate.detector.Detector`)."""

    batch_size: int

    @property
    def class_names(self) -> Sequence[str]: ...

    def detect(self, images: Sequence[np.ndarray]) -> list: ...


@dataclass(frozen=True, eq=False)
class ImagePredictions:
    """The detections of one image.

    ``boxes`` ``(N, 4)`` float64 corners ``(xmin, ymin, xmax, ymax)`` in
    continuous 0-based pixels; ``labels`` ``(N,)`` int64 0-based foreground
    classes; ``scores`` ``(N,)`` float64.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if not len(boxes) == len(labels) == len(scores):
            raise ValueError(f"{len(boxes)} boxes, {len(labels)} labels and {len(scores)} scores")
        for name, arr in (("boxes", boxes), ("labels", labels), ("scores", scores)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def empty(cls) -> "ImagePredictions":
        return cls(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))

    @classmethod
    def from_detections(cls, detections: Sequence[Any]) -> "ImagePredictions":
        """From :class:`evaluate.detector.Detection` objects (``class_id``, ``score``, ``bbox``)."""
        if not detections:
            return cls.empty()
        return cls(np.array([d.bbox for d in detections], dtype=np.float64),
                   np.array([d.class_id for d in detections], dtype=np.int64),
                   np.array([d.score for d in detections], dtype=np.float64))


# --------------------------------------------------------------------------- readers
def is_coco_reader(reader: Any) -> bool:
    """True for a :class:`dataset.coco.COCODetection` (COCO image and category ids)."""
    return hasattr(reader, "category_id_to_label") and hasattr(reader, "label_to_category_id")


def image_keys(reader: Any) -> list:
    """The ``image_id`` of each image in detection files.

    COCO readers: the COCO image ids (int). Others: strings, the annotation
    file's stem (``VOCDetection``'s ``"VOC2007/000005"`` shortened to
    ``"000005"`` unless two years share it), or the record id.
    """
    if is_coco_reader(reader):
        return [int(i) for i in reader.ids]
    ids = [str(i) for i in reader.ids]
    short = [i.rsplit("/", 1)[-1] for i in ids]
    if len(set(short)) == len(short):
        return short
    return ids


def load_image_of(reader: Any, index: int) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB image of sample ``index`` (a file, or a record)."""
    if hasattr(reader, "image") and callable(reader.image):  # RecordDetection
        return reader.image(index)
    from common.images import load_image

    return load_image(reader[index].image)


# --------------------------------------------------------------------------- running a detector
def detect_reader(detector: DetectorLike, reader: Any, progress: Optional[Progress] = None,
                  limit: Optional[int] = None) -> list[ImagePredictions]:
    """Run ``detector`` on every image of ``reader`` (the first ``limit`` ones if given).

    Images are read in a background thread while the previous batch runs
    through the network. ``progress(done, total, seconds)`` is called after
    each batch (the seconds count from the start, image reading included).
    """
    n = len(reader) if limit is None else min(limit, len(reader))
    step = max(1, int(getattr(detector, "batch_size", 1)))
    chunks = [range(s, min(s + step, n)) for s in range(0, n, step)]
    out: list[ImagePredictions] = []
    start = time.perf_counter()

    def load(chunk: range) -> list[np.ndarray]:
        return [load_image_of(reader, i) for i in chunk]

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, chunks[0]) if chunks else None
        for k in range(len(chunks)):
            images = pending.result()
            pending = pool.submit(load, chunks[k + 1]) if k + 1 < len(chunks) else None
            out.extend(ImagePredictions.from_detections(d) for d in detector.detect(images))
            if progress is not None:
                progress(len(out), n, time.perf_counter() - start)
    return out


# --------------------------------------------------------------------------- scoring
def coco_ground_truth(reader: Any, use_difficult: bool = False) -> Any:
    """A pycocotools ``COCO`` built from a reader's annotations, for COCO AP on any dataset.

    Image ``i`` gets id ``i + 1``, label ``l`` category id ``l + 1``; a box's
    area is its width times height; difficult boxes become ``iscrowd`` regions
    (ignored, as VOC ignores them) unless ``use_difficult``.
    """
    from pycocotools.coco import COCO

    images, annotations = [], []
    for i in range(len(reader)):
        ann = reader[i]
        images.append({"id": i + 1, "width": ann.width, "height": ann.height,
                       "file_name": os.path.basename(ann.image)})
        for box, label, hard in zip(ann.boxes.tolist(), ann.labels.tolist(), ann.difficult.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(label) + 1, "bbox": [box[0], box[1], w, h],
                                "area": w * h, "iscrowd": int(bool(hard) and not use_difficult)})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": k + 1, "name": n} for k, n in enumerate(reader.class_names)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def make_metric(reader: Any, metric: str = "voc07", use_difficult: bool = False,
                iou_thresh: float = 0.5, coco_annotation: Union[PathLike, Any, None] = None
                ) -> Union[VOCMetric, COCOMetric]:
    """An empty metric for ``reader``.

    ``coco_annotation`` (the ``instances_*.json`` of a COCO reader, or a loaded
    ``COCO``) is the ground truth of ``metric="coco"`` on a COCO reader (its
    areas and crowd regions are pycocotools'); without it, and for the other
    readers, the ground truth is :func:`coco_ground_truth`.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if metric != "coco":
        return VOCMetric(reader.class_names, iou_thresh=iou_thresh, metric=metric,
                         use_difficult=use_difficult)
    if is_coco_reader(reader) and coco_annotation is not None:
        return COCOMetric(coco_annotation, reader.label_to_category_id)
    return COCOMetric(coco_ground_truth(reader, use_difficult),
                      list(range(1, len(reader.class_names) + 1)))


def score_predictions(reader: Any, predictions: Sequence[ImagePredictions], metric: str = "voc07",
                      use_difficult: bool = False, iou_thresh: float = 0.5,
                      coco_annotation: Union[PathLike, Any, None] = None) -> Result:
    """Score one :class:`ImagePredictions` per image of ``reader`` (see :func:`make_metric`).

    Returns a :class:`~evaluate.metrics.VOCResult` or a
    :class:`~evaluate.metrics.COCOResult`.
    """
    if len(predictions) != len(reader):
        raise ValueError(f"{len(predictions)} predictions for {len(reader)} images")
    m = make_metric(reader, metric, use_difficult, iou_thresh, coco_annotation)
    keys = image_keys(reader)
    if isinstance(m, VOCMetric):
        for i, pred in enumerate(predictions):
            ann = reader[i]
            m.update(pred.boxes, pred.labels, pred.scores, ann.boxes, ann.labels, ann.difficult,
                     image_id=keys[i])
    else:
        coco_ids = keys if is_coco_reader(reader) and coco_annotation is not None else None
        for i, pred in enumerate(predictions):
            m.update(coco_ids[i] if coco_ids else i + 1, pred.boxes, pred.labels, pred.scores)
    return m.get()


def evaluate_detector(detector: DetectorLike, reader: Any, metric: str = "voc07",
                      use_difficult: bool = False, iou_thresh: float = 0.5,
                      coco_annotation: Union[PathLike, Any, None] = None,
                      progress: Optional[Progress] = None) -> Result:
    """Run ``detector`` over ``reader`` and score it: :func:`detect_reader`, then
    :func:`score_predictions`.

    ``detector`` is anything with ``detect(list of RGB arrays)`` returning one
    list of ``Detection`` per image in pixels, a ``batch_size`` and
    ``class_names`` equal to the reader's.
    """
    names, expected = tuple(detector.class_names), tuple(reader.class_names)
    if names != expected:
        raise ValueError(f"the detector's classes {list(names)} differ from the dataset's "
                         f"{list(expected)}")
    predictions = detect_reader(detector, reader, progress=progress)
    return score_predictions(reader, predictions, metric, use_difficult, iou_thresh, coco_annotation)


def format_table(result: VOCResult) -> str:
    """A per-class table of a VOC result: AP, counted ground truth, detections, then the mean."""
    width = max([len("mAP")] + [len(n) for n in result.ap])
    lines = [f"{'class':<{width}}  {'AP':>7}  {'gt':>6}  {'det':>7}"]
    for name, ap in result.ap.items():
        ap_text = "    n/a" if math.isnan(ap) else f"{ap:7.4f}"
        lines.append(f"{name:<{width}}  {ap_text}  {result.num_gt[name]:6d}  {result.num_det[name]:7d}")
    mean = "    n/a" if math.isnan(result.mAP) else f"{result.mAP:7.4f}"
    lines.append(f"{'mAP':<{width}}  {mean}  {sum(result.num_gt.values()):6d}  "
                 f"{sum(result.num_det.values()):7d}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- detection files
def _load_json_list(path: Path) -> list:
    from common.fileio import read_json

    try:
        data = read_json(path, "detection file",
                         lambda p: "it is empty (an empty detection set is written [])" if not p.read_bytes().strip()
                         else "it is damaged")
    except ValueError as err:
        raise DetectionFileError(str(err)) from None
    if not isinstance(data, list):
        raise DetectionFileError(f"detection file {path} must hold a JSON list of detections, "
                                 f"got a {type(data).__name__}")
    return data


def _number(entry: dict, key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DetectionFileError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _bbox(entry: dict, where: str) -> list[float]:
    box = entry.get("bbox")
    if (not isinstance(box, list) or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in box)):
        raise DetectionFileError(f"{where}: 'bbox' must be a list of 4 finite numbers, got {box!r}")
    return [float(v) for v in box]


def read_detections(path: PathLike, reader: Any) -> list[ImagePredictions]:
    """Read a detection file (format by reader, see the module docstring) into
    one :class:`ImagePredictions` per image of ``reader``.

    Raises
    ------
    FileNotFoundError
        No such file.
    DetectionFileError
        An empty or non-JSON file, an entry that is not a detection, an image
        id without annotation, an unknown class name or category id; the
        message names the file and the entry's index.
    """
    path = Path(path)
    data = _load_json_list(path)
    keys = image_keys(reader)
    index = {k: i for i, k in enumerate(keys)}
    if not is_coco_reader(reader) and len(set(keys)) != len(keys):
        raise DetectionFileError(f"the dataset has duplicated image ids; cannot match {path}")
    rows: list[list[tuple]] = [[] for _ in keys]
    coco = is_coco_reader(reader)
    names = {n: k for k, n in enumerate(reader.class_names)}
    for k, entry in enumerate(data):
        where = f"{path}: detection {k}"
        if not isinstance(entry, dict):
            raise DetectionFileError(f"{where} must be a JSON object, got {entry!r}")
        image_id = entry.get("image_id")
        if coco:
            if isinstance(image_id, bool) or not isinstance(image_id, int):
                raise DetectionFileError(f"{where}: 'image_id' must be an integer COCO image id, "
                                         f"got {image_id!r}")
            cid = entry.get("category_id")
            if cid not in reader.category_id_to_label or isinstance(cid, bool):
                raise DetectionFileError(f"{where}: unknown category_id {cid!r}; the evaluated "
                                         f"categories are {sorted(reader.category_id_to_label)}")
            label = reader.category_id_to_label[cid]
            x, y, w, h = _bbox(entry, where)
            box = (x, y, x + w, y + h)
        else:
            if not isinstance(image_id, str):
                raise DetectionFileError(f"{where}: 'image_id' must be a string (the annotation "
                                         f"file name without .xml), got {image_id!r}")
            name = entry.get("class_name")
            if name not in names:
                raise DetectionFileError(f"{where}: unknown class_name {name!r}; the classes are "
                                         f"{list(reader.class_names)}")
            label = names[name]
            x1, y1, x2, y2 = _bbox(entry, where)
            box = (x1 - 1.0, y1 - 1.0, x2, y2)
        if image_id not in index:
            raise DetectionFileError(f"{where}: no annotation for image_id {image_id!r} in the "
                                     f"dataset ({len(keys)} images)")
        score = _number(entry, "score", where)
        rows[index[image_id]].append((box, label, score))
    out = []
    for r in rows:
        if not r:
            out.append(ImagePredictions.empty())
            continue
        out.append(ImagePredictions(np.array([b for b, _, _ in r]), np.array([lb for _, lb, _ in r]),
                                    np.array([s for _, _, s in r])))
    logger.info("read %d detections for %d images from %s", len(data), len(keys), path)
    return out


def detection_records(reader: Any, predictions: Sequence[ImagePredictions]) -> list[dict]:
    """The JSON entries :func:`write_detections` writes (format by reader)."""
    if len(predictions) != len(reader):
        raise ValueError(f"{len(predictions)} predictions for {len(reader)} images")
    keys = image_keys(reader)
    records = []
    if is_coco_reader(reader):
        cats = reader.label_to_category_id
        for key, pred in zip(keys, predictions):
            for box, label, score in zip(pred.boxes.tolist(), pred.labels.tolist(),
                                         pred.scores.tolist()):
                records.append({"image_id": key, "category_id": int(cats[label]),
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "score": score})
        return records
    names = reader.class_names
    for key, pred in zip(keys, predictions):
        for box, label, score in zip(pred.boxes.tolist(), pred.labels.tolist(), pred.scores.tolist()):
            records.append({"image_id": key, "class_name": names[label], "score": score,
                            "bbox": [box[0] + 1.0, box[1] + 1.0, box[2], box[3]]})
    return records


def write_detections(path: PathLike, reader: Any, predictions: Sequence[ImagePredictions]) -> int:
    """Write the detections of ``reader``'s images atomically; returns their number."""
    from common.fileio import atomic_path

    records = detection_records(reader, predictions)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(records, f)
            f.write("\n")
    return len(records)


def write_metrics(path: PathLike, result: Result) -> None:
    """Write ``result.to_dict()`` as JSON atomically."""
    from common.fileio import write_json

    write_json(path, result.to_dict())
