"""Convert a Caffe SSD (or the VGG16 fc-reduced ImageNet base) into this project's format.

    python tools/caffe_converter/convert_model.py DEPLOY.prototxt WEIGHTS.caffemodel PREFIX
    python tools/caffe_converter/convert_model.py deploy.prototxt ssd.caffemodel model/ssd_300 \\
        --class-names labelmap_voc.prototxt
    python tools/caffe_converter/convert_model.py deploy.prototxt.txt res10_300x300_ssd_iter_140000.caffemodel \\
        model/face --mean 104,177,123 --class-names face
    python tools/caffe_converter/convert_model.py --base VGG_ILSVRC_16_layers_fc_reduced_deploy.prototxt \\
        VGG_ILSVRC_16_layers_fc_reduced.caffemodel vgg16_reduced_base

An SSD becomes the checkpoint ``PREFIX-EPOCH.params`` + ``PREFIX-config.json``
(``demo.py --prefix PREFIX`` and ``evaluate.py`` read it directly) with Caffe's
preprocessing and its DetectionOutput settings (per-class NMS). The VGG16
SSD300/512 and MobileNet-SSD map onto this project's presets; any other SSD
(``--network auto`` falls back to it, ``--network caffe`` asks for it) becomes
the ``caffe`` network, which runs the deploy graph layer by layer
(:mod:`symbol.caffe_graph`). ``--base`` writes ``PREFIX.params`` for
``train.py --pretrained``. Nothing is written unless every weight maps and
every check passes; any problem is one line on stderr naming the file and the
layer, and exit status 1.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from tools.cli import (ArgumentParser, UsageError, log_to_stderr, non_negative_int, parse_class_names,
                       print_error)

PROG = "convert_model.py"
logger = logging.getLogger(__name__)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Convert a Caffe SSD model into an MXNet Gluon SSD checkpoint.")
    p.add_argument("prototxt", help="the Caffe deploy prototxt")
    p.add_argument("caffemodel", help="the Caffe weights (.caffemodel)")
    p.add_argument("prefix", help="output prefix: PREFIX-EPOCH.params and PREFIX-config.json "
                                  "(with --base: PREFIX.params)")
    p.add_argument("--network", default="auto", choices=("auto", "caffe", "vgg16_reduced", "mobilenet"),
                   help="target network: a preset (vgg16_reduced, mobilenet), or caffe, the deploy graph as "
                        "it is (default auto: the preset the prototxt matches, else caffe)")
    p.add_argument("--data-shape", default="auto",
                   help="input size (default auto: the prototxt's input shape)")
    p.add_argument("--class-names", default=None,
                   help="a,b,c, a file with one name per line, or a Caffe labelmap.prototxt "
                        "(default: VOC's 20 names for a 21-way model)")
    p.add_argument("--epoch", type=non_negative_int, default=0, help="epoch number of the checkpoint (default 0)")
    p.add_argument("--mean", default=None,
                   help="B,G,R mean subtracted from the BGR input (default: the prototxt's transform_param, "
                        "else the network's Caffe recipe: 104,117,123 for VGG16 and other graphs, 127.5 "
                        "for MobileNet-SSD)")
    p.add_argument("--scale", type=float, default=None,
                   help="factor applied after the mean (default: the prototxt's, else 1, and 0.007843 for "
                        "MobileNet-SSD)")
    p.add_argument("--bgr", action=argparse.BooleanOptionalAction, default=None,
                   help="the model takes BGR input, as Caffe models do (default); --no-bgr for RGB")
    p.add_argument("--fold-batch-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="fold BatchNorm/Scale into the convolutions they follow (default); "
                        "--no-fold-batch-norm keeps them as layers (caffe network only)")
    p.add_argument("--base", action="store_true",
                   help="convert the VGG16 fc-reduced ImageNet model into a base network for train.py --pretrained")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _class_names(value: Optional[str]) -> Optional[list[str]]:
    from tools.caffe_converter.reader import read_labelmap

    if value is not None and value.endswith(".prototxt") and os.path.isfile(value):
        try:
            return read_labelmap(value)
        except ValueError as err:
            raise UsageError(str(err)) from None
    return parse_class_names(value)


def _data_shape(value: str) -> Optional[int]:
    if value == "auto":
        return None
    try:
        side = int(value)
    except ValueError:
        raise UsageError(f"--data-shape: expected auto or an integer, got {value!r}") from None
    if side < 32:
        raise UsageError(f"--data-shape must be at least 32, got {side}")
    return side


def _mean(value: Optional[str]) -> Optional[tuple[float, ...]]:
    if value is None:
        return None
    try:
        values = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise UsageError(f"--mean: expected B,G,R numbers, got {value!r}") from None
    if len(values) not in (1, 3):
        raise UsageError(f"--mean needs 1 or 3 numbers, got {value!r}")
    return values


def convert(args) -> list[str]:
    """Run the conversion described by parsed ``args``; returns the summary lines."""
    from common.fileio import atomic_path
    from symbol.checkpoint import save_checkpoint
    from tools.caffe_converter.conversion import convert_caffe
    from tools.caffe_converter.converter import convert_base
    from tools.caffe_converter.reader import read_caffemodel, read_prototxt

    class_names = _class_names(args.class_names)
    side = _data_shape(args.data_shape)
    mean = _mean(args.mean)
    if args.scale is not None and args.scale <= 0:
        raise UsageError(f"--scale must be positive, got {args.scale}")
    net_def = read_prototxt(args.prototxt)
    blobs = read_caffemodel(args.caffemodel)
    if args.base:
        result = convert_base(net_def, blobs)
        out = Path(args.prefix if args.prefix.endswith(".params") else args.prefix + ".params")
        with atomic_path(out) as tmp:
            result.net.save_parameters(os.fspath(tmp))
        return result.summary() + [f"wrote {out} (train.py --pretrained {out})"]
    result, notes = convert_caffe(net_def, blobs, network=args.network, data_shape=side, class_names=class_names,
                                  mean=mean, scale=args.scale, bgr=args.bgr, fold_batch_norm=args.fold_batch_norm)
    params, config = save_checkpoint(result.net, args.prefix, args.epoch, result.class_names)
    return notes + result.summary() + [f"wrote {params} and {config}"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Convert; returns the exit status (0 ok, 1 on any error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        for path in (args.prototxt, args.caffemodel):
            if not os.path.isfile(path):
                raise UsageError(f"no such file: {path}")
    except UsageError as err:
        print_error(PROG, err)
        return 1
    log_to_stderr(args.log_level)
    try:
        lines = convert(args)
    except (UsageError, ValueError, FileNotFoundError, OSError) as err:
        print_error(PROG, err)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
