"""Low-precision checkpoints from float ones: the calibration images and the conversion.

The images an INT8 model is calibrated on come from a data set opened the one
way every script opens data (:func:`dataset.factory.open_dataset`) or from a
folder of image files, and reach the network exactly as
:class:`evaluate.detector.Detector` feeds it (:func:`evaluate.detector.network_input`).

>>> source = CalibrationSource("folder", "data/synthetic", "train")                 # doctest: +SKIP
>>> make_low_precision("model/ssd", 40, "model/ssd_int8", source=source)          # doctest: +SKIP
ModelConfig(network='mobilenet', ..., quantized={'dtype': 'int8', ...})
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from common.fileio import PathLike
from dataset.factory import KINDS

__all__ = ["CalibrationSource", "DIRECTORY", "IMAGE_EXTENSIONS", "calibration_images", "check_output_prefix",
           "make_low_precision"]

logger = logging.getLogger(__name__)

#: ``CalibrationSource.kind`` of a plain folder of images (no annotations needed).
DIRECTORY = "dir"
#: The files a folder of calibration images may hold (others are ignored).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class CalibrationSource:
    """Where calibration images come from.

    Attributes
    ----------
    kind : str
        A data set kind of :func:`dataset.factory.open_dataset` (``voc``,
        ``folder``, ``coco``, ``rec``), or :data:`DIRECTORY` for a folder of
        image files (not recursive; :data:`IMAGE_EXTENSIONS`).
    root : str
        The data set's root, or the folder.
    split : str, optional
        The data set's split (``open_dataset``'s default when None).
    years : tuple of int
        ``voc``: the VOC years.
    """

    kind: str
    root: str
    split: Optional[str] = None
    years: tuple[int, ...] = (2007,)

    def __post_init__(self) -> None:
        if self.kind not in KINDS + (DIRECTORY,):
            raise ValueError(f"unknown calibration source kind {self.kind!r}; choose from "
                             f"{', '.join(KINDS + (DIRECTORY,))}")
        if self.kind == DIRECTORY and self.split is not None:
            raise ValueError("a folder of images has no split")
        object.__setattr__(self, "root", os.fspath(self.root))
        object.__setattr__(self, "years", tuple(int(y) for y in self.years))

    def to_dict(self) -> dict:
        """The record kept in the low-precision checkpoint's config."""
        d: dict[str, Any] = {"kind": self.kind, "root": self.root}
        if self.split is not None:
            d["split"] = self.split
        if self.kind == "voc":
            d["years"] = list(self.years)
        return d

    def describe(self) -> str:
        if self.kind == DIRECTORY:
            return f"the images in {self.root}"
        return f"{self.kind} {self.root}" + (f" ({self.split})" if self.split else "")


