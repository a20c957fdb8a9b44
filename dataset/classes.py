"""Class names that travel with a data set: the names file, and names that look alike.

Names file
----------
``PREFIX.names`` beside ``PREFIX.rec`` (written by ``tools/prepare_dataset``)
holds one class name a line, label = line number (0-based), UTF-8. Records
hold only class indices, so the file is what makes packed data usable
without repeating ``--class-names``.

Look-alike names
----------------
When class names are inferred from annotations, a typo in one file silently
becomes a class of its own. :func:`check_lookalike_names` refuses names that
are equal ignoring case and surrounding spaces, or (both at least 4 letters
long) one edit apart (``person`` / ``peson``), naming both and the files that
use them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from common.fileio import PathLike, atomic_path, read_text

from .annotation import check_class_names

__all__ = ["NAMES_SUFFIX", "check_lookalike_names", "lookalike", "names_path", "read_names_file",
           "write_names_file"]


#: Suffix of the class names file beside a ``.rec`` file.
NAMES_SUFFIX = ".names"

#: Names shorter than this are compared only ignoring case (``cat`` / ``car`` are two classes).
_MIN_EDIT_LENGTH = 4


def names_path(rec_path: PathLike) -> Path:
    """The names file of a record file: ``PREFIX.rec`` -> ``PREFIX.names``."""
    return Path(rec_path).with_suffix(NAMES_SUFFIX)


def write_names_file(path: PathLike, class_names: Sequence[str]) -> Path:
    """Write ``class_names`` one a line to ``path``, atomically; returns the path.

    Raises ``ValueError`` for names that are invalid (see
    :func:`dataset.annotation.check_class_names`) or hold a line break.
    """
    names = check_class_names(class_names)
    for name in names:
        if name != name.strip() or "\n" in name or "\r" in name:
            raise ValueError(f"class name {name!r} cannot be stored one a line (surrounding "
                             f"spaces or a line break)")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


def read_names_file(path: PathLike) -> tuple[str, ...]:
    """The class names of a names file (blank lines and surrounding spaces ignored).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        An unreadable or empty file, or duplicated names; the message names the file.
    """
    path = Path(path)
    text = read_text(path, "class names file")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"class names file {path} is empty")
    try:
        return check_class_names(names)
    except ValueError as err:
        raise ValueError(f"class names file {path}: {err}") from None


def _one_edit_apart(a: str, b: str) -> bool:
    """Levenshtein distance exactly 1 (one letter replaced, added or removed)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:]
    return a[i:] == b[i + 1:]


def lookalike(a: str, b: str) -> bool:
    """Whether two distinct class names look like one class misspelt.

    True when they are equal ignoring case and surrounding spaces, or when
    both have at least 4 letters and are one edit apart (``person`` /
    ``peson``, ``bottle`` / ``bottles``). ``cat`` / ``car`` are not.
    """
    if a == b:
        return False
    x, y = a.strip().casefold(), b.strip().casefold()
    if x == y:
        return True
    return min(len(x), len(y)) >= _MIN_EDIT_LENGTH and _one_edit_apart(x, y)


def _files(paths: Sequence[PathLike], limit: int = 3) -> str:
    names = [Path(p).name for p in paths]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_lookalike_names(found: Mapping[str, Sequence[PathLike]], where: Optional[str] = None) -> None:
    """Refuse inferred class names of which two look like the same class.

    Parameters
    ----------
    found : mapping of str to sequence of path
        Each name found, with the annotation files it appears in.
    where : str, optional
        The data set, for the message.

    Raises
    ------
    ValueError
        Naming both names, where each is used (the first few files) and what
        to do: fix the annotation or pass the class names explicitly.
    """
    names = sorted(found)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if lookalike(a, b):
                # The rarer name is the likely typo: name it first.
                first, second = sorted((a, b), key=lambda n: (len(found[n]), n))
                prefix = f"{where}: " if where else ""
                raise ValueError(
                    f"{prefix}class names {first!r} and {second!r} look like the same class: "
                    f"{first!r} in {_files(found[first])}; {second!r} in {_files(found[second])}; "
                    f"fix the annotation, or pass --class-names (class_names) to list the classes")
