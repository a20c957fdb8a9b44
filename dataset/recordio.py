"""Detection RecordIO: write im2rec ``.lst`` files, pack them, read the records back.

Label layout
------------
Each record's label is a flat float32 vector, the layout MXNet's
``ImageDetIter`` and GluonCV's ``RecordFileDetection`` read::

    [2, 6,  c, xmin, ymin, xmax, ymax, difficult,  c, xmin, ...,  -1, -1, -1, -1, -1, -1, ...]

a header of width 2 holding ``(header width, object width)`` = ``(2, 6)``,
then one row of 6 per object: the 0-based foreground class, the corners
normalized by the image width and height (in [0, 1]) and the difficult flag
(0 or 1). Every record has the same number of rows, the largest object count
of the data set (at least 1); shorter ones are padded with rows of ``-1``,
which readers drop (``ImageDetIter`` drops them because ``xmax > xmin`` fails).

mxnet-ssd padded every label to a fixed 350 values, so images with more than
57 objects were silently truncated; here the width comes from the data and
nothing is ever dropped.

The ``.lst`` file is im2rec's detection format, one image a line::

    index \\t 2 \\t 6 \\t c xmin ymin xmax ymax difficult (tab-separated) ... \\t path

with ``path`` relative to the root given to im2rec (absolute when the image is
outside it). :func:`pack_records` runs the ``im2rec.py`` shipped in the
``mxnet`` package with ``--pack-label --pass-through``: the original image
bytes (JPEG or PNG) are stored unchanged, so packing loses no quality and
:class:`RecordDetection` recovers each image's size by decoding it.

The records hold class indices only; their names travel in ``PREFIX.names``
beside ``PREFIX.rec`` (one a line, see :mod:`dataset.classes`), which
:func:`make_records` writes and :class:`RecordDetection` reads.
"""
from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from common.fileio import PathLike

from .annotation import Annotation, check_class_names
from .classes import names_path, read_names_file, write_names_file

__all__ = ["HEADER_WIDTH", "OBJECT_WIDTH", "RecordDetection", "detection_label", "find_im2rec",
           "make_records", "pack_records", "parse_detection_label", "write_detection_list"]

logger = logging.getLogger(__name__)


#: Label header width: the header is ``(HEADER_WIDTH, OBJECT_WIDTH)``.
HEADER_WIDTH = 2
#: Values per object: class, xmin, ymin, xmax, ymax, difficult.
OBJECT_WIDTH = 6
_PAD = -1.0


def _cv2():
    import cv2  # imported on use: OpenCV is slow to import

    return cv2


def detection_label(ann: Annotation, rows: int) -> np.ndarray:
    """The flat label of ``ann`` with ``rows`` object rows (see the module docstring).

    Returns a float64 vector of length ``2 + 6 * rows``; rows past
    ``ann.num_objects`` are ``-1``. Raises ``ValueError`` when the image has
    more objects than ``rows`` (never truncates).
    """
    if ann.num_objects > rows:
        raise ValueError(f"{ann.image} has {ann.num_objects} objects but the label has room for "
                         f"{rows}")
    body = np.full((rows, OBJECT_WIDTH), _PAD, dtype=np.float64)
    n = ann.num_objects
    body[:n, 0] = ann.labels
    body[:n, 1:5] = ann.normalized_boxes()
    body[:n, 5] = ann.difficult
    return np.concatenate([[HEADER_WIDTH, OBJECT_WIDTH], body.reshape(-1)])


def _lst_path(image: str, root: Optional[Path]) -> str:
    path = Path(image).resolve()
    if root is not None:
        try:
            path = path.relative_to(root.resolve())
        except ValueError:
            pass  # outside the root: keep it absolute (im2rec joins root and an absolute path to the latter)
    text = path.as_posix()
    if "\t" in text or "\n" in text or "\r" in text:
        raise ValueError(f"image path contains a tab or newline, which the .lst format cannot hold: "
                         f"{image!r}")
    return text


