"""The class names of a converted model: the user's, else VOC's 20 for a 20-class model
and COCO's 80 for an 80-class one."""
from __future__ import annotations

from typing import Optional, Sequence

from dataset.coco import COCO_CLASSES
from dataset.voc import VOC_CLASSES

__all__ = ["class_names_for"]


def class_names_for(num_classes: int, given: Optional[Sequence[str]], source: str) -> list[str]:
    """``given`` checked against the model's ``num_classes`` (foreground), or, when none
    are given, VOC's 20 names for a 20-class model and COCO's 80 for an 80-class one.

    Raises
    ------
    ValueError
        No names for a model that is neither 20- nor 80-class, or not as many names as classes
        (``source`` names the model's file).
    """
    if given is None:
        for names in (VOC_CLASSES, COCO_CLASSES):
            if num_classes == len(names):
                return list(names)
        raise ValueError(f"{source} detects {num_classes} classes, not VOC's {len(VOC_CLASSES)} or COCO's "
                         f"{len(COCO_CLASSES)}: give their names with --class-names (a list, a file or a "
                         f"labelmap.prototxt)")
    if len(given) != num_classes:
        raise ValueError(f"{len(given)} class names given but {source} detects {num_classes} classes")
    return list(given)
