"""See what the network is fed: training samples after augmentation, boxes and class names drawn.

Examples::

    python -m tools.browse_dataset --dataset folder --data-root data/mine --augment caffe \\
        --out-dir viz/ --num 16
    python -m tools.browse_dataset --dataset voc --data-root VOCdevkit --year 2007 --set trainval \\
        --data-shape 512 --no-expand --epoch 3 --out-dir viz/

The data set opens as for ``train.py`` (:func:`dataset.factory.open_dataset`)
and its samples come from :class:`dataset.loader.DetectionDataset` in training
mode with the same ``--augment``, ``--data-shape``, ``--seed`` and
``--expand`` / ``--no-expand``: picture ``K`` is sample ``K`` of the data set
as ``train.py`` augments it in epoch ``--epoch`` (0-based). Each picture is
``OUT_DIR/KKKK_ID.png``, ``S`` x ``S`` pixels, written atomically. Bad input
is one line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from dataset import AUGMENTATIONS
from dataset.factory import KINDS
from tools.cli import ArgumentParser, UsageError, log_to_stderr, number, parse_class_names, print_error

_PROG = "browse_dataset"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=KINDS, default="voc",
                   help="dataset format, as for train.py (default: voc)")
    p.add_argument("--data-root", default=None,
                   help="dataset folder (as for train.py); optional for rec with --rec-path")
    p.add_argument("--year", default="2007,2012", help="voc: years, comma-separated (default: 2007,2012)")
    p.add_argument("--set", "--train-set", dest="image_set", default="trainval",
                   help="image set (default: trainval; a folder without ImageSets/Main: every image)")
    p.add_argument("--rec-path", "--train-path", dest="rec_path", default=None, metavar="PATH.rec",
                   help="rec: the records (default: DATA_ROOT/SET.rec)")
    p.add_argument("--class-names", default=None,
                   help="comma-separated class names, or a file with one name per line (default: as "
                        "train.py finds them)")
    p.add_argument("--skip-unknown", action=argparse.BooleanOptionalAction, default=False,
                   help="voc, folder: drop objects of classes not in --class-names (default: off)")
    p.add_argument("--augment", choices=AUGMENTATIONS, default="caffe",
                   help="training augmentation, as train.py's --augment (default: caffe)")
    p.add_argument("--data-shape", type=number(int, 32), default=300,
                   help="network input size, as train.py's (default: 300)")
    p.add_argument("--expand", action=argparse.BooleanOptionalAction, default=True,
                   help="Caffe's zoom-out augmentation, as train.py's (default: on)")
    p.add_argument("--seed", type=number(int, 0), default=0, help="random seed, as train.py's (default: 0)")
    p.add_argument("--epoch", type=number(int, 0), default=0,
                   help="show the augmentation of this training epoch, 0-based (default: 0)")
    p.add_argument("--num", type=number(int, 1), default=16, help="pictures to write (default: 16)")
    p.add_argument("--out-dir", required=True, help="folder to write the pictures to")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging verbosity, on stderr (default: WARNING)")
    return p


def _validate(args: argparse.Namespace) -> None:
    if args.dataset == "rec":
        if args.rec_path is None and args.data_root is None:
            raise UsageError("--dataset rec needs --rec-path (or --data-root holding SET.rec)")
    else:
        if args.rec_path is not None:
            raise UsageError("--rec-path only applies with --dataset rec")
        if args.data_root is None:
            raise UsageError(f"--dataset {args.dataset} needs --data-root")
    if args.data_root is not None and not os.path.isdir(args.data_root):
        raise UsageError(f"data root not found: {args.data_root}")
    if args.skip_unknown and args.dataset not in ("voc", "folder"):
        raise UsageError("--skip-unknown only applies with --dataset voc or folder")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise UsageError(f"--out-dir {args.out_dir} exists and is not a folder")
    args.years = [y.strip() for y in args.year.split(",") if y.strip()]


def _file_name(k: int, image_id: Any) -> str:
    """``KKKK_ID.png``, the id made safe for a file name (``VOC2007/000005`` -> ``VOC2007_000005``)."""
    return f"{k:04d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', str(image_id))}.png"


def browse(args: argparse.Namespace, class_names: Optional[list[str]]) -> list[Path]:
    """Write the pictures; returns their paths."""
    import numpy as np

    from dataset.factory import open_dataset
    from dataset.loader import DetectionDataset
    from evaluate.visualize import draw_boxes

    reader = open_dataset(args.dataset, args.data_root, args.image_set, class_names, years=args.years,
                          skip_unknown=args.skip_unknown, rec_path=args.rec_path)
    if len(reader) == 0:
        raise ValueError("the dataset has no images")
    samples = DetectionDataset(reader, args.data_shape, train=True, seed=args.seed, expand=args.expand,
                               augment=args.augment)
    samples.set_epoch(args.epoch)
    ids = getattr(reader, "ids", range(len(reader)))
    out_dir, size, written = Path(args.out_dir), args.data_shape, []
    for k in range(min(args.num, len(samples))):
        image, label = samples[k]
        picture = np.clip(np.rint(image.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        path = out_dir / _file_name(k, ids[k])
        draw_boxes(picture, label[:, 1:5] * size, label[:, 0].astype(np.int64), reader.class_names, path,
                   difficult=label[:, 5] > 0.5)
        written.append(path)
    return written


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the pictures; returns the exit status (0 ok, 1 on any error)."""
    try:
        args = build_parser().parse_args(argv)
        class_names = parse_class_names(args.class_names)
        _validate(args)
    except UsageError as err:
        _error(err)
        return 1
    log_to_stderr(args.log_level)
    try:
        written = browse(args, class_names)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        _error(err)
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    print(f"wrote {len(written)} pictures ({args.data_shape}x{args.data_shape}, --augment {args.augment}, "
          f"epoch {args.epoch}, seed {args.seed}) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
