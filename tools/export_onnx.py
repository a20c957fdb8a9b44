"""Export a checkpoint as one ONNX file: preprocessing, network, priors, decoding and NMS.

    python -m tools.export_onnx --prefix model/ssd_300 --epoch 0 --out ssd_300.onnx
    python -m tools.export_onnx --prefix model/face --out face.onnx --dynamic-batch
    python -m tools.export_onnx --prefix model/ssd_300 --out ssd_300.onnx --data-shape 512 --opset 17

The file's input ``data`` is ``(B, 3, S, S)`` float32 RGB pixel values 0..255
(NCHW, as the MXNet model's: ``S`` is the checkpoint's data shape or
``--data-shape``; ``B`` is 1, or free with ``--dynamic-batch``) and its output
``detections`` the MXNet model's ``(B, keep_topk, 6)`` rows ``[class_id,
score, xmin, ymin, xmax, ymax]`` (normalized corners, by descending score,
empty rows -1), decoded with the checkpoint's settings or the ``--nms*`` /
``--thresh`` flags. ONNX Runtime runs it without this project or MXNet (see
:func:`evaluate.onnx_runtime.run_onnx`). The file is written atomically. Bad
input (no such checkpoint, an unwritable output, a layer the exporter cannot
translate) is one line on stderr and exit status 1, and nothing is written.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from common.decoding import NMS_MODES
from tools.cli import ArgumentParser, UsageError, log_to_stderr, number, print_error, serial_cpu_copies

PROG = "export_onnx"
_ONNX_MISSING = "ONNX export needs the onnx package: pip install -e '.[onnx]'"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--prefix", required=True, help="checkpoint prefix: PREFIX-EPOCH.params and PREFIX-config.json")
    p.add_argument("--epoch", type=number(int, 0), default=0, help="checkpoint epoch (default: 0)")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument("--dynamic-batch", action=argparse.BooleanOptionalAction, default=False,
                   help="leave the batch dimension free (default: off, batch 1)")
    p.add_argument("--data-shape", type=number(int, 32), default=None,
                   help="input side length (default: the checkpoint's)")
    p.add_argument("--opset", type=number(int, 1), default=None,
                   help="ONNX opset, 13 or later (default: 13)")
    p.add_argument("--nms", type=number(float, 0.0, 1.0, strict=True), default=None,
                   help="NMS overlap threshold (default: the checkpoint's, normally 0.45)")
    p.add_argument("--nms-topk", type=number(int, 1), default=None,
                   help="candidates entering NMS (default: the checkpoint's, normally 400)")
    p.add_argument("--keep-topk", type=number(int, 1), default=None,
                   help="detection rows per image (default: the checkpoint's, normally 200)")
    p.add_argument("--thresh", type=number(float, 0.0, 1.0), default=None,
                   help="score threshold of the candidates (default: the checkpoint's, normally 0.01)")
    p.add_argument("--nms-mode", choices=NMS_MODES, default=None,
                   help="decoding: multibox, caffe, gluoncv or mmdet (default: the checkpoint's)")
    p.add_argument("--force-nms", action=argparse.BooleanOptionalAction, default=None,
                   help="class-agnostic NMS (default: the checkpoint's)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="log messages from this level up on stderr (default: WARNING)")
    return p


def _check_writable(out: Path) -> None:
    """Fail early (before the export) when ``out`` cannot be written."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name")
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write --out {out}: {folder} is not a writable directory")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Export; returns the exit status (0, or 1 after one error line)."""
    try:
        args = build_parser().parse_args(argv)
        log_to_stderr(args.log_level)
        _check_writable(Path(args.out))
        if args.opset is not None and args.opset < 13:
            raise UsageError(f"--opset {args.opset}: the model's operators need opset 13 or later")
        serial_cpu_copies()
        try:
            from symbol.onnx_export import OPSET, export_onnx
        except ImportError as err:
            raise UsageError(f"{_ONNX_MISSING} ({err})") from None
        from symbol.checkpoint import load_checkpoint

        net, config = load_checkpoint(args.prefix, args.epoch, data_shape=args.data_shape, nms_thresh=args.nms,
                                      nms_topk=args.nms_topk, keep_topk=args.keep_topk, thresh=args.thresh,
                                      nms_mode=args.nms_mode, force_suppress=args.force_nms)
        opset = OPSET if args.opset is None else args.opset
        try:
            path = export_onnx(net, args.out, dynamic_batch=args.dynamic_batch, opset=opset,
                               class_names=config.class_names)
        except OSError as err:
            raise UsageError(f"cannot write {args.out}: {err.strerror or err}") from None
    except (UsageError, FileNotFoundError, ValueError, OSError) as err:  # OnnxExportError is a ValueError
        print_error(PROG, err)
        return 1
    d = net.decoding
    print(f"wrote {path} ({path.stat().st_size / 2 ** 20:.1f} MB): {config.network} at {net.data_shape}, "
          f"{config.num_classes} classes, opset {opset}, batch {'dynamic' if args.dynamic_batch else 1}; "
          f"{d.nms_mode} decoding (NMS {d.nms_thresh:g}{' across classes' if d.force_suppress else ''}, "
          f"top {d.nms_topk}, keep {d.keep_topk}, score threshold {d.thresh:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