def _format(values: np.ndarray) -> str:
    out = []
    for i, v in enumerate(values):
        if v == _PAD or (i < HEADER_WIDTH) or (i - HEADER_WIDTH) % OBJECT_WIDTH in (0, 5):
            out.append(str(int(v)))  # header, class, difficult and padding are integers
        else:
            out.append(f"{v:.7f}")
    return "\t".join(out)


def write_detection_list(annotations: Sequence[Annotation], lst_path: PathLike,
                         root: Optional[PathLike] = None, shuffle: bool = True,
                         seed: int = 0) -> int:
    """Write an im2rec detection ``.lst`` file; returns the number of object rows per label.

    Parameters
    ----------
    annotations : sequence of Annotation
        The images, each checked to exist.
    lst_path : path-like
        Output file (parent folders are created).
    root : path-like, optional
        Folder the image paths are written relative to (the root im2rec is
        given); images outside it, or all when ``None``, are written absolute.
    shuffle, seed : bool, int
        Write the images in a seeded random order (``index`` is the line
        number either way).

    Raises ``ValueError`` for an empty input and ``FileNotFoundError`` for a
    missing image, naming it.
    """
    if len(annotations) == 0:
        raise ValueError("no images to write")
    anns = list(annotations)
    for ann in anns:
        if not isinstance(ann, Annotation):
            raise TypeError(f"expected Annotation records, got {type(ann).__name__}")
        if not Path(ann.image).is_file():
            raise FileNotFoundError(f"image not found: {ann.image}")
    order = np.random.default_rng(seed).permutation(len(anns)) if shuffle else range(len(anns))
    rows = max(1, max(a.num_objects for a in anns))
    root_path = Path(root) if root is not None else None
    lst_path = Path(lst_path)
    lst_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lst_path, "w", encoding="utf-8") as f:
        for index, k in enumerate(order):
            ann = anns[int(k)]
            f.write(f"{index}\t{_format(detection_label(ann, rows))}\t{_lst_path(ann.image, root_path)}\n")
    logger.info("wrote %s: %d images, %d object rows per label", lst_path, len(anns), rows)
    return rows


def find_im2rec() -> Path:
    """Path of the ``im2rec.py`` shipped in the installed ``mxnet`` package (not imported)."""
    spec = importlib.util.find_spec("mxnet")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the mxnet package is not installed, so im2rec.py is unavailable")
    script = Path(spec.origin).parent / "tools" / "im2rec.py"
    if not script.is_file():
        raise FileNotFoundError(f"im2rec.py not found in the mxnet package: {script}")
    return script


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def pack_records(lst_path: PathLike, root: PathLike, num_thread: int = 1) -> tuple[Path, Path]:
    """Pack ``PREFIX.lst`` into ``PREFIX.rec`` and ``PREFIX.idx`` with MXNet's im2rec.

    Runs ``im2rec.py PREFIX.lst ROOT --pack-label --pass-through --num-thread N``
    in a subprocess (original image bytes, full label vectors). Raises
    ``RuntimeError`` with im2rec's last message when it fails or packs fewer
    records than the list has lines.
    """
    lst_path = Path(lst_path).resolve()
    if not lst_path.is_file():
        raise FileNotFoundError(f"list file not found: {lst_path}")
    if isinstance(num_thread, bool) or not isinstance(num_thread, int) or num_thread < 1:
        raise ValueError(f"num_thread must be a positive integer, got {num_thread!r}")
    # Passing the .lst itself as im2rec's prefix keeps it from packing other
    # PREFIX*.lst files of the same folder.
    cmd = [sys.executable, str(find_im2rec()), str(lst_path), str(Path(root).resolve()),
           "--pack-label", "--pass-through", "--num-thread", str(num_thread)]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"im2rec failed (exit {proc.returncode}): "
                           f"{_last_line(proc.stderr) or _last_line(proc.stdout)}")
    rec, idx = lst_path.with_suffix(".rec"), lst_path.with_suffix(".idx")
    with open(lst_path, encoding="utf-8") as f:
        expected = sum(1 for line in f if line.strip())
    packed = 0
    if idx.is_file():
        with open(idx, encoding="utf-8") as f:
            packed = sum(1 for line in f if line.strip())
    if not rec.is_file() or packed != expected:
        errors = [line for line in proc.stdout.splitlines() if "error" in line.lower()]
        raise RuntimeError(f"im2rec packed {packed} of {expected} images into {rec}"
                           + (f": {errors[0].strip()}" if errors else ""))
    return rec, idx


