"""Make a low-precision checkpoint for the CPU: calibrated INT8 (oneDNN) or bfloat16.

    python -m tools.quantize --prefix model/ssd_300 --epoch 120 --out model/ssd_300_int8 \\
        --calib-dataset voc --calib-root VOCdevkit --calib-set trainval
    python -m tools.quantize --prefix model/face --out model/face_int8 --calib-dir photos/ --num-calib 32
    python -m tools.quantize --prefix model/ssd_300 --epoch 120 --out model/ssd_300_bf16 --dtype bfloat16
    python demo.py --prefix model/ssd_300_int8 --images dog.jpg

INT8 is calibrated on ``--num-calib`` images (default 64) of a data set
(``--calib-dataset``/``--calib-root``/``--calib-set``, opened as ``train.py``
and ``evaluate.py`` open theirs) or of a folder (``--calib-dir``), resized as
``demo.py`` feeds them; ``--calib-mode naive`` (default) takes each layer's
observed range, ``entropy`` minimises the KL divergence. bfloat16 needs no
calibration. The output is ``OUT-symbol.json``, ``OUT-0000.params`` and
``OUT-config.json`` (which says how it was made), written all or nothing;
``demo.py``, ``evaluate.py`` and ``Detector.from_checkpoint`` load it like any
checkpoint. Bad input is one line on stderr, ``quantize: error: ...``, exit
status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from tools.cli import (ArgumentParser, UsageError, log_to_stderr, non_negative_int, positive, print_error,
                       serial_cpu_copies)

_PROG = "quantize"
_DTYPES = ("int8", "bfloat16")
_KINDS = ("voc", "folder", "coco", "rec")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Convert a float SSD checkpoint to calibrated INT8 or bfloat16 "
                                                "for the CPU.")
    p.add_argument("--prefix", required=True, help="the float checkpoint's prefix (PREFIX-EPOCH.params, "
                                                   "PREFIX-config.json)")
    p.add_argument("--epoch", type=non_negative_int, default=0, help="the float checkpoint's epoch (default: 0)")
    p.add_argument("--out", required=True, help="prefix of the checkpoint to write (OUT-symbol.json, "
                                                "OUT-EPOCH.params, OUT-config.json)")
    p.add_argument("--out-epoch", type=non_negative_int, default=0,
                   help="epoch number of the written checkpoint (default: 0)")
    p.add_argument("--dtype", choices=_DTYPES, default="int8", help="int8 (calibrated; default) or bfloat16")
    cal = p.add_argument_group("calibration (int8)")
    src = cal.add_mutually_exclusive_group()
    src.add_argument("--calib-dataset", choices=_KINDS, default=None,
                     help="a data set to take calibration images from (with --calib-root)")
    src.add_argument("--calib-dir", default=None, help="a folder of calibration images (jpg, png, ...)")
    cal.add_argument("--calib-root", default=None, help="the data set's folder (VOCdevkit, a VOC-format folder, "
                                                        "COCO's root, the .rec folder)")
    cal.add_argument("--calib-set", default=None,
                     help="the data set's split (default: the data set's own default: trainval for voc, every "
                          "annotated image of a folder)")
    cal.add_argument("--calib-year", default="2007", help="voc: comma-separated years (default: 2007)")
    cal.add_argument("--num-calib", type=positive(int), default=64,
                     help="calibration images, spread evenly over the set (default: 64)")
    cal.add_argument("--calib-mode", choices=("naive", "entropy"), default="naive",
                     help="naive: each layer's observed min/max (default); entropy: KL-optimal thresholds")
    p.add_argument("--exclude", default=None,
                   help="comma-separated parts of layer names to keep in float32 as well")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging verbosity, on stderr (default: WARNING)")
    return p


def _source(args: argparse.Namespace):
    """The calibration source the flags name, or None."""
    from evaluate.calibration import DIRECTORY, CalibrationSource

    if args.calib_dir is not None:
        for flag in ("calib_root", "calib_set"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} goes with --calib-dataset, not --calib-dir")
        return CalibrationSource(DIRECTORY, args.calib_dir)
    if args.calib_dataset is None:
        if args.calib_root is not None or args.calib_set is not None:
            raise UsageError("--calib-root and --calib-set need --calib-dataset")
        if args.dtype == "int8":
            raise UsageError("int8 needs calibration images: give --calib-dataset KIND --calib-root DIR "
                             "[--calib-set SPLIT], or --calib-dir IMAGES")
        return None
    if args.calib_root is None:
        raise UsageError(f"--calib-dataset {args.calib_dataset} needs --calib-root")
    try:
        years = tuple(int(y) for y in args.calib_year.split(",") if y.strip())
    except ValueError:
        raise UsageError(f"--calib-year: expected comma-separated years, got {args.calib_year!r}") from None
    return CalibrationSource(args.calib_dataset, args.calib_root, args.calib_set, years or (2007,))


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the conversion; returns the exit status (0 ok, 1 on any error)."""
    try:
        args = build_parser().parse_args(argv)
        source = _source(args)
        exclude = [s.strip() for s in args.exclude.split(",") if s.strip()] if args.exclude else []
    except UsageError as err:
        _error(err)
        return 1
    log_to_stderr(args.log_level)
    serial_cpu_copies()
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")  # MXNet's graph passes log to stderr otherwise
    start = time.perf_counter()
    try:
        from evaluate.calibration import make_low_precision
        from symbol.checkpoint import config_path, params_path, symbol_path

        config = make_low_precision(args.prefix, args.epoch, args.out, dtype=args.dtype, source=source,
                                    num_images=args.num_calib, calib_mode=args.calib_mode, exclude=exclude,
                                    out_epoch=args.out_epoch)
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as err:
        _error(err)
        return 1
    except KeyboardInterrupt:
        _error("interrupted; nothing written")
        return 130
    info = config.low_precision
    kept = ", ".join(f"{op} x{n}" for op, n in info.float32_ops.items())
    print(f"{config.network} {config.data_shape}x{config.data_shape}, {config.num_classes} classes: "
          f"{info.describe()}" + (f" ({source.describe()})" if info.calibration else "")
          + f", in {time.perf_counter() - start:.1f} s")
    print(f"float32 layers: {kept or 'none'}")
    print(f"wrote {symbol_path(args.out)}, {params_path(args.out, args.out_epoch)}, {config_path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
