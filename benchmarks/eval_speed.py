"""Evaluation speed: VOC mAP scoring of a synthetic detection set with :class:`evaluate.metrics.VOCMetric`.

    python benchmarks/eval_speed.py                                  # 5,000 images x 100 detections
    python benchmarks/eval_speed.py --images 20000 --metric voc10 --repeat 5
    python benchmarks/eval_speed.py --no-scoring --network vgg16_reduced --data-shape 300

Scoring. A seeded synthetic set stands in for a detector's output on VOC07
test: ``--images`` images, each with 1 to ``2 * --gt-per-image - 1`` ground
truth boxes (about ``--gt-per-image`` on average; 20 classes by default, 10%
difficult) and exactly ``--detections`` detections: up to four jittered
copies of each box (mostly of its class, so that true positives, duplicates
and misses occur; scores uniform in [0.2, 1]), the rest random boxes (scores
uniform in [0, 0.6]). The data
is generated before the clock starts. Timed, single-threaded NumPy: every
``VOCMetric.update`` call, one per image (the greedy matching), then
``VOCMetric.get`` (the ranking, precision/recall curves and APs). Each
``--repeat`` run starts from ``reset()``; the table gives the median and the
best. The mAP printed is that of the synthetic set, a check that matches
occur, not a model figure.

Model mode. The work of ``evaluate.py --prefix ...``: a randomly initialized
``--network`` at ``--data-shape`` (3 classes) saved as a checkpoint, loaded
back with :meth:`evaluate.detector.Detector.from_checkpoint` (MKLDNN on CPU,
``--batch-size``, score threshold 0.01, ``--nms-mode``), run with
:func:`evaluate.evaluation.detect_reader` over a generated synthetic VOC
folder of ``--model-images`` images (``--image-size`` pixels; JPEG decoding
and resizing included, as in the script), then scored with
:func:`evaluate.evaluation.score_predictions`. Random weights give the
worst case for scoring: up to 200 detections per image. The graph is built
(one warm-up batch) before the clock starts; ``--no-model`` skips the section,
``--no-scoring`` the first one.

Exit status: 0, 1 when the model section fails, 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from common.decoding import NMS_MODES
from tools.cli import ArgumentParser, UsageError, positive, print_error, serial_cpu_copies

_PROG = "eval_speed.py"
METRICS = ("voc07", "voc10")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Seconds to score a synthetic detection set "
                                               "with VOCMetric.")
    p.add_argument("--images", type=positive(int), default=5000,
                   help="images in the synthetic set (default: 5000, VOC07 test has 4952)")
    p.add_argument("--detections", type=positive(int), default=100,
                   help="detections per image (default: 100)")
    p.add_argument("--num-class", type=positive(int), default=20,
                   help="foreground classes (default: 20)")
    p.add_argument("--gt-per-image", type=positive(int), default=3,
                   help="average ground-truth boxes per image (default: 3)")
    p.add_argument("--metric", choices=METRICS, default="voc07", help="AP flavour (default: voc07)")
    p.add_argument("--repeat", type=positive(int), default=3,
                   help="timed runs, each from reset() (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic set (default: 0)")
    p.add_argument("--scoring", action=argparse.BooleanOptionalAction, default=True,
                   help="run the scoring section (default: on)")
    p.add_argument("--model", action=argparse.BooleanOptionalAction, default=True,
                   help="run the model-mode section (default: on)")
    p.add_argument("--network", default="mobilenet", help="model section: network (default: mobilenet)")
    p.add_argument("--data-shape", type=positive(int), default=300,
                   help="model section: input size (default: 300)")
    p.add_argument("--model-images", type=positive(int), default=50,
                   help="model section: synthetic images (default: 50)")
    p.add_argument("--image-size", type=positive(int), default=300,
                   help="model section: side of the synthetic images (default: 300)")
    p.add_argument("--batch-size", type=positive(int), default=8,
                   help="model section: images per forward (default: 8)")
    p.add_argument("--nms-mode", choices=NMS_MODES, default="multibox",
                   help="model section: decoding (default: multibox)")
    return p


# --------------------------------------------------------------------------- synthetic set
@dataclass(frozen=True)
class ImageRecord:
    """One image of the synthetic set, in :meth:`VOCMetric.update`'s argument order."""

    pred_boxes: np.ndarray
    pred_labels: np.ndarray
    pred_scores: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_difficult: np.ndarray


def synthetic_set(num_images: int, detections: int, num_class: int, gt_per_image: int,
                  seed: int, side: float = 500.0) -> list[ImageRecord]:
    """A seeded detection set: see the module docstring. Boxes are pixel corners."""
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(num_images):
        m = rng.randint(1, 2 * gt_per_image)
        wh = rng.uniform(20, side / 2, size=(m, 2))
        xy = rng.uniform(0, side - wh)
        gt = np.concatenate([xy, xy + wh], axis=1)
        gt_labels = rng.randint(0, num_class, size=m)
        difficult = rng.rand(m) < 0.1
        copies = np.repeat(np.arange(m), rng.randint(0, 5, size=m))[:detections]
        near = gt[copies] + rng.normal(0, 0.08, size=(len(copies), 4)) * np.tile(wh[copies], 2)
        near_labels = np.where(rng.rand(len(copies)) < 0.9, gt_labels[copies],
                               rng.randint(0, num_class, size=len(copies)))
        k = detections - len(copies)
        wh_r = rng.uniform(10, side / 2, size=(k, 2))
        xy_r = rng.uniform(0, side - wh_r)
        boxes = np.concatenate([near, np.concatenate([xy_r, xy_r + wh_r], axis=1)])
        labels = np.concatenate([near_labels, rng.randint(0, num_class, size=k)])
        scores = np.concatenate([rng.uniform(0.2, 1.0, size=len(copies)),  # a detector ranks
                                 rng.uniform(0.0, 0.6, size=k)]).astype(np.float32)  # hits higher
        out.append(ImageRecord(boxes.astype(np.float32), labels, scores, gt.astype(np.float32),
                               gt_labels, difficult))
    return out


