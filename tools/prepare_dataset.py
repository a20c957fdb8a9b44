"""Pack a detection data set into RecordIO (PREFIX.lst, PREFIX.rec, PREFIX.idx, PREFIX.names).

Examples::

    python -m tools.prepare_dataset --dataset voc --data-root data/VOCdevkit \\
        --year 2007,2012 --set trainval --target data/train
    python -m tools.prepare_dataset --dataset coco --annotations instances_val2017.json \\
        --images val2017 --target data/coco_val
    python -m tools.prepare_dataset --dataset folder --data-root data/shapes --set train \\
        --target data/shapes_train

Flags follow mxnet-ssd's ``tools/prepare_dataset.py``. The label width is the
largest object count of the data (no 57-object cap); images are stored as
their original bytes (im2rec ``--pass-through``). See :mod:`dataset.recordio`.
The class names go to ``PREFIX.names`` (one a line), where ``train.py`` and
``evaluate.py --dataset rec`` find them. The data set is opened by
:func:`dataset.factory.open_dataset`, as for training. Errors are one line on
stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from tools.cli import ArgumentParser, UsageError, log_to_stderr, parse_class_names, print_error

_PROG = "prepare_dataset"




def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=("voc", "coco", "folder"),
                   help="voc: a VOCdevkit; coco: an instances_*.json; folder: a VOC-format folder")
    p.add_argument("--data-root", default=None, help="VOCdevkit (voc) or VOC-format folder (folder)")
    p.add_argument("--year", default="2007", help="voc: comma-separated years (default: 2007)")
    p.add_argument("--set", dest="image_set", default=None,
                   help="image set: voc default trainval; folder default every annotation")
    p.add_argument("--annotations", default=None, help="coco: the instances_*.json file")
    p.add_argument("--images", default=None, help="coco: the image folder")
    p.add_argument("--class-names", default=None,
                   help="comma-separated names or a file with one a line (default: VOC classes "
                        "for voc, the names found for folder, every category for coco)")
    p.add_argument("--use-difficult", action=argparse.BooleanOptionalAction, default=True,
                   help="keep difficult objects, flagged (COCO: crowd regions)")
    p.add_argument("--skip-unknown", action=argparse.BooleanOptionalAction, default=False,
                   help="voc, folder: drop objects of classes not in --class-names, with one warning "
                        "counting them (default: off, such an object is an error)")
    p.add_argument("--target", required=True, help="output prefix: writes PREFIX.lst/.rec/.idx/.names")
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="shuffle the image order")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed")
    p.add_argument("--num-thread", type=int, default=1, help="im2rec worker processes")
    p.add_argument("--log-level", default="WARNING",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging verbosity")
    return p




def _check(args: argparse.Namespace) -> None:
    if args.dataset in ("voc", "folder"):
        if args.data_root is None:
            raise UsageError(f"--dataset {args.dataset} needs --data-root")
        if not os.path.isdir(args.data_root):
            raise UsageError(f"data root not found: {args.data_root}")
    else:
        if args.annotations is None or args.images is None:
            raise UsageError("--dataset coco needs --annotations and --images")
        if not os.path.isdir(args.images):
            raise UsageError(f"image folder not found: {args.images}")
    if args.skip_unknown and args.dataset == "coco":
        raise UsageError("--skip-unknown only applies with --dataset voc or folder (COCO reads the "
                         "categories named and ignores the others)")
    if args.num_thread < 1:
        raise UsageError(f"--num-thread must be at least 1, got {args.num_thread}")
    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    if os.path.isdir(args.target):
        raise UsageError(f"--target is a prefix, not a folder: {args.target}")


def _reader(args: argparse.Namespace, class_names: Optional[list[str]]):
    """(reader, the folder the .lst paths are relative to)."""
    from dataset.factory import open_dataset

    years = [y.strip() for y in args.year.split(",") if y.strip()]
    reader = open_dataset(args.dataset, args.data_root, args.image_set, class_names, years=years,
                          use_difficult=args.use_difficult, keep_crowd=args.use_difficult,
                          skip_unknown=args.skip_unknown, annotations=args.annotations,
                          image_dir=args.images)
    return reader, args.images if args.dataset == "coco" else args.data_root


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prepare the records; returns the exit status (0 ok, 1 on any error)."""
    try:
        args = build_parser().parse_args(argv)
        _check(args)
        class_names = parse_class_names(args.class_names)
    except (UsageError, OSError, UnicodeDecodeError) as err:
        _error(err)
        return 1
    log_to_stderr(args.log_level)
    from dataset.recordio import make_records

    try:
        reader, root = _reader(args, class_names)
        summary = make_records(reader, args.target, root=root, shuffle=args.shuffle,
                               seed=args.seed, num_thread=args.num_thread,
                               class_names=reader.class_names)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        _error(err)
        return 1
    names = ",".join(reader.class_names)
    print(f"{args.target}.rec: {summary['images']} images, {summary['objects']} objects, "
          f"{summary['rows']} object rows per label; classes ({args.target}.names): {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
