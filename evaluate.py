"""Score an SSD checkpoint, or saved detections, on a dataset: VOC07/VOC10 mAP or COCO AP.

    python evaluate.py --prefix model/ssd_300 --epoch 240 --dataset voc --data-root VOCdevkit \\
        --year 2007 --set test --batch-size 8 --save-detections dets.json --save-metrics map.json
    python evaluate.py --detections dets.json --dataset voc --data-root VOCdevkit --year 2007
    python evaluate.py --prefix model/coco --epoch 0 --dataset coco --data-root coco --set val2017
    python evaluate.py --detections results.json --dataset coco --annotations instances_val2017.json

Model mode (``--prefix``) runs the checkpoint over every image of the set
(network, input size, classes and NMS settings from ``PREFIX-config.json``;
``--nms``, ``--nms-topk``, ``--keep-topk``, ``--thresh``, ``--nms-mode``,
``--force-nms`` change the decoding). File mode (``--detections``) scores
saved detections: for COCO the standard results JSON, otherwise a JSON list of
``{"image_id", "class_name", "score", "bbox": [xmin, ymin, xmax, ymax]}`` in
VOC's 1-based pixel indices (see :mod:`evaluate.evaluation`). Errors are
reported as one line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from typing import Any, Optional, Sequence, TextIO

from common.decoding import NMS_MODES
from dataset.factory import KINDS
from tools.cli import (ArgumentParser, UsageError, log_to_stderr, number, parse_class_names, print_error,
                       serial_cpu_copies)

_PROG = "evaluate.py"
_METRICS = ("voc07", "voc10", "coco")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Score an SSD checkpoint, or saved detections, on a "
                                               "dataset (VOC07/VOC10 mAP, COCO AP).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prefix", help="checkpoint prefix: PREFIX-EPOCH.params and PREFIX-config.json")
    src.add_argument("--detections", metavar="FILE", help="score the detections saved in FILE instead "
                                                          "of running a model")
    p.add_argument("--epoch", type=number(int, 0), default=0, help="checkpoint epoch (default: 0)")
    p.add_argument("--network", default=None, help="network name (default: from the checkpoint config)")
    p.add_argument("--data-shape", type=number(int, 32), default=None,
                   help="input size (default: from the checkpoint config)")
    p.add_argument("--dataset", choices=KINDS, default="voc",
                   help="dataset format (default: voc)")
    p.add_argument("--data-root", default=None,
                   help="voc: a VOCdevkit, or a folder holding Annotations/; folder: a VOC-format "
                        "folder; coco: holds annotations/instances_SET.json and SET/; rec: holds SET.rec")
    p.add_argument("--year", default="2007", help="VOC years, comma-separated (default: 2007)")
    p.add_argument("--set", dest="image_set", default="test", help="image set (default: test)")
    p.add_argument("--annotations", default=None, metavar="FILE",
                   help="coco: the instances JSON (default: DATA_ROOT/annotations/instances_SET.json)")
    p.add_argument("--rec-path", default=None, metavar="FILE.rec",
                   help="rec: the records (default: DATA_ROOT/SET.rec), with the .idx beside them")
    p.add_argument("--class-names", default=None,
                   help="comma-separated class names, or a file with one name per line (default: the "
                        "checkpoint's; in file mode the dataset's: the names found in a folder, "
                        "VOC's 20, COCO's categories, the PREFIX.names beside the records)")
    p.add_argument("--skip-unknown", action=argparse.BooleanOptionalAction, default=False,
                   help="voc, folder: drop objects of classes not in the class names (the model's, or "
                        "--class-names) with one warning counting them (default: off, such an object "
                        "is an error)")
    p.add_argument("--batch-size", type=number(int, 1), default=8, help="images per forward (default: 8)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--cpu", action="store_true", help="run on the CPU (the default)")
    dev.add_argument("--gpus", default=None, metavar="ID",
                     help="run on this GPU (needs mxnet-cu112); of a list, the first is used")
    p.add_argument("--nms", type=number(float, 0.0, 1.0, strict=True), default=None,
                   help="NMS overlap threshold (default: the checkpoint's, normally 0.45)")
    p.add_argument("--nms-topk", type=number(int, 1), default=None,
                   help="boxes considered by NMS (default: the checkpoint's, normally 400)")
    p.add_argument("--keep-topk", type=number(int, 1), default=None,
                   help="detections kept per image (default: the checkpoint's, normally 200)")
    p.add_argument("--thresh", type=number(float, 0.0, 1.0), default=0.01,
                   help="score threshold of the detections (default: 0.01)")
    p.add_argument("--nms-mode", choices=NMS_MODES, default=None,
                   help="multibox: MXNet's MultiBoxDetection (each prior votes for its best class, "
                        "top-k over all classes); caffe: Caffe's DetectionOutput (per class above "
                        "the threshold, top-k and NMS per class, then the best keep-topk); gluoncv: "
                        "GluonCV's (per class above the threshold, top-k over all classes); mmdet: "
                        "mmdetection's (top-k per feature level, clamped sizes) (default: the "
                        "checkpoint's: multibox for models trained here, the home framework's for "
                        "converted ones)")
    p.add_argument("--force-nms", action=argparse.BooleanOptionalAction, default=None,
                   help="suppress overlapping boxes across classes (default: the checkpoint's)")
    p.add_argument("--metric", choices=_METRICS, default=None,
                   help="voc07 (11-point), voc10 (area) or coco (default: coco for --dataset coco, "
                        "else voc07)")
    p.add_argument("--overlap", type=number(float, 0.0, 1.0), default=0.5,
                   help="VOC metrics: IoU a detection needs, strictly above (default: 0.5)")
    p.add_argument("--use-difficult", action=argparse.BooleanOptionalAction, default=False,
                   help="VOC metrics: count difficult objects as ordinary ones (default: off, they "
                        "are ignored)")
    p.add_argument("--save-detections", default=None, metavar="FILE",
                   help="model mode: write the detections (the --detections format)")
    p.add_argument("--save-metrics", default=None, metavar="FILE", help="write the scores as JSON")
    p.add_argument("--plot-dir", default=None, metavar="DIR",
                   help="VOC metrics: write a precision/recall curve per class as DIR/pr_CLASS.png")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr while detecting (default: when stderr is a terminal)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging verbosity, on stderr (default: WARNING)")
    return p


def _validate(args: argparse.Namespace) -> None:
    model_mode = args.prefix is not None
    if args.metric is None:
        args.metric = "coco" if args.dataset == "coco" else "voc07"
    if not model_mode:
        for flag, value in (("--save-detections", args.save_detections), ("--network", args.network),
                            ("--data-shape", args.data_shape), ("--gpus", args.gpus),
                            ("--nms", args.nms), ("--nms-topk", args.nms_topk),
                            ("--keep-topk", args.keep_topk), ("--nms-mode", args.nms_mode),
                            ("--force-nms", args.force_nms)):
            if value is not None:
                raise UsageError(f"{flag} only applies when running a model (--prefix)")
    if args.dataset == "coco":
        if args.data_root is None and (model_mode or args.annotations is None):
            raise UsageError("--dataset coco needs --data-root" + ("" if model_mode else
                                                                   " or --annotations"))
    elif args.dataset == "rec":
        if args.rec_path is None and args.data_root is None:
            raise UsageError("--dataset rec needs --rec-path (or --data-root holding SET.rec)")
    elif args.data_root is None:
        raise UsageError(f"--dataset {args.dataset} needs --data-root")
    if args.annotations is not None and args.dataset != "coco":
        raise UsageError("--annotations only applies with --dataset coco")
    if args.rec_path is not None and args.dataset != "rec":
        raise UsageError("--rec-path only applies with --dataset rec")
    if args.skip_unknown and args.dataset not in ("voc", "folder"):
        raise UsageError("--skip-unknown only applies with --dataset voc or folder (COCO reads the "
                         "categories named and ignores the others)")
    if args.data_root is not None and not os.path.isdir(args.data_root):
        raise UsageError(f"data root not found: {args.data_root}")
    if args.plot_dir is not None:
        if args.metric == "coco":
            raise UsageError("--plot-dir needs a VOC metric (--metric voc07 or voc10)")
        if os.path.exists(args.plot_dir) and not os.path.isdir(args.plot_dir):
            raise UsageError(f"--plot-dir {args.plot_dir} exists and is not a directory")
    for flag, value in (("--save-detections", args.save_detections),
                        ("--save-metrics", args.save_metrics)):
        if value is not None and os.path.isdir(value):
            raise UsageError(f"{flag} {value} is a directory")
    if args.gpus is not None:
        try:
            gpus = [int(s) for s in args.gpus.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--gpus: expected comma-separated GPU ids, got {args.gpus!r}") from None
        if not gpus or min(gpus) < 0:
            raise UsageError(f"--gpus: expected comma-separated GPU ids >= 0, got {args.gpus!r}")
        if len(gpus) > 1:
            logging.getLogger("evaluate").warning("evaluation runs on one device: using GPU %d", gpus[0])
        args.gpu = gpus[0]
    else:
        args.gpu = None
    args.years = [y.strip() for y in args.year.split(",") if y.strip()]
    if not args.years:
        raise UsageError("--year is empty")


class ProgressBar:
    """``[#####     ] 120/4952  23.4 img/s  ETA 3m26s`` redrawn in place on ``stream``."""

    def __init__(self, stream: TextIO, width: int = 30, interval: float = 0.2) -> None:
        self.stream, self.width, self.interval = stream, width, interval
        self._last = -math.inf

    def __call__(self, done: int, total: int, seconds: float) -> None:
        now = time.perf_counter()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        rate = done / seconds if seconds > 0 else 0.0
        filled = int(self.width * done / total) if total else self.width
        eta = (total - done) / rate if rate > 0 else 0.0
        self.stream.write(f"\r[{'#' * filled:<{self.width}}] {done}/{total}  {rate:.1f} img/s  "
                          f"ETA {int(eta // 60)}m{int(eta % 60):02d}s ")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the evaluation; returns the exit status (0 ok, 1 on any error)."""
    try:
        args = build_parser().parse_args(argv)
        class_names = parse_class_names(args.class_names)
        _validate(args)
    except UsageError as err:
        _error(err)
        return 1
    log_to_stderr(args.log_level)
    serial_cpu_copies()
    try:
        return _run(args, class_names)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        _error(err)
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _run(args: argparse.Namespace, class_names: Optional[list[str]]) -> int:
    # Imported here so that --help and bad flags answer without loading MXNet.
    from dataset.factory import open_dataset
    from evaluate import evaluation as ev

    def reader_for(names: Optional[Sequence[str]]) -> Any:
        # Difficult objects and crowd regions are kept, flagged: the metric decides what they count for.
        reader = open_dataset(args.dataset, args.data_root, args.image_set, names, years=args.years,
                              keep_crowd=True, skip_unknown=args.skip_unknown, rec_path=args.rec_path,
                              annotations=args.annotations)
        print(f"dataset: {args.dataset} {args.rec_path or args.annotations or args.data_root} "
              f"({args.image_set}): {len(reader)} images, {len(reader.class_names)} classes")
        return reader

    if args.prefix is not None:
        # The data set is opened first, so that its errors come before the model loads.
        names = class_names or _config_class_names(args.prefix)
        reader = reader_for(names) if names is not None else None
        detector = _load_detector(args, class_names)
        if reader is None:
            reader = reader_for(detector.class_names)
        if len(reader) == 0:
            raise ValueError("the dataset has no images")
        show = sys.stderr.isatty() if args.progress is None else args.progress
        progress = ProgressBar(sys.stderr) if show else None
        start = time.perf_counter()
        predictions = ev.detect_reader(detector, reader, progress=progress)
        elapsed = time.perf_counter() - start
        print(f"detected {len(reader)} images in {elapsed:.2f} s ({len(reader) / elapsed:.1f} img/s), "
              f"{sum(len(p) for p in predictions)} detections")
        if args.save_detections is not None:
            n = ev.write_detections(args.save_detections, reader, predictions)
            print(f"wrote {n} detections to {args.save_detections}")
    else:
        reader = reader_for(class_names)
        predictions = ev.read_detections(args.detections, reader)
        print(f"read {sum(len(p) for p in predictions)} detections from {args.detections}")

    coco_gt = args.annotations if args.dataset == "coco" else None
    if args.dataset == "coco" and coco_gt is None:
        coco_gt = os.path.join(args.data_root, "annotations", f"instances_{args.image_set}.json")
    result = ev.score_predictions(reader, predictions, args.metric, args.use_difficult, args.overlap,
                                  coco_gt)
    _report(args, result)
    if args.plot_dir is not None:
        from evaluate.plots import plot_pr_curves

        paths = plot_pr_curves(result, args.plot_dir)
        print(f"wrote {len(paths)} precision/recall curves to {args.plot_dir}")
    if args.save_metrics is not None:
        ev.write_metrics(args.save_metrics, result)
        print(f"wrote {args.save_metrics}")
    return 0


def _config_class_names(prefix: str) -> Optional[list[str]]:
    """The class names in ``PREFIX-config.json``, or None without one (loading the model then
    says what it needs)."""
    from symbol.checkpoint import read_config

    try:
        return list(read_config(prefix).class_names)
    except FileNotFoundError:
        return None


def _load_detector(args: argparse.Namespace, class_names: Optional[list[str]]) -> Any:
    from common.devices import resolve_context
    from evaluate.detector import Detector
    from symbol.checkpoint import params_path

    start = time.perf_counter()
    ctx = resolve_context(args.gpu)
    detector = Detector.from_checkpoint(
        args.prefix, args.epoch, ctx=ctx, batch_size=args.batch_size, thresh=args.thresh,
        network=args.network, data_shape=args.data_shape, class_names=class_names,
        nms_thresh=args.nms, nms_topk=args.nms_topk, keep_topk=args.keep_topk,
        force_suppress=args.force_nms, nms_mode=args.nms_mode)
    detector.warmup()
    cfg, nms = detector.config, detector.config.nms
    print(f"model {params_path(args.prefix, args.epoch)}: {cfg.network} {cfg.data_shape}x{cfg.data_shape}, "
          f"{cfg.num_classes} classes, on {ctx}; NMS {nms.get('nms_mode', 'multibox')} "
          f"{nms['nms_thresh']:g}, top {nms['nms_topk']}, keep {nms['keep_topk']}, score > "
          f"{nms['thresh']:g}{', across classes' if nms['force_suppress'] else ''}; ready in "
          f"{time.perf_counter() - start:.2f} s")
    return detector


def _report(args: argparse.Namespace, result: Any) -> None:
    from evaluate.evaluation import format_table

    if args.metric == "coco":
        print(result.summary.rstrip())
        print(f"COCO AP {result.AP:.4f}, AP50 {result.AP50:.4f}, AP75 {result.AP75:.4f}")
        return
    print(f"\n{args.metric} AP per class (IoU > {args.overlap:g}, difficult "
          f"{'counted' if args.use_difficult else 'ignored'}):")
    print(format_table(result))


if __name__ == "__main__":
    sys.exit(main())
