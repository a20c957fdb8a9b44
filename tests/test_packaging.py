"""The install story: which Pythons may install the project, and that its packages are the ones imported."""
from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]


def setup_keyword(name: str):
    """A literal keyword argument of setup() in setup.py, read without running it."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for kw in node.keywords:
                if kw.arg == name:
                    return ast.literal_eval(kw.value)
    raise AssertionError(f"setup.py has no {name}")


def test_python_3_9_cannot_install_it():
    """On 3.9 the standard library's own ``symbol`` module shadows ours: pip must refuse."""
    spec = SpecifierSet(setup_keyword("python_requires"))
    assert "3.9.18" not in spec and "3.10.0" in spec
    assert f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}" in spec
    # the installed metadata is setup.py's (an install older than this rule would not say so)
    assert SpecifierSet(importlib.metadata.metadata("mxnet-ssd-gluon")["Requires-Python"]) == spec


def test_the_packages_are_ours():
    import symbol
    import train

    for module in (symbol, train):
        assert Path(module.__file__).resolve().parent.parent == REPO, module.__file__
