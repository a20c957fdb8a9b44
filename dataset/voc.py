"""Pascal VOC readers: one XML file, a VOCdevkit, or a plain VOC-format folder.

Coordinate convention
---------------------
VOC XML stores inclusive, 1-based pixel indices: a box covering the whole
``W x H`` image is ``xmin=1, ymin=1, xmax=W, ymax=H``, and the VOC devkit
computes a box's width as ``xmax - xmin + 1``. We convert to the continuous
0-based corners of :mod:`dataset.annotation` by subtracting 1 from ``xmin``
and ``ymin`` only::

    (xmin - 1, ymin - 1, xmax, ymax)

so the whole image becomes ``(0, 0, W, H)`` and the box keeps the devkit's
width and height. (GluonCV subtracts 1 from all four values; mxnet-ssd
subtracts nothing; both differ from this by at most one pixel.)
:func:`dataset.synthetic.write_voc_xml` writes the inverse.

Boxes reaching outside the image are clipped to it (the VOC 2012 and many
home-made annotations have a few); a reader logs one warning with their count
and an example file. A box that is empty after clipping is an error naming
the file and the object index. Objects of classes not in ``class_names`` are
an error naming the file and the class, or with ``skip_unknown`` are dropped
with one warning counting them per class.

Class names inferred from the annotations (``VOCFolder`` without
``class_names``) are checked for look-alikes (``person`` / ``peson``, see
:func:`dataset.classes.check_lookalike_names`).

Readers parse every annotation when they are built, so a bad file is
reported at once rather than in the middle of training.
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from common.fileio import PathLike

from .annotation import Annotation, check_class_names
from .classes import check_lookalike_names

__all__ = ["VOC_CLASSES", "VOCDetection", "VOCFolder", "folder_splits", "parse_voc_xml",
           "read_class_names"]

logger = logging.getLogger(__name__)


#: The 20 Pascal VOC classes in the standard order (label = index).
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def _text(element: ET.Element, tag: str, path: Path, where: str) -> str:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{path}: {where} has no <{tag}>")
    return child.text.strip()


def _number(element: ET.Element, tag: str, path: Path, where: str) -> float:
    text = _text(element, tag, path, where)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: {where} <{tag}> is not a number: {text!r}") from None


def _read_xml(path: Path) -> ET.Element:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: malformed XML: {err}") from None


@dataclass
class _Report:
    """What parsing changed silently: clipped boxes and dropped objects of unknown classes."""

    clipped: list[tuple[Path, int]] = field(default_factory=list)
    unknown: Counter = field(default_factory=Counter)
    unknown_example: Optional[Path] = None

    def add(self, other: "_Report") -> None:
        self.clipped += other.clipped
        self.unknown.update(other.unknown)
        self.unknown_example = self.unknown_example or other.unknown_example

    def log(self, where: str) -> None:
        """One warning per kind of change, with counts and an example file."""
        if self.clipped:
            path, i = self.clipped[0]
            logger.warning("%s: clipped %d box%s reaching outside the image to it (e.g. object %d of %s)",
                           where, len(self.clipped), "es" if len(self.clipped) > 1 else "", i, path)
        if self.unknown:
            counts = ", ".join(f"{n} {name!r}" for name, n in sorted(self.unknown.items()))
            logger.warning("%s: dropped %d object%s of classes not in the class names (%s; e.g. in %s)",
                           where, sum(self.unknown.values()),
                           "s" if sum(self.unknown.values()) > 1 else "", counts, self.unknown_example)


def parse_voc_xml(path: PathLike, class_names: Sequence[str], use_difficult: bool = True,
                  skip_unknown: bool = False, image: Optional[PathLike] = None) -> Annotation:
    """Read one VOC annotation file.

    Parameters
    ----------
    path : path-like
        The ``.xml`` file.
    class_names : sequence of str
        Foreground classes; an object's label is the index of its ``<name>``.
    use_difficult : bool
        Keep objects marked ``<difficult>1</difficult>`` (with
        ``Annotation.difficult`` set); when False they are dropped.
    skip_unknown : bool
        Drop objects whose name is not in ``class_names`` (how a class subset
        is read); when False such an object is an error.
    image : path-like, optional
        The image path to record. By default ``<filename>`` resolved against
        the sibling ``JPEGImages`` folder (``path/../../JPEGImages``), or
        ``STEM.jpg`` there when the file has no ``<filename>``. Not opened.

    Returns
    -------
    Annotation
        Boxes ``(N, 4)`` float32 pixel corners ``(xmin - 1, ymin - 1, xmax,
        ymax)`` clipped to the image (see the module docstring); ``N`` may be 0.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Malformed XML, a missing or non-positive ``<size>``, an object without
        a name or box, an unknown class name (unless ``skip_unknown``), or a
        box that is empty after clipping; the message names the file (and the
        0-based object index).
    """
    return _parse(Path(path), check_class_names(class_names), use_difficult, skip_unknown, image)[0]


def _parse(path: Path, names: tuple[str, ...], use_difficult: bool, skip_unknown: bool,
           image: Optional[PathLike]) -> tuple[Annotation, _Report]:
    index = {name: i for i, name in enumerate(names)}
    report = _Report()
    root = _read_xml(path)
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size>")
    width_f = _number(size, "width", path, "<size>")
    height_f = _number(size, "height", path, "<size>")
    if width_f <= 0 or height_f <= 0 or width_f != int(width_f) or height_f != int(height_f):
        raise ValueError(f"{path}: image size must be positive integers, got {width_f} x {height_f}")
    width, height = int(width_f), int(height_f)

    if image is None:
        filename = root.findtext("filename")
        filename = filename.strip() if filename and filename.strip() else path.stem + ".jpg"
        image = path.parent.parent / "JPEGImages" / filename

    boxes, labels, difficult = [], [], []
    for i, obj in enumerate(root.iter("object")):
        where = f"object {i}"
        name = _text(obj, "name", path, where)
        if name not in index:
            if skip_unknown:
                report.unknown[name] += 1
                report.unknown_example = report.unknown_example or path
                continue
            shown = list(names) if len(names) <= 20 else [*names[:20], "..."]
            raise ValueError(f"{path}: {where} has unknown class {name!r} (the classes are {shown}); "
                             f"pass --skip-unknown to drop objects of other classes, or --class-names "
                             f"to list every class")
        hard = (obj.findtext("difficult") or "0").strip() or "0"
        if hard not in ("0", "1"):
            raise ValueError(f"{path}: {where} ({name}) <difficult> must be 0 or 1, got {hard!r}")
        is_difficult = hard == "1"
        if is_difficult and not use_difficult:
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{path}: {where} ({name}) has no <bndbox>")
        x1, y1, x2, y2 = (_number(bndbox, tag, path, f"{where} ({name})")
                          for tag in ("xmin", "ymin", "xmax", "ymax"))
        box = np.clip([x1 - 1, y1 - 1, x2, y2], 0, [width, height, width, height])
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{path}: {where} ({name}) has an empty box after clipping to the "
                             f"{width}x{height} image: xmin={x1:g} ymin={y1:g} xmax={x2:g} "
                             f"ymax={y2:g}")
        if not np.array_equal(box, [x1 - 1, y1 - 1, x2, y2]):
            report.clipped.append((path, i))
        boxes.append(box)
        labels.append(index[name])
        difficult.append(is_difficult)
    ann = Annotation(str(image), width, height, np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                     np.asarray(labels, dtype=np.int64), np.asarray(difficult, dtype=bool))
    return ann, report


def read_class_names(xml_files: Iterable[PathLike], where: Optional[str] = None) -> tuple[str, ...]:
    """Sorted distinct object names found in the given VOC XML files.

    Raises ``ValueError`` when two of them look like one class misspelt
    (``person`` / ``peson``, ``Car`` / ``car``; see
    :func:`dataset.classes.check_lookalike_names`), naming both and their files;
    ``where`` (the data set) prefixes the message.
    """
    found: dict[str, list[Path]] = {}
    for f in xml_files:
        f = Path(f)
        for i, obj in enumerate(_read_xml(f).iter("object")):
            files = found.setdefault(_text(obj, "name", f, f"object {i}"), [])
            if not files or files[-1] != f:
                files.append(f)
    check_lookalike_names(found, where)
    return tuple(sorted(found))


def _listed_splits(main: Path) -> list[str]:
    """The image sets of an ``ImageSets/Main`` folder, without VOC's per-class lists
    (``aeroplane_train`` when ``train`` is there)."""
    stems = sorted(p.stem for p in main.glob("*.txt"))
    return [s for s in stems if not any(s.endswith("_" + t) for t in stems if t != s)]


def folder_splits(root: PathLike) -> Optional[list[str]]:
    """The image sets listed in ``ROOT/ImageSets/Main`` (``["test", "train"]``), or
    None when the folder has no ``ImageSets/Main`` (every annotation is then one set)."""
    main = Path(root) / "ImageSets" / "Main"
    return _listed_splits(main) if main.is_dir() else None


def _read_ids(list_file: Path) -> list[str]:
    if not list_file.is_file():
        main = list_file.parent
        have = _listed_splits(main) if main.is_dir() else []
        raise FileNotFoundError(f"image set {list_file.stem!r} not found: no {list_file}; the sets in "
                                f"{main} are: {', '.join(have) if have else 'none'}")
    # VOC's per-class lists ("ID  1") share the format; the first column is the id.
    return [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")


class _VOCBase:
    """List of ``(xml, image)`` pairs parsed once into :class:`Annotation` objects."""

    def __init__(self, items: list[tuple[str, Path, Optional[Path]]], class_names: Sequence[str],
                 use_difficult: bool, skip_unknown: bool, where: str) -> None:
        self.class_names: tuple[str, ...] = check_class_names(class_names)
        self.ids: tuple[str, ...] = tuple(i for i, _, _ in items)
        annotations = []
        report = _Report()
        for _, xml, image in items:
            ann, changes = _parse(Path(xml), self.class_names, use_difficult, skip_unknown, image)
            if not Path(ann.image).is_file():
                raise FileNotFoundError(f"image not found: {ann.image} (named by {xml})")
            annotations.append(ann)
            report.add(changes)
        self._annotations = annotations
        report.log(where)
        logger.info("%s: %d images, %d objects, %d classes", where, len(self),
                    sum(a.num_objects for a in annotations), len(self.class_names))

    def __len__(self) -> int:
        return len(self._annotations)

    def __getitem__(self, idx: int) -> Annotation:
        return self._annotations[idx]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, classes={list(self.class_names)})"


class VOCDetection(_VOCBase):
    """Images of a VOCdevkit listed by ``ImageSets/Main/IMAGE_SET.txt``.

    Layout read::

        root/VOC2007/ImageSets/Main/trainval.txt   (one image id a line)
        root/VOC2007/Annotations/ID.xml
        root/VOC2007/JPEGImages/ID.jpg

    Parameters
    ----------
    root : path-like
        The ``VOCdevkit`` folder.
    years : iterable of int or str
        Sub-folders ``VOC{year}`` to concatenate, in order (e.g. ``(2007, 2012)``).
    image_set : str
        List name: ``'trainval'``, ``'train'``, ``'val'``, ``'test'``.
    class_names : sequence of str
        Foreground classes, label = index; default :data:`VOC_CLASSES`.
    use_difficult, skip_unknown : bool
        As in :func:`parse_voc_xml`.

    ``ds[i]`` is an :class:`Annotation`; ``ds.ids[i]`` is ``"VOC2007/000005"``.
    Missing folders, lists, annotations or images raise ``FileNotFoundError``
    naming the path.
    """

    def __init__(self, root: PathLike, years: Iterable[Union[int, str]] = (2007,),
                 image_set: str = "trainval", class_names: Sequence[str] = VOC_CLASSES,
                 use_difficult: bool = True, skip_unknown: bool = False) -> None:
        root = Path(root)
        _require_dir(root, "VOCdevkit")
        years = tuple(years)
        if isinstance(years, str) or not years:
            raise ValueError(f"years must be a non-empty sequence such as (2007, 2012), got {years!r}")
        items = []
        for year in years:
            voc = root / f"VOC{year}"
            _require_dir(voc, f"VOC{year}")
            for image_id in _read_ids(voc / "ImageSets" / "Main" / f"{image_set}.txt"):
                items.append((f"VOC{year}/{image_id}", voc / "Annotations" / f"{image_id}.xml",
                              voc / "JPEGImages" / f"{image_id}.jpg"))
        self.root = root
        super().__init__(items, class_names, use_difficult, skip_unknown,
                         f"{root} ({image_set}, {'+'.join(f'VOC{y}' for y in years)})")


class VOCFolder(_VOCBase):
    """A plain VOC-format folder (what labelling tools export).

    Layout read::

        root/Annotations/*.xml
        root/JPEGImages/<filename from the XML>
        root/ImageSets/Main/IMAGE_SET.txt          (optional)

    Parameters
    ----------
    root : path-like
        The folder.
    class_names : sequence of str, optional
        Foreground classes, label = index. ``None`` collects the object names
        found in the selected annotations, sorted, refusing look-alikes (see
        :func:`read_class_names`).
    image_set : str, optional
        Read the ids in ``ImageSets/Main/IMAGE_SET.txt``. ``None``, or any set
        when the folder has no ``ImageSets/Main`` (logged at INFO), reads every
        ``Annotations/*.xml``, sorted by file name. A folder that has
        ``ImageSets/Main`` but not this set is an error listing the sets it has.
    use_difficult, skip_unknown : bool
        As in :func:`parse_voc_xml`.

    The image of ``ID.xml`` is ``JPEGImages/<filename>`` (``ID.jpg`` when the
    XML has no ``<filename>``). ``ds.ids[i]`` is the XML stem;
    ``ds.image_set`` is the set read, None when every annotation was.
    """

    def __init__(self, root: PathLike, class_names: Optional[Sequence[str]] = None,
                 image_set: Optional[str] = None, use_difficult: bool = True,
                 skip_unknown: bool = False) -> None:
        root = Path(root)
        _require_dir(root, "VOC dataset")
        ann_dir = root / "Annotations"
        _require_dir(ann_dir, "Annotations")
        _require_dir(root / "JPEGImages", "JPEGImages")
        if image_set is not None and folder_splits(root) is None:
            logger.info("%s has no ImageSets/Main: image set %r is every annotated image", root,
                        image_set)
            image_set = None
        if image_set is None:
            xmls = sorted(ann_dir.glob("*.xml"))
            if not xmls:
                raise FileNotFoundError(f"no .xml annotation files in {ann_dir}")
        else:
            xmls = [ann_dir / f"{i}.xml" for i in _read_ids(root / "ImageSets" / "Main"
                                                            / f"{image_set}.txt")]
        where = f"{root} ({image_set or 'every annotation'})"
        if class_names is None:
            class_names = read_class_names(xmls, where)
            if not class_names:
                raise ValueError(f"no objects found in {ann_dir} to take class names from; "
                                 "pass class_names")
        self.root = root
        self.image_set: Optional[str] = image_set
        super().__init__([(x.stem, x, None) for x in xmls], class_names, use_difficult,
                         skip_unknown, where)
