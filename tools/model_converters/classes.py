"""The class names of a converted model: the user's, else VOC's 20 for a 20-class model."""
from __future__ import annotations

from typing import Optional, Sequence

from dataset.voc import VOC_CLASSES

__all__ = ["class_names_for"]


def class_names_for(num_classes: int, given: Optional[Sequence[str]], source: str) -> list[str]:
    """``given`` checked against the model's ``num_classes`` (foreground), or VOC's 20
    names when none are given and the model has 20 classes.

    Raises
    ------
    ValueError
        No names for a model that is not 20-class, or as many names as classes
        (``source`` names the model's file).
    """
    if given is None:
        if num_classes != len(VOC_CLASSES):
            raise ValueError(f"{source} detects {num_classes} classes, not VOC's {len(VOC_CLASSES)}: give their "
                             f"names with --class-names (a list, a file or a labelmap.prototxt)")
        return list(VOC_CLASSES)
    if len(given) != num_classes:
        raise ValueError(f"{len(given)} class names given but {source} detects {num_classes} classes")
    return list(given)
