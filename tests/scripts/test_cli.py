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


def test_long_class_lists_and_missing_files(tmp_path) -> None:
    names = [f"a_rather_long_class_name_{k:02d}" for k in range(80)]
    assert parse_class_names(",".join(names)) == names  # too long to be a file name: a list
    assert parse_class_names("car") == ["car"]
    for missing in ("names.txt", "data/voc.names", str(tmp_path / "labels")):
        with pytest.raises(UsageError, match=f"class names file not found: {missing}"):
            parse_class_names(missing)


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


def test_benchmark_network_lists() -> None:
    from tools.benchmarking import parse_networks

    assert parse_networks("vgg16_reduced") == [("vgg16_reduced", 300), ("vgg16_reduced", 512)]
    assert parse_networks("vgg16_reduced", "first") == [("vgg16_reduced", 300)]
    assert parse_networks("mobilenet:256, mobilenet:256") == [("mobilenet", 256)]
    assert len(parse_networks(None)) == 8  # every preset of symbol.presets.PRESETS
    for text, message in (("foo", "unknown network"), ("mobilenet:x", "bad size"),
                          ("mobilenet:16", "at least 32"), (",", "no network")):
        with pytest.raises(UsageError, match=message):
            parse_networks(text)


def test_threads_cannot_change_once_mxnet_is_loaded(monkeypatch) -> None:
    import mxnet  # noqa: F401

    from tools.benchmarking import set_omp_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pytest.raises(UsageError, match="fresh process"):
        set_omp_threads(2)
