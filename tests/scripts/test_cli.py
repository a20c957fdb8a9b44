"""The command-line helpers shared by the scripts."""
from __future__ import annotations

import pytest

from tools.cli import ArgumentParser, UsageError, parse_class_names, print_error


def test_class_names_from_a_list_or_a_file(tmp_path) -> None:
    assert parse_class_names(None) is None
    assert parse_class_names(" cat, dog ") == ["cat", "dog"]
    names = tmp_path / "names.txt"
    names.write_text("cat\n\n dog \n")
    assert parse_class_names(str(names)) == ["cat", "dog"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        parse_class_names(str(tmp_path / "empty.txt"))
    with pytest.raises(UsageError, match="empty name"):
        parse_class_names("cat,,dog")


def test_parser_errors_raise_instead_of_exiting() -> None:
    parser = ArgumentParser(prog="x")
    parser.add_argument("--n", type=int)
    with pytest.raises(UsageError, match="invalid int value"):
        parser.parse_args(["--n", "two"])


def test_errors_are_one_line(capsys) -> None:
    print_error("demo.py", "bad\n  thing\n")
    assert capsys.readouterr().err == "demo.py: error: bad thing\n"


def test_number_types() -> None:
    import argparse

    from tools.cli import non_negative_int, positive

    assert positive(int)("3") == 3 and positive(float)("0.5") == 0.5
    assert non_negative_int("0") == 0
    for parse, text in ((positive(int), "0"), (positive(int), "x"), (non_negative_int, "-1")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