def make_records(annotations: Sequence[Annotation], prefix: PathLike,
                 root: Optional[PathLike] = None, shuffle: bool = True, seed: int = 0,
                 num_thread: int = 1, class_names: Optional[Sequence[str]] = None) -> dict[str, int]:
    """Write ``PREFIX.lst`` then pack ``PREFIX.rec`` / ``PREFIX.idx``, and ``PREFIX.names``.

    ``root`` is as in :func:`write_detection_list` (default: the filesystem
    root, so every path is absolute). ``class_names`` (label = index) are
    written to ``PREFIX.names`` atomically once the records are packed; without
    them an older ``PREFIX.names`` is removed, so no file names other classes.
    Returns ``{"images", "objects", "rows"}`` counts.
    """
    prefix = Path(prefix)
    names = check_class_names(class_names) if class_names is not None else None
    lst = prefix.parent / (prefix.name + ".lst")
    rows = write_detection_list(annotations, lst, root=root, shuffle=shuffle, seed=seed)
    rec, _ = pack_records(lst, root if root is not None else Path(lst.anchor or "/"), num_thread=num_thread)
    if names is not None:
        write_names_file(names_path(rec), names)
    elif names_path(rec).exists():
        names_path(rec).unlink()
        logger.info("removed %s: no class names were given for the new records", names_path(rec))
    return {"images": len(annotations), "objects": sum(a.num_objects for a in annotations),
            "rows": rows}


def parse_detection_label(raw: np.ndarray, width: int, height: int,
                          where: str = "record") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a flat detection label into pixel ``(boxes (N, 4), labels (N,), difficult (N,))``.

    Accepts any header width ``>= 2`` (extra header values are skipped) and
    object width ``>= 5`` (the difficult flag is column 5 when present, else
    False). Rows with a negative class are padding and dropped. Boxes are
    scaled by ``(width, height)`` and clipped to the image; a row that is
    empty after that raises ``ValueError`` naming ``where`` and the row.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1)
    if raw.size < 2:
        raise ValueError(f"{where}: label has {raw.size} values, fewer than the 2-value header")
    header, obj_width = raw[0], raw[1]
    if header != int(header) or not 2 <= header <= raw.size:
        raise ValueError(f"{where}: bad label header width {header:g}")
    if obj_width != int(obj_width) or obj_width < 5:
        raise ValueError(f"{where}: bad object width {obj_width:g} (need >= 5)")
    body = raw[int(header):]
    if body.size % int(obj_width):
        raise ValueError(f"{where}: {body.size} label values do not make rows of {int(obj_width)}")
    rows = body.reshape(-1, int(obj_width))
    rows = rows[rows[:, 0] >= 0]
    classes = rows[:, 0]
    if not np.all(classes == np.round(classes)):
        raise ValueError(f"{where}: non-integer class ids {classes[classes != np.round(classes)][:3]}")
    scale = np.array([width, height, width, height], dtype=np.float64)
    boxes = np.clip(rows[:, 1:5] * scale, 0, scale)
    empty = np.flatnonzero(~((boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])))
    if empty.size:
        i = int(empty[0])
        raise ValueError(f"{where}: object {i} has an empty box {rows[i, 1:5].tolist()} "
                         f"(normalized) in the {width}x{height} image")
    difficult = rows[:, 5] > 0.5 if rows.shape[1] > 5 else np.zeros(len(rows), dtype=bool)
    return boxes.astype(np.float32), classes.astype(np.int64), difficult


def _record_class_names(rec_path: Path, class_names: Optional[Sequence[str]]) -> tuple[str, ...]:
    """The given class names checked against ``PREFIX.names``, or that file's names."""
    path = names_path(rec_path)
    stored = read_names_file(path) if path.is_file() else None
    if class_names is None:
        if stored is None:
            raise ValueError(f"{rec_path} holds class indices only and there is no {path} to name "
                             f"them: pass --class-names (a,b,c or a file with one a line), or pack "
                             f"the records with tools/prepare_dataset, which writes {path.name}")
        return stored
    names = check_class_names(class_names)
    if stored is not None and names != stored:
        raise ValueError(f"class names {','.join(names)} differ from {','.join(stored)} stored in "
                         f"{path}: drop --class-names to use the stored ones, or fix {path.name}")
    return names


