"""One way to open a detection data set, for every script: :func:`open_dataset`.

``train.py``, ``evaluate.py``, ``tools/prepare_dataset.py``,
``tools/browse_dataset.py`` and the benchmarks open their data here, so a data
set opens the same way for training, evaluation, packing and browsing:

- ``voc``: a VOCdevkit, ``VOC{year}/ImageSets/Main/SPLIT.txt``; classes
  default to VOC's 20. A folder that itself holds ``Annotations/`` is read as
  ``folder``.
- ``folder``: a VOC-format folder, ``Annotations/``, ``JPEGImages/`` and
  optionally ``ImageSets/Main/`` (without it, every annotated image); classes
  default to the object names found, look-alikes such as ``person`` /
  ``peson`` being an error.
- ``coco``: ``annotations/instances_SPLIT.json`` and images in ``SPLIT/``;
  classes default to every category.
- ``rec``: ``SPLIT.rec`` (or ``rec_path``) with its ``.idx``; classes default
  to ``PREFIX.names`` beside the records (``tools/prepare_dataset`` writes it).

>>> train = open_dataset("folder", "data/mine", "trainval")              # doctest: +SKIP
>>> val = open_dataset("folder", "data/mine", "test", train.class_names) # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from common.fileio import PathLike

__all__ = ["KINDS", "open_dataset"]

#: The data set kinds :func:`open_dataset` opens.
KINDS = ("voc", "folder", "coco", "rec")


def open_dataset(kind: str, root: Optional[PathLike] = None, split: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None, *,
                 years: Iterable[Union[int, str]] = (2007,), use_difficult: bool = True,
                 keep_crowd: bool = False, skip_unknown: bool = False,
                 rec_path: Optional[PathLike] = None, annotations: Optional[PathLike] = None,
                 image_dir: Optional[PathLike] = None) -> Any:
    """Open a data set; returns its reader (``len``, ``ds[i]`` an
    :class:`~dataset.annotation.Annotation`, ``ds.ids``, ``ds.class_names``).

    Parameters
    ----------
    kind : {"voc", "folder", "coco", "rec"}
        See the module docstring.
    root : path-like, optional
        The data set's folder; optional for ``coco`` given ``annotations``
        and for ``rec`` given ``rec_path``.
    split : str, optional
        The image set: ``ImageSets/Main/SPLIT.txt`` (``voc``, default
        ``trainval``; ``folder``, default every annotated image, and every
        annotated image of a folder without ``ImageSets/Main``, logged at
        INFO), ``instances_SPLIT.json`` and ``SPLIT/`` (``coco``), ``SPLIT.rec``
        (``rec``). A folder that has ``ImageSets/Main`` but not ``SPLIT`` is an
        error listing the sets it has.
    class_names : sequence of str, optional
        The classes, label = index (defaults in the module docstring).
    years : iterable of int or str
        ``voc``: the ``VOC{year}`` folders to concatenate.
    use_difficult : bool
        ``voc``, ``folder``: keep objects marked difficult, flagged (the
        default); False drops them. Records keep the flags they were packed with.
    keep_crowd : bool
        ``coco``: keep crowd regions, flagged difficult (for evaluation);
        by default they are skipped (for training).
    skip_unknown : bool
        ``voc``, ``folder``: drop objects of classes not in ``class_names``
        with one warning counting them; by default they are an error naming
        the file and the class. (COCO reads the categories named and ignores
        the others.)
    rec_path : path-like, optional
        ``rec``: the ``.rec`` file (default ``ROOT/SPLIT.rec``).
    annotations, image_dir : path-like, optional
        ``coco``: the instances JSON (default
        ``ROOT/annotations/instances_SPLIT.json``) and the image folder
        (default ``ROOT/SPLIT``, or the JSON's folder without a root).

    Raises
    ------
    FileNotFoundError
        A missing folder, list, annotation, image or record file (named).
    ValueError
        An unknown kind, missing paths, bad annotations, unknown classes
        (unless ``skip_unknown``), look-alike inferred class names, or record
        class names that contradict their names file.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    root_path = Path(root) if root is not None else None
    if kind == "rec":
        return _open_rec(root_path, split, class_names, rec_path)
    if kind == "coco":
        return _open_coco(root_path, split, class_names, annotations, image_dir, keep_crowd)
    if root_path is None:
        raise ValueError(f"a {kind} dataset needs a root folder")
    from .voc import VOC_CLASSES, VOCDetection, VOCFolder

    if kind == "folder" or (root_path / "Annotations").is_dir():
        return VOCFolder(root_path, class_names, image_set=split, use_difficult=use_difficult,
                         skip_unknown=skip_unknown)
    return VOCDetection(root_path, tuple(years), split or "trainval", class_names or VOC_CLASSES,
                        use_difficult=use_difficult, skip_unknown=skip_unknown)


def _open_rec(root: Optional[Path], split: Optional[str], class_names: Optional[Sequence[str]],
              rec_path: Optional[PathLike]) -> Any:
    from .recordio import RecordDetection

    if rec_path is None:
        if root is None or split is None:
            raise ValueError("a RecordIO dataset needs its .rec file, or a root folder and a split "
                             "(ROOT/SPLIT.rec)")
        rec_path = root / f"{split}.rec"
    return RecordDetection(rec_path, class_names=class_names)


def _open_coco(root: Optional[Path], split: Optional[str], class_names: Optional[Sequence[str]],
               annotations: Optional[PathLike], image_dir: Optional[PathLike], keep_crowd: bool) -> Any:
    from .coco import COCODetection

    if annotations is None:
        if root is None or split is None:
            raise ValueError("a COCO dataset needs its instances JSON, or a root folder and a split "
                             "(ROOT/annotations/instances_SPLIT.json)")
        annotations = root / "annotations" / f"instances_{split}.json"
    if image_dir is None:
        if root is not None and split is not None:
            image_dir = root / split
        else:
            image_dir = Path(annotations).parent
    return COCODetection(annotations, image_dir, class_names, keep_crowd=keep_crowd)
