"""Train an SSD detector.

    python train.py --network vgg16_reduced --data-shape 300 --dataset voc --data-root VOCdevkit \\
        --year 2007,2012 --train-set trainval --val-set test --gpus 0,1 --prefix model/ssd
    python train.py --network mobilenet --data-shape 128 --dataset folder --data-root synth \\
        --train-set train --cpu --end-epoch 10 --prefix model/synth
    python train.py --dataset rec --train-path data/train.rec --val-path data/val.rec \
        --class-names data/names.txt --network mobilenet --data-shape 300 --prefix model/rec
    python train.py --finetune 120 --finetune-prefix model/voc --dataset folder --data-root mine \
        --class-names cat,dog --prefix model/mine

Flags follow mxnet-ssd's ``train.py``. Every checkpoint (after each
``--checkpoint-interval`` epochs, after the last, and on Ctrl-C in the middle of
an epoch) is ``PREFIX-EPOCH.params`` with ``PREFIX-config.json`` (the network),
``PREFIX-EPOCH.states`` (SGD momentum) and ``PREFIX-EPOCH-state.json`` (where
training stands and its settings); with validation, the best mAP so far is
``PREFIX-best-EPOCH.params`` (see :mod:`train.checkpoints`). Errors are
reported as one line on stderr and exit status 1; Ctrl-C saves and exits 130.

Datasets (``--data-root``; see :func:`dataset.factory.open_dataset`):

- ``folder``: a VOC-format folder (``Annotations``, ``JPEGImages``, and
  ``ImageSets/Main/SET.txt`` if it has splits: without them every annotated
  image); classes default to the object names found;
- ``voc``: a VOCdevkit with ``VOC{year}`` folders; classes default to VOC's 20;
- ``coco``: ``annotations/instances_SET.json`` and images in ``SET/``;
  classes default to every category;
- ``rec``: detection RecordIO (``tools/prepare_dataset.py``, mxnet-ssd or
  im2rec, with the ``.idx`` next to the ``.rec``): ``--train-path`` and
  ``--val-path``, or ``DATA_ROOT/TRAIN_SET.rec`` and ``DATA_ROOT/VAL_SET.rec``;
  classes from the ``.names`` file beside the records, or ``--class-names``.

Resuming (``--resume latest`` or ``--resume EPOCH``) continues from the newest
checkpoint of ``--prefix`` (or ``PREFIX-EPOCH``), complete or taken in the
middle of an epoch, to the weights an uninterrupted run would have: the network
is rebuilt from ``PREFIX-config.json`` and the training settings (batch size,
schedule, SGD, seed, augmentation, intervals) are the saved ones, so the
dataset flags are enough; a training flag given again overrides its saved
value (logged). A checkpoint without optimizer state (a converted model)
continues with a fresh one.

Fine-tuning (``--finetune EPOCH --finetune-prefix SOURCE``) starts from
``SOURCE-EPOCH`` with this run's classes: network, backbone options and
(unless ``--data-shape`` is given) input size come from the source
checkpoint; every weight is kept except the class heads, which are
re-initialized; training starts at epoch 0 with a fresh optimizer and writes
to ``--prefix``, which must differ from the source.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from dataset import AUGMENTATIONS
from dataset.factory import KINDS
from tools.cli import (ArgumentParser, UsageError, non_negative_int, number, parse_class_names, print_error,
                       serial_cpu_copies)
from train.config import METRICS, TrainConfig

_PROG = "train.py"
_DEFAULT_NETWORK = "vgg16_reduced"
_DEFAULT_SHAPE = 300


def _resume_arg(text: str):
    """``--resume``: ``latest`` or an epoch number."""
    if text == "latest":
        return text
    try:
        return non_negative_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an epoch number or 'latest', got {text!r}") from None


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
    p.add_argument("--network", default=None,
                   help=f"network name (default: {_DEFAULT_NETWORK}, or the --finetune checkpoint's)")
    p.add_argument("--data-shape", type=number(int, 32), default=None,
                   help=f"input size (default: {_DEFAULT_SHAPE}, or the --finetune checkpoint's)")
    p.add_argument("--dataset", choices=KINDS, default="voc",
                   help="dataset format (default: voc)")
    p.add_argument("--data-root", default=None,
                   help="dataset folder (see the module help); optional for rec with --train-path")
    p.add_argument("--train-path", "--train-rec", dest="train_path", default=None, metavar="PATH.rec",
                   help="with --dataset rec: training records (default: DATA_ROOT/TRAIN_SET.rec)")
    p.add_argument("--val-path", "--val-rec", dest="val_path", default=None, metavar="PATH.rec",
                   help="with --dataset rec: validation records (default: DATA_ROOT/VAL_SET.rec "
                        "when --val-set is given)")
    p.add_argument("--year", default="2007,2012", help="VOC years, comma-separated (default: 2007,2012)")
    p.add_argument("--train-set", default="trainval", help="training image set (default: trainval)")
    p.add_argument("--val-set", default=None, help="validation image set (default: none)")
    p.add_argument("--val-split", type=number(float, 0, 1, strict=True), default=None, metavar="FRACTION",
                   help="hold out this share of the training images for validation, chosen by --seed "
                        "(e.g. 0.1; instead of --val-set)")
    p.add_argument("--class-names", default=None,
                   help="comma-separated class names, or a file with one name per line (default: the "
                        "object names found for folder, VOC's 20 for voc, every category for coco, "
                        "the PREFIX.names beside the records for rec)")
    p.add_argument("--skip-unknown", action=argparse.BooleanOptionalAction, default=False,
                   help="voc, folder: drop objects of classes not in --class-names, with one warning "
                        "counting them (default: off, such an object is an error)")
    d = TrainConfig()  # the defaults of a new run; --resume restores the saved settings instead
    t = p.add_argument_group("training settings", "saved with every checkpoint; --resume restores them, "
                                                  "and a flag given again overrides the saved value")
    t.add_argument("--batch-size", type=number(int, 1), default=None,
                   help=f"images per batch (default: {d.batch_size})")
    t.add_argument("--lr", "--learning-rate", dest="lr", type=number(float, 0, strict=True), default=None,
                   help=f"base learning rate (default: {d.lr:g})")
    t.add_argument("--lr-steps", type=_int_list, default=None,
                   help=f"epochs at which the learning rate is multiplied by --lr-factor (default: "
                        f"{','.join(map(str, d.lr_steps))})")
    t.add_argument("--lr-factor", type=number(float, 0, strict=True), default=None,
                   help=f"learning rate decay factor (default: {d.lr_factor:g})")
    t.add_argument("--warmup-epochs", type=number(float, 0), default=None,
                   help=f"linear learning rate warm-up, in epochs (default: {d.warmup_epochs:g})")
    t.add_argument("--momentum", type=number(float, 0), default=None, help=f"SGD momentum (default: {d.momentum:g})")
    t.add_argument("--wd", type=number(float, 0), default=None, help=f"weight decay (default: {d.wd:g})")
    t.add_argument("--augment", choices=AUGMENTATIONS, default=None,
                   help="training augmentation: Caffe SSD's (colour, zoom-out, min-IoU crops with "
                        "aspect changes, flip), its shape-preserving part (colour, flip), or none "
                        f"(default: {d.augment})")
    t.add_argument("--expand", action=argparse.BooleanOptionalAction, default=None,
                   help="Caffe's zoom-out augmentation, objects up to 4x smaller (default: on; "
                        "--no-expand for datasets of small objects)")
    t.add_argument("--caffe-bias", action=argparse.BooleanOptionalAction, default=None,
                   help="biases: twice the learning rate, no weight decay (default: on)")
    t.add_argument("--end-epoch", type=number(int, 1), default=None,
                   help=f"train until this many epochs are done (default: {d.end_epoch})")
    t.add_argument("--checkpoint-interval", type=number(int, 1), default=None,
                   help=f"save every N epochs, and after the last (default: {d.checkpoint_interval})")
    t.add_argument("--val-interval", type=number(int, 1), default=None,
                   help=f"validate every N epochs, and after the last (default: {d.val_interval})")
    t.add_argument("--val-metric", choices=METRICS, default=None,
                   help=f"validation mAP: VOC07 11-point or VOC10 area (default: {d.val_metric})")
    t.add_argument("--frequent", type=number(int, 0), default=None,
                   help=f"log speed, losses and the epoch's ETA every N batches, 0: once per epoch "
                        f"(default: {d.frequent})")
    t.add_argument("--seed", type=number(int, 0), default=None,
                   help=f"seeds the augmentation, the batch order, --val-split and MXNet (default: {d.seed})")
    t.add_argument("--freeze", default=None, metavar="REGEX",
                   help="do not train the parameters whose name matches (e.g. 'conv[12]_')")
    p.add_argument("--begin-epoch", type=number(int, 0), default=None,
                   help="a new run: epochs already done, for the learning-rate schedule (default: 0)")
    p.add_argument("--resume", type=_resume_arg, default=None, metavar="EPOCH|latest",
                   help="continue from PREFIX-EPOCH, or from the newest checkpoint of --prefix, complete or "
                        "taken mid-epoch on Ctrl-C: network from PREFIX-config.json, weights, SGD state, "
                        "position in the epoch and the training settings as saved")
    p.add_argument("--finetune", type=number(int, 0), default=None, metavar="EPOCH",
                   help="start from FINETUNE_PREFIX-EPOCH with this run's classes (class heads "
                        "re-initialized, epoch 0, fresh optimizer)")
    p.add_argument("--finetune-prefix", default=None, metavar="PREFIX",
                   help="with --finetune: prefix of the source checkpoint (not --prefix)")
    p.add_argument("--multiplier", type=number(float, 0, strict=True), default=None,
                   help="width multiplier of mobilenet / ssdlite_mobilenetv2 (default: 1.0)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="mobilenet: batch norm after every convolution (GluonCV's layout; what training "
                        "from scratch needs) or Caffe MobileNet-SSD's biased convolutions (default: the "
                        "preset's: off at 300, on at 512)")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="ImageNet .params file of the backbone")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--gpus", default=None, help="comma-separated GPU ids (needs mxnet-cu112)")
    dev.add_argument("--cpu", action="store_true", help="train on the CPU (the default)")
    p.add_argument("--num-cpu-contexts", type=number(int, 1), default=1,
                   help="with --cpu: split each batch over this many CPU contexts (default: 1)")
    p.add_argument("--kv-store", default="device",
                   choices=("local", "device", "dist_sync", "dist_device_sync"),
                   help="gradient aggregation (default: device); dist_* for several machines, "
                        "started with python -m tools.launch (see the README)")
    p.add_argument("--num-workers", type=number(int, 0), default=0,
                   help="data loading processes (default: 0)")
    p.add_argument("--prefix", default=os.path.join("model", "ssd"), help="checkpoint prefix (default: model/ssd)")
    p.add_argument("--log", default=None, metavar="FILE", help="also write the log lines to FILE")
    return p


def _validate(args: argparse.Namespace, class_names: Optional[list[str]]) -> None:
    from symbol.presets import network_names

    if args.network is not None and args.network not in network_names():
        raise UsageError(f"unknown network {args.network!r}; valid names: {', '.join(network_names())}")
    if args.dataset == "rec":
        if args.train_path is None and args.data_root is None:
            raise UsageError("--dataset rec needs --train-path (or --data-root holding TRAIN_SET.rec)")
        if args.val_set is not None and args.val_path is None and args.data_root is None:
            raise UsageError("--val-set with --dataset rec needs --data-root holding VAL_SET.rec, or "
                             "give --val-path")
    else:
        if args.train_path is not None or args.val_path is not None:
            raise UsageError("--train-path and --val-path only apply with --dataset rec")
        if args.data_root is None:
            raise UsageError(f"--dataset {args.dataset} needs --data-root")
    if args.data_root is not None and not os.path.isdir(args.data_root):
        raise UsageError(f"data root not found: {args.data_root}")
    if args.val_split is not None and args.val_split >= 1:
        raise UsageError(f"--val-split is the share of the training images to hold out, below 1: "
                         f"got {args.val_split:g}")
    if args.val_split is not None and (args.val_set is not None or args.val_path is not None):
        raise UsageError("--val-split carves the validation images from the training set: drop "
                         "--val-set / --val-path, or --val-split")
    if args.skip_unknown and args.dataset not in ("voc", "folder"):
        raise UsageError("--skip-unknown only applies with --dataset voc or folder")
    if args.dataset in ("voc", "folder") and args.val_set is not None:
        from dataset.voc import folder_splits

        if (os.path.isdir(os.path.join(args.data_root, "Annotations"))
                and folder_splits(args.data_root) is None):
            raise UsageError(f"{args.data_root} has no ImageSets/Main, so --val-set {args.val_set} would "
                             f"validate on the training images: hold some out with --val-split 0.1 "
                             f"instead")
    if args.finetune is not None:
        if args.finetune_prefix is None:
            raise UsageError("--finetune needs --finetune-prefix (the source checkpoint's prefix)")
        if os.path.abspath(args.finetune_prefix) == os.path.abspath(args.prefix):
            raise UsageError("--prefix must differ from --finetune-prefix (the new classes would "
                             "overwrite the source checkpoint's config)")
        for flag, value in (("--resume", args.resume), ("--pretrained", args.pretrained),
                            ("--multiplier", args.multiplier), ("--batch-norm", args.batch_norm)):
            if value is not None:
                raise UsageError(f"--finetune and {flag} cannot be combined")
        if args.begin_epoch:
            raise UsageError("--finetune starts at epoch 0: drop --begin-epoch")
    elif args.finetune_prefix is not None:
        raise UsageError("--finetune-prefix only applies with --finetune EPOCH")
    if args.resume is not None:
        if args.begin_epoch is not None:
            raise UsageError("--resume continues where the checkpoint stands: drop --begin-epoch")
        if args.pretrained is not None:
            raise UsageError("--resume continues from PREFIX-EPOCH: drop --pretrained")
    elif args.end_epoch is not None and (args.begin_epoch or 0) >= args.end_epoch:
        raise UsageError(f"--end-epoch ({args.end_epoch}) must be greater than the first epoch "
                         f"({args.begin_epoch})")
    if args.pretrained is not None and not os.path.isfile(args.pretrained):
        raise UsageError(f"pretrained weights not found: {args.pretrained}")
    if args.kv_store.startswith("dist") and "DMLC_ROLE" not in os.environ:
        raise UsageError(f"--kv-store {args.kv_store} needs the processes that "
                         f"'python -m tools.launch -n WORKERS ...' starts (no DMLC_ROLE in the environment)")
    if args.num_cpu_contexts > 1 and args.gpus is not None:
        raise UsageError("--num-cpu-contexts only applies with --cpu")


def _contexts(args: argparse.Namespace) -> list:
    import mxnet as mx

    if args.gpus is None:
        return [mx.cpu(i) for i in range(args.num_cpu_contexts)]
    from common.devices import resolve_context

    ids = _int_list(args.gpus)
    if not ids:
        raise ValueError("--gpus is empty")
    return [resolve_context(i) for i in ids]


def _readers(args: argparse.Namespace, class_names: Optional[list[str]], seed: int):
    """(train reader, val reader or None, class names), opened by dataset.factory.open_dataset."""
    from dataset.factory import open_dataset
    from dataset.subset import random_split

    years = [y.strip() for y in args.year.split(",") if y.strip()]

    def open_split(split: Optional[str], rec_path: Optional[str], names: Optional[Sequence[str]]):
        return open_dataset(args.dataset, args.data_root, split, names, years=years,
                            skip_unknown=args.skip_unknown, rec_path=rec_path)

    train = open_split(args.train_set, args.train_path, class_names)
    names = list(train.class_names)
    val = None
    if args.val_split is not None:
        train, val = random_split(train, args.val_split, seed=seed)
        logging.getLogger("train").info("--val-split %g: %d training and %d validation images (seed %d)",
                                        args.val_split, len(train), len(val), seed)
    elif args.val_set is not None or args.val_path is not None:
        val = open_split(args.val_set, args.val_path, names)
    return train, val, names


def _resume_epoch(args: argparse.Namespace) -> int:
    """The checkpoint ``--resume`` names: its number, or the newest of ``--prefix``."""
    from symbol.checkpoint import params_path
    from train.checkpoints import latest_epoch

    if args.resume != "latest":
        if not params_path(args.prefix, args.resume).is_file():
            raise FileNotFoundError(f"cannot resume from epoch {args.resume}: "
                                    f"{params_path(args.prefix, args.resume)} not found")
        return args.resume
    epoch = latest_epoch(args.prefix)
    if epoch is None:
        raise FileNotFoundError(f"--resume latest: no checkpoint {args.prefix}-NNNN.params to resume from")
    return epoch


def _resume_config(args: argparse.Namespace, epoch: int, class_names: Optional[list[str]]):
    """The network config of the checkpoint ``--resume`` continues, checked against the
    flags (a contradiction is an error naming both values); fills in ``args.network``
    and ``args.data_shape``."""
    from symbol.checkpoint import read_config

    try:
        config = read_config(args.prefix)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"cannot resume from epoch {epoch}: {err}") from None
    given = {"--network": (args.network, config.network), "--data-shape": (args.data_shape, config.data_shape),
             "--multiplier": (args.multiplier, config.backbone_kwargs.get("multiplier", 1.0)),
             "--batch-norm": (args.batch_norm, config.backbone_kwargs.get("batch_norm"))}
    for flag, (value, saved) in given.items():
        if value is not None and value != saved:
            raise ValueError(f"{flag} {value} but {args.prefix} was trained with {saved}: --resume rebuilds the "
                             f"network from {args.prefix}-config.json; drop {flag}")
    if class_names is not None and list(class_names) != list(config.class_names):
        raise ValueError(f"--class-names {','.join(class_names)} but {args.prefix} detects "
                         f"{','.join(config.class_names)}; to train other classes use --finetune")
    args.network, args.data_shape = config.network, config.data_shape
    return config


def _train_config(args: argparse.Namespace, epoch: Optional[int]) -> TrainConfig:
    """The run's :class:`TrainConfig`: the flags given over the defaults, or, resuming,
    over the settings saved with checkpoint ``epoch`` (each changed one logged)."""
    from train.checkpoints import read_progress

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if "lr_steps" in given:
        given["lr_steps"] = tuple(given["lr_steps"])
    base = TrainConfig()
    log = logging.getLogger("train")
    if epoch is not None:
        progress = read_progress(args.prefix, epoch)
        if progress is None or progress.train is None:
            log.warning("%s-%04d has no saved training settings (a converted or older checkpoint): "
                        "the flags given and the defaults apply", args.prefix, epoch)
        else:
            base = progress.train
            for name, value in given.items():
                if value != getattr(base, name):
                    flag = "--" + name.replace("_", "-")
                    log.info("%s %s overrides the saved %s", flag, _show(value), _show(getattr(base, name)))
    try:
        return base.replace(**given)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "(none)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _build_net(args: argparse.Namespace, names: list[str], ctx, resume_config=None):
    """A new network, the --resume checkpoint's (from its config), or the --finetune
    checkpoint's for ``names``; fills in ``args.network`` and ``args.data_shape``
    when they were not given."""
    from symbol import get_model
    from symbol.checkpoint import read_config
    from train.trainer import finetune_model

    if resume_config is not None:
        c = resume_config
        return get_model(c.network, c.data_shape, c.num_classes, layout=c.layout, preprocess=c.preprocess,
                         ctx=ctx, decoding=c.decoding, **dict(c.backbone_kwargs))
    if args.finetune is None:
        args.network = args.network or _DEFAULT_NETWORK
        args.data_shape = args.data_shape or _DEFAULT_SHAPE
        options = {k: v for k, v in (("multiplier", args.multiplier), ("batch_norm", args.batch_norm))
                   if v is not None}
        net = get_model(args.network, args.data_shape, len(names), pretrained_base=args.pretrained, ctx=ctx,
                        **options)
        if net.build_args["kwargs"].get("batch_norm") is False and args.pretrained is None:
            logging.getLogger("train").warning(
                "%s at %d uses Caffe MobileNet-SSD's layout without batch norm, which hardly trains from "
                "scratch: add --batch-norm, or --pretrained", args.network, args.data_shape)
        return net
    config = read_config(args.finetune_prefix)
    if args.network is not None and args.network != config.network:
        raise ValueError(f"--network {args.network} but {args.finetune_prefix} is a {config.network} "
                         f"checkpoint; drop --network")
    net = finetune_model(args.finetune_prefix, args.finetune, names, data_shape=args.data_shape, ctx=ctx)
    args.network, args.data_shape = config.network, net.data_shape
    return net


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
        _validate(args, class_names)
    except UsageError as err:
        _error(err)
        return 1
    try:
        _setup_logging(args.log)
    except OSError as err:
        _error(f"cannot open the log file {args.log}: {err}")
        return 1
    serial_cpu_copies()
    # Imported here so that --help and bad flags answer without loading MXNet.
    import mxnet as mx

    from dataset.loader import DetectionDataset, make_loader
    from dataset.subset import shard
    from train.trainer import NonFiniteLossError, Trainer

    try:
        ctx = _contexts(args)
        # Local aggregation stays a name: gluon then skips the KVStore on one device.
        kv = mx.kv.create(args.kv_store) if args.kv_store.startswith("dist") else args.kv_store
        epoch = _resume_epoch(args) if args.resume is not None else None
        resume_config = _resume_config(args, epoch, class_names) if epoch is not None else None
        if resume_config is not None:
            class_names = list(resume_config.class_names)
        config = _train_config(args, epoch)
        train_reader, val_reader, names = _readers(args, class_names, config.seed)
        seed = config.seed
        if not isinstance(kv, str):
            # Each worker trains on its own part; worker 0 validates and saves.
            train_reader = shard(train_reader, kv.num_workers, kv.rank)
            val_reader = val_reader if kv.rank == 0 else None
            seed = config.seed * kv.num_workers + kv.rank  # distinct augmentation per worker
        mx.random.seed(config.seed)
        net = _build_net(args, names, ctx[0], resume_config)
        train_set = DetectionDataset(train_reader, args.data_shape, train=True, seed=seed, expand=config.expand,
                                     augment=config.augment)
        loader = make_loader(train_set, config.batch_size, shuffle=True, num_workers=args.num_workers,
                             last_batch="rollover")
        trainer = Trainer(net, loader, config, class_names=names, prefix=args.prefix, ctx=ctx, kvstore=kv,
                          set_epoch=train_set.set_epoch, val_reader=val_reader)
        trainer.train(begin_epoch=0 if epoch is not None else (args.begin_epoch or 0), resume=epoch)
    except KeyboardInterrupt:
        _error("interrupted (where training stood was saved: continue with --resume latest)")
        return 130
    except UsageError as err:
        _error(err)
        return 1
    except (FileNotFoundError, ValueError, RuntimeError, OSError, TypeError, NonFiniteLossError,
            mx.base.MXNetError) as err:
        _error(err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
