"""Train an SSD detector.

    python train.py --network vgg16_reduced --data-shape 300 --dataset voc --data-root VOCdevkit \\
        --year 2007,2012 --train-set trainval --val-set test --gpus 0,1 --prefix model/ssd
    python train.py --network mobilenet --data-shape 128 --dataset folder --data-root synth \\
        --train-set train --cpu --end-epoch 10 --prefix model/synth

Flags follow mxnet-ssd's ``train.py``. Checkpoints are ``PREFIX-EPOCH.params``
with ``PREFIX-config.json``, plus ``PREFIX-EPOCH.states`` and
``PREFIX-EPOCH-state.json`` for ``--resume EPOCH``; the best validation loss
is kept as ``PREFIX-best-0000.params`` (see :mod:`train.trainer`). Errors are
reported as one line on stderr and exit status 1.

Datasets (``--data-root``):

- ``folder``: a VOC-format folder (``Annotations``, ``JPEGImages``,
  ``ImageSets/Main/SET.txt``); classes default to the object names found;
- ``voc``: a VOCdevkit with ``VOC{year}`` folders; classes default to VOC's 20;
- ``coco``: ``annotations/instances_SET.json`` and images in ``SET/``;
  classes default to every category.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from tools.cli import ArgumentParser, UsageError, parse_class_names, print_error

_PROG = "train.py"




def _number(kind, low=None, strict=False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if low is not None and (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value
    return parse


def _int_list(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"values must be >= 0, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Train an SSD detector.")
    p.add_argument("--network", default="vgg16_reduced", help="network name (default: vgg16_reduced)")
    p.add_argument("--data-shape", type=_number(int, 32), default=300, help="input size (default: 300)")
    p.add_argument("--dataset", choices=("voc", "coco", "folder"), default="voc",
                   help="dataset format (default: voc)")
    p.add_argument("--data-root", required=True, help="dataset folder (see the module help)")
    p.add_argument("--year", default="2007,2012", help="VOC years, comma-separated (default: 2007,2012)")
    p.add_argument("--train-set", default="trainval", help="training image set (default: trainval)")
    p.add_argument("--val-set", default=None, help="validation image set (default: none)")
    p.add_argument("--class-names", default=None,
                   help="comma-separated class names, or a file with one name per line")
    p.add_argument("--batch-size", type=_number(int, 1), default=32, help="images per batch (default: 32)")
    p.add_argument("--lr", "--learning-rate", dest="lr", type=_number(float, 0, strict=True), default=0.001,
                   help="base learning rate (default: 0.001)")
    p.add_argument("--lr-steps", type=_int_list, default=[80, 100],
                   help="epochs at which the learning rate is multiplied by --lr-factor (default: 80,100)")
    p.add_argument("--lr-factor", type=_number(float, 0, strict=True), default=0.1,
                   help="learning rate decay factor (default: 0.1)")
    p.add_argument("--warmup-epochs", type=_number(float, 0), default=0.0,
                   help="linear learning rate warm-up, in epochs (default: 0)")
    p.add_argument("--momentum", type=_number(float, 0), default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--wd", type=_number(float, 0), default=0.0005, help="weight decay (default: 0.0005)")
    p.add_argument("--caffe-bias", action=argparse.BooleanOptionalAction, default=True,
                   help="biases: twice the learning rate, no weight decay (default: on)")
    p.add_argument("--begin-epoch", type=_number(int, 0), default=0, help="first epoch (default: 0)")
    p.add_argument("--end-epoch", type=_number(int, 1), default=120, help="last epoch (default: 120)")
    p.add_argument("--resume", type=_number(int, 1), default=None, metavar="EPOCH",
                   help="continue from PREFIX-EPOCH (weights, SGD state, step count)")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="ImageNet .params file of the backbone")
    p.add_argument("--freeze", default=None, metavar="REGEX",
                   help="do not train the parameters whose name matches (e.g. 'conv[12]_')")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--gpus", default=None, help="comma-separated GPU ids (needs mxnet-cu112)")
    dev.add_argument("--cpu", action="store_true", help="train on the CPU (the default)")
    p.add_argument("--num-cpu-contexts", type=_number(int, 1), default=1,
                   help="with --cpu: split each batch over this many CPU contexts (default: 1)")
    p.add_argument("--num-workers", type=_number(int, 0), default=0,
                   help="data loading processes (default: 0)")
    p.add_argument("--prefix", default=os.path.join("model", "ssd"), help="checkpoint prefix (default: model/ssd)")
    p.add_argument("--checkpoint-interval", type=_number(int, 1), default=1,
                   help="save every N epochs (default: 1)")
    p.add_argument("--val-interval", type=_number(int, 1), default=1,
                   help="validate every N epochs (default: 1)")
    p.add_argument("--frequent", type=_number(int, 0), default=20,
                   help="log every N batches (default: 20)")
    p.add_argument("--log", default=None, metavar="FILE", help="also write the log lines to FILE")
    p.add_argument("--seed", type=_number(int, 0), default=0, help="random seed (default: 0)")
    return p




def _validate(args: argparse.Namespace) -> None:
    from symbol.presets import network_names

    if args.network not in network_names():
        raise UsageError(f"unknown network {args.network!r}; valid names: {', '.join(network_names())}")
    if not os.path.isdir(args.data_root):
        raise UsageError(f"data root not found: {args.data_root}")
    if args.resume is not None:
        if args.begin_epoch not in (0, args.resume):
            raise UsageError("--resume N starts at epoch N: drop --begin-epoch")
        args.begin_epoch = args.resume
    if args.begin_epoch >= args.end_epoch:
        raise UsageError(f"--end-epoch ({args.end_epoch}) must be greater than the first epoch "
                          f"({args.begin_epoch})")
    if args.pretrained is not None and not os.path.isfile(args.pretrained):
        raise UsageError(f"pretrained weights not found: {args.pretrained}")
    if args.num_cpu_contexts > 1 and args.gpus is not None:
        raise UsageError("--num-cpu-contexts only applies with --cpu")


def _contexts(args: argparse.Namespace) -> list:
    import mxnet as mx

    if args.gpus is None:
        return [mx.cpu(i) for i in range(args.num_cpu_contexts)]
    from evaluate.detector import resolve_context

    ids = _int_list(args.gpus)
    if not ids:
        raise ValueError("--gpus is empty")
    return [resolve_context(i) for i in ids]


def _readers(args: argparse.Namespace, class_names: Optional[list[str]]):
    """(train reader, val reader or None, class names)."""
    from dataset.coco import COCODetection
    from dataset.voc import VOC_CLASSES, VOCDetection, VOCFolder

    root = Path(args.data_root)
    if args.dataset == "folder":
        train = VOCFolder(root, class_names, image_set=args.train_set)
        names = list(train.class_names)
        val = VOCFolder(root, names, image_set=args.val_set) if args.val_set else None
    elif args.dataset == "voc":
        years = [y.strip() for y in args.year.split(",") if y.strip()]
        names = class_names or list(VOC_CLASSES)
        train = VOCDetection(root, years, args.train_set, names)
        val = VOCDetection(root, years, args.val_set, names) if args.val_set else None
    else:
        def coco(image_set, names):
            return COCODetection(root / "annotations" / f"instances_{image_set}.json", root / image_set, names)
        train = coco(args.train_set, class_names)
        names = list(train.class_names)
        val = coco(args.val_set, names) if args.val_set else None
    return train, val, names


def _setup_logging(log_file: Optional[str]) -> None:
    fmt = logging.Formatter("%(asctime)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers = [logging.StreamHandler(sys.stdout)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train; returns the exit status (0 ok, 1 on any error, 130 when interrupted)."""
    try:
        args = build_parser().parse_args(argv)
        class_names = parse_class_names(args.class_names)
        _validate(args)
    except UsageError as err:
        _error(err)
        return 1
    try:
        _setup_logging(args.log)
    except OSError as err:
        _error(f"cannot open the log file {args.log}: {err}")
        return 1
    # Imported here so that --help and bad flags answer without loading MXNet.
    import mxnet as mx

    from dataset.loader import DetectionDataset, make_loader
    from symbol import get_model
    from train.trainer import fit

    try:
        ctx = _contexts(args)
        train_reader, val_reader, names = _readers(args, class_names)
        train_set = DetectionDataset(train_reader, args.data_shape, train=True, seed=args.seed)
        train_loader = make_loader(train_set, args.batch_size, shuffle=True, num_workers=args.num_workers,
                                   last_batch="rollover")
        val_loader = None
        if val_reader is not None:
            val_loader = make_loader(DetectionDataset(val_reader, args.data_shape, train=False),
                                     args.batch_size, shuffle=False, num_workers=args.num_workers)
        mx.random.seed(args.seed)
        net = get_model(args.network, args.data_shape, len(names), pretrained_base=args.pretrained,
                        ctx=ctx[0])
        fit(net, train_loader, class_names=names, prefix=args.prefix, ctx=ctx, val_loader=val_loader,
            set_epoch=train_set.set_epoch, lr=args.lr, lr_steps=args.lr_steps, lr_factor=args.lr_factor,
            warmup_epochs=args.warmup_epochs, momentum=args.momentum, wd=args.wd,
            begin_epoch=args.begin_epoch, end_epoch=args.end_epoch, resume=args.resume is not None,
            checkpoint_interval=args.checkpoint_interval, val_interval=args.val_interval,
            frequent=args.frequent, seed=args.seed, freeze=args.freeze, caffe_bias=args.caffe_bias)
    except KeyboardInterrupt:
        _error("interrupted (the current state was saved as a checkpoint)")
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, OSError, TypeError, mx.base.MXNetError) as err:
        _error(err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