# --------------------------------------------------------------------------- scoring speed
@dataclass
class ScoringTimes:
    update: list[float]
    get: list[float]
    mAP: float


def time_scoring(records: Sequence[ImageRecord], num_class: int, metric: str,
                 repeat: int) -> ScoringTimes:
    """Seconds of all ``update`` calls and of ``get``, ``repeat`` times."""
    from evaluate.metrics import VOCMetric

    m = VOCMetric([f"class{i}" for i in range(num_class)], metric=metric)
    times = ScoringTimes([], [], float("nan"))
    for _ in range(repeat):
        m.reset()
        start = time.perf_counter()
        for r in records:
            m.update(r.pred_boxes, r.pred_labels, r.pred_scores, r.gt_boxes, r.gt_labels,
                     r.gt_difficult)
        mid = time.perf_counter()
        result = m.get()
        end = time.perf_counter()
        times.update.append(mid - start)
        times.get.append(end - mid)
        times.mAP = result.mAP
    return times


def run_scoring(args: argparse.Namespace) -> int:
    """The scoring section: build the set, time it, print the figures."""
    started = time.perf_counter()
    records = synthetic_set(args.images, args.detections, args.num_class, args.gt_per_image,
                            args.seed)
    num_gt = sum(len(r.gt_labels) for r in records)
    print(f"synthetic set: {args.images} images x {args.detections} detections, {args.num_class} "
          f"classes, {num_gt} ground-truth boxes; generated in {time.perf_counter() - started:.1f} s")
    t = time_scoring(records, args.num_class, args.metric, args.repeat)
    total = [u + g for u, g in zip(t.update, t.get)]
    rows = [("update (all images)", t.update), ("get", t.get), ("total", total)]
    print(f"\n{args.metric} scoring, {args.repeat} runs, seconds:")
    print(f"  {'step':<20} {'median':>8} {'best':>8}")
    for name, values in rows:
        print(f"  {name:<20} {statistics.median(values):8.3f} {min(values):8.3f}")
    per_image = statistics.median(t.update) / args.images * 1e6
    print(f"\nupdate: {per_image:.0f} us per image; mAP of the synthetic set: {t.mAP:.4f}")
    return 0


# --------------------------------------------------------------------------- model mode
def run_model(args: argparse.Namespace) -> int:
    """The model section: evaluate.py's model mode on a generated set, timed by stage."""
    import tempfile

    import mxnet as mx

    from dataset.factory import open_dataset
    from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
    from evaluate.detector import Detector
    from evaluate.evaluation import detect_reader, score_predictions
    from symbol import get_model
    from symbol.checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory(prefix="eval_speed_") as tmp:
        mx.random.seed(args.seed)
        try:
            net = get_model(args.network, args.data_shape, len(SYNTHETIC_CLASSES))
        except ValueError as err:
            _error(err)
            return 1
        started = time.perf_counter()
        make_synthetic(os.path.join(tmp, "data"), num_images=args.model_images,
                       image_size=args.image_size, test_fraction=0.0, seed=args.seed)
        reader = open_dataset("folder", os.path.join(tmp, "data"), "train", SYNTHETIC_CLASSES)
        generated = time.perf_counter() - started
        prefix = os.path.join(tmp, "model", "ssd")
        save_checkpoint(net, prefix, 0, SYNTHETIC_CLASSES)
        started = time.perf_counter()
        detector = Detector.from_checkpoint(prefix, 0, batch_size=args.batch_size, thresh=0.01,
                                            nms_mode=args.nms_mode)
        detector.warmup()
        ready = time.perf_counter() - started
        print(f"\nmodel mode: {args.network} {args.data_shape}x{args.data_shape} (random weights, "
              f"backend {detector.backend}), batch {args.batch_size}, NMS {args.nms_mode}; "
              f"{len(reader)} synthetic {args.image_size}x{args.image_size} images generated in "
              f"{generated:.1f} s; model ready in {ready:.1f} s")
        started = time.perf_counter()
        predictions = detect_reader(detector, reader)
        detect = time.perf_counter() - started
        started = time.perf_counter()
        result = score_predictions(reader, predictions, "voc07")
        score = time.perf_counter() - started
    n_det = sum(len(p) for p in predictions)
    rows = [("detect (read, resize, forward, decode)", detect),
            (f"score (voc07, {n_det} detections)", score), ("total", detect + score)]
    for name, seconds in rows:
        rate = f"{len(reader) / seconds:8.1f} img/s" if name != rows[1][0] else ""
        print(f"  {name:<40} {seconds:7.2f} s {rate}")
    print(f"  mAP {result.mAP:.4f} (random weights)")
    return 0


# --------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {load}")
    status = run_scoring(args) if args.scoring else 0
    if args.model:
        status = max(status, run_model(args))
    return status


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit status (0 ok, 2 bad usage)."""
    try:
        args = build_parser().parse_args(argv)
        serial_cpu_copies()
        return run(args)
    except UsageError as err:
        _error(err)
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