def calibration_images(source: CalibrationSource, num_images: int) -> list[np.ndarray]:
    """``num_images`` RGB images of ``source``, spread evenly over it (all of them when it
    has fewer), in a fixed order: the same images every time.

    Raises
    ------
    FileNotFoundError
        A missing data set, folder or image (named).
    ValueError
        An empty source, an image that cannot be decoded (named), bad annotations.
    """
    from common.images import load_image

    if not isinstance(num_images, int) or isinstance(num_images, bool) or num_images < 1:
        raise ValueError(f"the number of calibration images must be a positive integer, got {num_images!r}")
    if source.kind == DIRECTORY:
        folder = Path(source.root)
        if not folder.is_dir():
            raise FileNotFoundError(f"calibration image folder not found: {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise ValueError(f"no calibration images in {folder} (files ending in {', '.join(IMAGE_EXTENSIONS)})")
        return [load_image(files[i]) for i in _spread(len(files), num_images)]
    from dataset.factory import open_dataset
    from evaluate.evaluation import load_image_of

    reader = open_dataset(source.kind, source.root, source.split, years=source.years, skip_unknown=True)
    if len(reader) == 0:
        raise ValueError(f"the calibration set {source.describe()} has no images")
    return [load_image_of(reader, i) for i in _spread(len(reader), num_images)]


def _spread(total: int, wanted: int) -> list[int]:
    """``min(total, wanted)`` distinct indices spread evenly over ``range(total)``."""
    if wanted >= total:
        return list(range(total))
    return sorted(set(np.linspace(0, total - 1, wanted).round().astype(int).tolist()))


def check_output_prefix(prefix: PathLike, source_prefix: Optional[PathLike] = None) -> None:
    """Fail early (before a long calibration) when the checkpoint ``prefix`` cannot be written.

    Writes nothing: it tries a temporary file in the nearest folder that exists.

    Raises
    ------
    ValueError
        ``prefix`` names a folder, or is the float checkpoint's own prefix.
    OSError
        A parent that is not a folder, or a folder that cannot be written.
    """
    text = os.fspath(prefix)
    path = Path(text).absolute()
    if not text or text.endswith(("/", os.sep)) or path.is_dir():
        raise ValueError(f"--out {text!r} is a folder; give a checkpoint prefix such as {os.path.join(text, 'ssd_int8')}")
    if source_prefix is not None and path == Path(os.fspath(source_prefix)).absolute():
        raise ValueError(f"--out {text} is the float checkpoint's own prefix; give another one")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {text}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OSError(f"cannot write {text}: {folder}: {err.strerror or err}") from None


def make_low_precision(prefix: PathLike, epoch: int, out: PathLike, *, dtype: str = "int8",
                       source: Optional[CalibrationSource] = None, num_images: int = 64,
                       calib_mode: str = "naive", exclude: Sequence[str] = (), out_epoch: int = 0) -> Any:
    """Convert checkpoint ``prefix``/``epoch`` to INT8 or bfloat16 and save it as ``out``/``out_epoch``.

    Parameters
    ----------
    prefix, epoch
        The float checkpoint (anything :func:`symbol.checkpoint.load_checkpoint` loads).
    out : path-like
        Prefix of the low-precision checkpoint (``OUT-symbol.json``,
        ``OUT-EPOCH.params``, ``OUT-config.json``, written all or nothing).
    dtype : {'int8', 'bfloat16'}
    source : CalibrationSource
        INT8: the calibration images (required); bfloat16 needs none.
    num_images, calib_mode, exclude
        See :func:`symbol.quantization.quantize_ssd` (``exclude`` also for bfloat16).
    out_epoch : int
        Epoch number of the written checkpoint.

    Returns
    -------
    ModelConfig
        The written checkpoint's config.

    Raises
    ------
    FileNotFoundError, ValueError, OSError, RuntimeError
        A missing or damaged checkpoint or calibration image, an empty
        calibration set, an output that cannot be written, a CPU or MXNet
        build without what the type needs. Nothing is written then.
    """
    from evaluate.detector import network_input
    from symbol.checkpoint import load_checkpoint, save_checkpoint
    from symbol.quantization import DTYPES, cpu_has_bf16, quantize_ssd, to_bfloat16

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "int8" and source is None:
        raise ValueError("INT8 needs calibration images: give a data set or a folder of images")
    if dtype == "bfloat16" and cpu_has_bf16() is False:
        raise RuntimeError("this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX): a bfloat16 model "
                           "would run slower than float32 here; use int8")
    check_output_prefix(out, prefix)
    net, config = load_checkpoint(prefix, epoch)
    if config.quantized is not None:
        raise ValueError(f"{prefix} is already a {config.quantized['dtype']} checkpoint: convert the float "
                         f"checkpoint it was made from")
    if dtype == "int8":
        images = calibration_images(source, num_images)
        logger.info("calibrating on %d image(s) of %s", len(images), source.describe())
        low = quantize_ssd(net, network_input(images, config.data_shape), calib_mode=calib_mode,
                           exclude=exclude, source=source.to_dict())
    else:
        if source is not None:
            logger.warning("bfloat16 needs no calibration: ignoring %s", source.describe())
        low = to_bfloat16(net, exclude=exclude)
    low.info = low.info.replace(float_checkpoint={"prefix": os.fspath(prefix), "epoch": epoch})
    save_checkpoint(low, out, out_epoch, config.class_names)
    from symbol.checkpoint import read_config

    return read_config(out)
