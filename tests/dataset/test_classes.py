"""dataset/classes.py: the names file beside records, and look-alike inferred class names."""
from __future__ import annotations

from pathlib import Path

import pytest

from dataset.classes import (check_lookalike_names, lookalike, names_path, read_names_file,
                             write_names_file)


@pytest.mark.parametrize("a, b, expected", [
    ("person", "peson", True),      # a letter missing
    ("person", "persona", True),    # a letter added
    ("person", "perzon", True),     # a letter replaced
    ("Car", "car", True),           # case
    ("car ", "car", True),          # surrounding spaces
    ("bottle", "bottles", True),
    ("cat", "car", False),          # short names: only case and spaces count
    ("cat", "cats", False),
    ("person", "prseon", False),    # two edits
    ("horse", "house", True),       # two real classes flagged too: --class-names is the way out
    ("dog", "dog", False),          # the same name is one class
    ("truck", "bus", False),
])
def test_lookalike(a, b, expected):
    assert lookalike(a, b) is expected
    assert lookalike(b, a) is expected


def test_lookalike_names_error_names_both_and_their_files():
    found = {"person": [Path("a/1.xml"), Path("a/2.xml"), Path("a/3.xml"), Path("a/4.xml")],
             "peson": [Path("a/7.xml")], "dog": [Path("a/1.xml")]}
    with pytest.raises(ValueError) as err:
        check_lookalike_names(found, "data/mine")
    message = str(err.value)
    # the rarer name, the likely typo, first; at most three files each
    assert message.startswith("data/mine: class names 'peson' and 'person' look like the same class")
    assert "'peson' in 7.xml; 'person' in 1.xml, 2.xml, 3.xml and 1 more" in message
    assert "fix the annotation, or pass --class-names" in message
    check_lookalike_names({"person": [Path("1.xml")], "dog": [Path("1.xml")], "cat": [Path("2.xml")],
                           "car": [Path("2.xml")]})  # distinct names pass


def test_names_file_round_trip(tmp_path):
    assert names_path(tmp_path / "data" / "train.rec") == tmp_path / "data" / "train.names"
    path = write_names_file(tmp_path / "data" / "train.names", ["circle", "square", "triangle"])
    assert path.read_text(encoding="utf-8") == "circle\nsquare\ntriangle\n"
    assert read_names_file(path) == ("circle", "square", "triangle")
    assert sorted(p.name for p in path.parent.iterdir()) == ["train.names"]  # no temporary left
    with pytest.raises(ValueError, match="surrounding spaces or a line break"):
        write_names_file(path, ["a\nb"])
    assert read_names_file(path) == ("circle", "square", "triangle")  # the old file is intact


def test_names_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="class names file not found"):
        read_names_file(tmp_path / "none.names")
    (tmp_path / "empty.names").write_text("\n \n")
    with pytest.raises(ValueError, match="empty.names is empty"):
        read_names_file(tmp_path / "empty.names")
    (tmp_path / "dup.names").write_text("a\nb\na\n")
    with pytest.raises(ValueError, match=r"dup.names: class_names contains duplicates: \['a'\]"):
        read_names_file(tmp_path / "dup.names")