class RecordDetection:
    """Detection records packed by :func:`make_records` (or mxnet-ssd / im2rec).

    Parameters
    ----------
    rec_path : path-like
        The ``.rec`` file.
    idx_path : path-like, optional
        Its index; default: ``rec_path`` with the suffix ``.idx``.
    class_names : sequence of str, optional
        Foreground classes, label = index (the records hold only the
        indices). Default: those of ``PREFIX.names`` beside the ``.rec``
        (see :mod:`dataset.classes`); given when that file exists, they must
        equal its names.

    ``ds[i]`` is the :class:`Annotation` of record ``ds.ids[i]`` (in index
    file order). Its ``image`` is ``"REC_PATH#ID"``, not a file: get the
    pixels with :meth:`image` or :meth:`load`. The size comes from decoding
    the image (the label holds normalized boxes), so the first ``ds[i]`` of a
    record decodes it; sizes are cached after that.
    """

    def __init__(self, rec_path: PathLike, idx_path: Optional[PathLike] = None,
                 class_names: Optional[Sequence[str]] = None) -> None:
        import mxnet as mx  # imported on use, like the other MXNet-facing modules

        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        for path, what in ((self.rec_path, "record"), (self.idx_path, "record index")):
            if not path.is_file():
                raise FileNotFoundError(f"{what} file not found: {path}")
        self.class_names: tuple[str, ...] = _record_class_names(self.rec_path, class_names)
        self._mx = mx
        self._record = mx.recordio.MXIndexedRecordIO(str(self.idx_path), str(self.rec_path), "r")
        self.ids: tuple[int, ...] = tuple(int(k) for k in self._record.keys)
        self._sizes: dict[int, tuple[int, int]] = {}
        logger.info("%s: %d records", self.rec_path, len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def _read(self, i: int):
        n = len(self.ids)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} records")
        key = self.ids[i]
        header, payload = self._mx.recordio.unpack(self._record.read_idx(key))
        return key, header, payload

    def _decode(self, key: int, payload: bytes) -> np.ndarray:
        cv2 = _cv2()
        bgr = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{self.rec_path}: record {key} holds no decodable image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _annotation(self, key: int, header, width: int, height: int) -> Annotation:
        where = f"{self.rec_path}: record {key}"
        if header.flag == 0:
            raise ValueError(f"{where} has a scalar label; pack detection records with --pack-label")
        boxes, labels, difficult = parse_detection_label(header.label, width, height, where)
        bad = np.flatnonzero(labels >= len(self.class_names))
        if bad.size:
            raise ValueError(f"{where}: object {int(bad[0])} has class {int(labels[bad[0]])} but "
                             f"only {len(self.class_names)} class names were given")
        return Annotation(f"{self.rec_path}#{key}", width, height, boxes, labels, difficult)

    def load(self, i: int) -> tuple[np.ndarray, Annotation]:
        """``(image (H, W, 3) uint8 RGB, Annotation)`` of record ``i``."""
        key, header, payload = self._read(i)
        image = self._decode(key, payload)
        height, width = image.shape[:2]
        self._sizes[key] = (width, height)
        return image, self._annotation(key, header, width, height)

    def image(self, i: int) -> np.ndarray:
        """The ``(H, W, 3)`` uint8 RGB image of record ``i``."""
        key, _, payload = self._read(i)
        return self._decode(key, payload)

    def __getitem__(self, i: int) -> Annotation:
        key, header, payload = self._read(i)
        if key not in self._sizes:
            height, width = self._decode(key, payload).shape[:2]
            self._sizes[key] = (width, height)
        return self._annotation(key, header, *self._sizes[key])

    def close(self) -> None:
        self._record.close()

    def __repr__(self) -> str:
        return f"RecordDetection({self.rec_path}, {len(self)} records, classes={list(self.class_names)})"
