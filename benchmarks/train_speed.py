"""Training speed of a preset SSD on the CPU, next to GluonCV's SSD300 training step, and
whether the data pipeline keeps up with it.

    python benchmarks/train_speed.py                                  # vgg16_reduced:300, batch 8
    python benchmarks/train_speed.py --steps 10 --warmup 2 --threads 16
    python benchmarks/train_speed.py --networks mobilenet:300 --no-peer --workers 4 --images 128

Three measurements, in this order:

1. Data pipeline. A synthetic VOC dataset (:func:`dataset.synthetic.make_synthetic`,
   ``--images`` images split over 300, 400 and 500 px sides) is written to a
   temporary folder and read by ``DetectionDataset(train=True)`` (photometric
   distortion, expand, crop, resize, flip) through :func:`dataset.loader.make_loader`
   with ``--workers`` processes and, for reference, with 0. Two epochs are
   timed after the loader is built (the worker pool starts with the loader).
   It runs first, while the process is still small: forked workers count the
   parent's pages in their resident size.
2. Training step. Each network of ``--networks`` (20 classes, random
   weights) runs :meth:`train.trainer.Trainer.run_step`, the step of
   ``train.py``: forward, :class:`train.targets.SSDTargetGenerator`
   (``MultiBoxTarget`` with hard negative mining),
   :class:`train.loss.SSDMultiBoxLoss`, backward, the loss read back, SGD
   step (lr 1e-5, momentum 0.9, wd 5e-4: random weights on random pixels
   diverge at 0.001; Caffe's bias settings, as train.py's default); network
   (static memory), targets and loss hybridized, as the trainer does. The peer is
   GluonCV's ``ssd_300_vgg16_atrous_voc`` (random weights) trained as its
   ``train_ssd.py`` does, except that its targets, which GluonCV computes in
   loader workers, are computed in the step as ours are: net hybridized with
   ``static_alloc``/``static_shape``, ``gluoncv.model_zoo.ssd.target.SSDTargetGenerator``
   (no mining there: GluonCV mines in the loss), ``gluoncv.loss.SSDMultiBoxLoss``,
   backward, SGD with the same settings. Inputs are random pixels (the peer's
   ImageNet-normalized) and 1 to 4 random boxes per image, the same for both.
   After ``--warmup`` untimed steps each, the models take turns: ``--rounds``
   rounds of ``ceil(--steps / --rounds)`` steps each. Every step ends with
   ``mx.nd.waitall()``. A row reports the median step.
3. Peak resident set size of this process and of its (finished) children,
   the loader workers, from ``getrusage``.

The pipeline-to-training ratio is the pipeline's img/s with ``--workers`` over
the first network's training img/s; the target is at least 3x, so that the
model, not the loader, limits training. Measured with the machine otherwise
idle the loader has every core to itself; in real training its workers share
the cores with the model, so the ratio is an upper bound.

``--threads`` (or ``OMP_NUM_THREADS``) sets the OpenMP threads; the default is
all cores (see benchmarks/inference.py). Use an idle machine for figures to
quote; the header prints the load average at the start and the end.

Rows go to stderr as they are measured, the tables to stdout at the end. Exit
status: 0, 1 when a network failed to build or train or the pipeline failed
(its row says so), 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from tools.benchmarking import parse_networks, set_omp_threads
from tools.cli import ArgumentParser, UsageError, non_negative_int, positive, print_error

_PROG = "train_speed.py"
PEER = "ssd_300_vgg16_atrous_voc"
PEER_SHAPE = 300
NUM_CLASSES = 20
MAX_BOXES = 4  # boxes per synthetic image and label padding width
TARGET_RATIO = 3.0
# A small rate: random weights on random pixels diverge within ten steps at 0.001; the rate
# does not change the work of a step.
SGD = {"learning_rate": 1e-5, "momentum": 0.9, "wd": 0.0005}
_IMAGE_SIDES = (300, 400, 500)
_PIPELINE_EPOCHS = 2
_PEER_MEAN = (0.485, 0.456, 0.406)
_PEER_STD = (0.229, 0.224, 0.225)






def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Training img/s of a preset SSD on the CPU next to GluonCV's "
                                        f"{PEER}, and the data pipeline's img/s beside it.")
    p.add_argument("--networks", default="vgg16_reduced:300",
                   help="comma-separated NAME or NAME:SIZE (default: vgg16_reduced:300); the "
                        "pipeline ratio refers to the first")
    p.add_argument("--batch-size", type=positive(int), default=8, help="images per step (default: 8)")
    p.add_argument("--steps", type=positive(int), default=6,
                   help="timed training steps per model, at least (default: 6)")
    p.add_argument("--warmup", type=non_negative_int, default=1,
                   help="untimed training steps per model first, after the graph is built (default: 1)")
    p.add_argument("--rounds", type=positive(int), default=3,
                   help="interleaving rounds of the timed steps (default: 3)")
    p.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                   help=f"time GluonCV's {PEER} training step beside each network (default: on)")
    p.add_argument("--workers", type=non_negative_int, default=2,
                   help="data loader worker processes (default: 2); 0 is always timed for reference")
    p.add_argument("--images", type=positive(int), default=64,
                   help="synthetic images of the pipeline test (default: 64)")
    p.add_argument("--threads", type=positive(int), default=None,
                   help="OpenMP threads (sets OMP_NUM_THREADS before MXNet loads; default: the "
                        "environment's, else all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, inputs and images (default: 0)")
    return p




def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Aligned columns; the last column (a note) is left ragged."""
    cells = [list(header)] + [list(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header) - 1)]
    lines = []
    for c in cells:
        parts = [c[i].rjust(w) if i in right else c[i].ljust(w) for i, w in enumerate(widths)]
        lines.append("  ".join(parts + [c[-1]]).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- data pipeline
@dataclass
class PipelineRow:
    workers: int
    images: int = 0
    seconds: Optional[float] = None
    note: str = ""

    @property
    def img_s(self) -> Optional[float]:
        return self.images / self.seconds if self.seconds else None

    def cells(self) -> list[str]:
        if self.img_s is None:
            return [str(self.workers), "-", "-", "-", self.note]
        return [str(self.workers), str(self.images), f"{self.seconds:.2f}", f"{self.img_s:.1f}", self.note]


_PIPELINE_HEADER = ["workers", "images", "seconds", "img/s", "note"]


def make_dataset(root: str, num_images: int, size: int, seed: int):
    """A training-mode DetectionDataset over synthetic VOC folders of 300, 400 and 500 px images."""
    from dataset.loader import DetectionDataset
    from dataset.factory import open_dataset
    from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic

    annotations = []
    sides = _IMAGE_SIDES[:num_images]
    for k, side in enumerate(sides):
        count = num_images // len(sides) + (1 if k < num_images % len(sides) else 0)
        folder = os.path.join(root, f"synthetic{side}")
        make_synthetic(folder, num_images=count, image_size=side, test_fraction=0.0, seed=seed + k)
        annotations += list(open_dataset("folder", folder, class_names=SYNTHETIC_CLASSES))
    return DetectionDataset(annotations, size, train=True, seed=seed)


def time_pipeline(dataset, batch_size: int, workers: int) -> PipelineRow:
    """Seconds to draw ``_PIPELINE_EPOCHS`` augmented epochs, the loader already built."""
    from dataset.loader import make_loader

    row = PipelineRow(workers)
    loader = make_loader(dataset, batch_size, shuffle=True, num_workers=workers, last_batch="keep")
    try:
        start = time.perf_counter()
        for epoch in range(_PIPELINE_EPOCHS):
            dataset.set_epoch(epoch)
            for data, _ in loader:
                row.images += data.shape[0]
        row.seconds = time.perf_counter() - start
    finally:
        del loader  # terminates the worker pool, so that getrusage counts the workers
    return row


# --------------------------------------------------------------------------- training steps
def synthetic_batch(seed: int, batch: int, side: int):
    """Random pixels ``(B, 3, S, S)`` in 0..255 and labels ``(B, MAX_BOXES, 6)``: 1 to
    MAX_BOXES random boxes per image, padded with -1 rows at the end."""
    import numpy as np

    rng = np.random.RandomState(seed)
    pixels = rng.uniform(0, 255, (batch, 3, side, side)).astype("float32")
    labels = np.full((batch, MAX_BOXES, 6), -1, dtype="float32")
    for i in range(batch):
        k = rng.randint(1, MAX_BOXES + 1)
        wh = rng.uniform(0.1, 0.6, (k, 2))
        xy = rng.uniform(0, 1, (k, 2)) * (1 - wh)
        labels[i, :k, 0] = rng.randint(0, NUM_CLASSES, k)
        labels[i, :k, 1:3] = xy
        labels[i, :k, 3:5] = xy + wh
        labels[i, :k, 5] = 0
    return pixels, labels


@dataclass
class StepRow:
    label: str
    data_shape: int
    batch: int
    order: int = 0
    times: list[float] = field(default_factory=list)
    ratio: Optional[float] = None
    note: str = ""

    @property
    def seconds(self) -> Optional[float]:
        return statistics.median(self.times) if self.times else None

    @property
    def img_s(self) -> Optional[float]:
        return self.batch / self.seconds if self.seconds else None

    def cells(self) -> list[str]:
        s = self.seconds
        if s is None:
            return [self.label, str(self.data_shape), str(self.batch), "-", "-", "-", "-", self.note]
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}x"
        return [self.label, str(self.data_shape), str(self.batch), f"{s * 1e3:.0f}", f"{self.img_s:.2f}",
                str(len(self.times)), ratio, self.note]


_STEP_HEADER = ["network", "size", "batch", "ms/step", "img/s", "steps", "vs GluonCV", "note"]


def build_our_step(name: str, data_shape: int, batch: int, seed: int) -> Callable[[], float]:
    """One training step of our network: train.py's own (Trainer.run_step); returns the loss."""
    import mxnet as mx
    import numpy as np

    from symbol import get_model
    from train.config import TrainConfig
    from train.trainer import Trainer

    mx.random.seed(seed)
    net = get_model(name, data_shape, NUM_CLASSES)
    pixels, labels = synthetic_batch(seed, batch, data_shape)
    x, y = mx.nd.array(pixels), mx.nd.array(labels)
    config = TrainConfig(batch_size=batch, lr=SGD["learning_rate"], momentum=SGD["momentum"], wd=SGD["wd"],
                         seed=seed)
    trainer = Trainer(net, [(x, y)], config, class_names=[f"c{i}" for i in range(NUM_CLASSES)],
                      prefix=os.devnull, hooks=[])  # no hooks: nothing logged or saved
    trainer.prepare()

    def step() -> float:
        trainer.run_step(x, y)  # reads the loss back
        mx.nd.waitall()
        loss = float(trainer.last_losses[0])
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss}")
        return loss

    return step


def build_peer_step(batch: int, seed: int) -> Callable[[], float]:
    """One training step of GluonCV's SSD300, as its train_ssd.py does it (targets in the step)."""
    import mxnet as mx
    import numpy as np
    from mxnet import autograd, gluon

    try:
        from gluoncv import model_zoo
        from gluoncv.loss import SSDMultiBoxLoss as PeerLoss
        from gluoncv.model_zoo.ssd.target import SSDTargetGenerator as PeerTargets
    except ImportError as err:
        raise RuntimeError(f"the peer needs gluoncv ({err}); install it or pass --no-peer") from None
    mx.random.seed(seed)
    net = model_zoo.get_model(PEER, pretrained=False, pretrained_base=False)
    net.initialize()
    net.hybridize(static_alloc=True, static_shape=True)
    targets = PeerTargets(negative_mining_ratio=-1)  # train_ssd.py: no mining here, the loss mines
    loss_fn = PeerLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", dict(SGD))
    pixels, labels = synthetic_batch(seed, batch, PEER_SHAPE)
    mean = np.array(_PEER_MEAN, dtype="float32").reshape(1, 3, 1, 1)
    std = np.array(_PEER_STD, dtype="float32").reshape(1, 3, 1, 1)
    x = mx.nd.array((pixels / 255.0 - mean) / std)
    gt_boxes, gt_ids = mx.nd.array(labels[:, :, 1:5]), mx.nd.array(labels[:, :, 0:1])

    def step() -> float:
        with autograd.record():
            cls_preds, box_preds, anchors = net(x)
            with autograd.pause():
                cls_t, box_t, _ = targets(anchors, None, gt_boxes, gt_ids)
            sum_loss, _, _ = loss_fn(cls_preds, box_preds, cls_t, box_t)
            autograd.backward(sum_loss)
        loss = float(sum(part.sum().asscalar() for part in sum_loss))
        trainer.step(1)
        mx.nd.waitall()
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss}")
        return loss

    return step


def time_in_turns(steps: Sequence[Callable[[], float]], warmup: int, total: int,
                  rounds: int) -> list[list[float]]:
    """Seconds per step of each model, the models taking turns.

    Each does ``warmup`` untimed steps, then in each of ``rounds`` rounds every
    model does ``ceil(total / rounds)`` timed steps back to back.
    """
    for step in steps:
        for _ in range(warmup):
            step()
    chunk = math.ceil(total / rounds)
    samples: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for step, times in zip(steps, samples):
            for _ in range(chunk):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
    return samples


# --------------------------------------------------------------------------- run
def _peak_rss_mib() -> tuple[float, float]:
    """Peak resident set size (MiB) of this process and of its largest waited-for child."""
    to_mib = 1 / 1024 if sys.platform != "darwin" else 1 / 2 ** 20  # ru_maxrss: KiB on Linux
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mib,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mib)


def _progress(cells: Sequence[str]) -> None:
    print("  " + "  ".join(c for c in cells if c), file=sys.stderr, flush=True)


def run(args: argparse.Namespace, networks: list[tuple[str, int]]) -> int:
    import mxnet as mx

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"mxnet {mx.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', '(unset)')}, load average {load}")
    print(f"training: batch {args.batch_size}, {NUM_CLASSES} classes, random weights and inputs, 1-{MAX_BOXES} "
          f"boxes per image; median of >= {args.steps} steps in {args.rounds} rounds after {args.warmup} "
          f"warm-up; peer: " + (f"GluonCV {PEER}" if args.peer else "none"), flush=True)
    started = time.perf_counter()
    failed = False

    # 1. the data pipeline, first: forked workers would count a large parent's pages
    first_size = networks[0][1]
    pipeline: list[PipelineRow] = []
    with tempfile.TemporaryDirectory(prefix="ssd-train-speed-") as root:
        try:
            dataset = make_dataset(root, args.images, first_size, args.seed)
        except Exception as err:
            pipeline = [PipelineRow(w, note=f"dataset failed: {_one_line(err)}")
                        for w in dict.fromkeys([args.workers, 0])]
            failed = True
        else:
            print(f"pipeline: {len(dataset)} synthetic images of {'/'.join(map(str, _IMAGE_SIDES))} px, "
                  f"full augmentation to {first_size}, batch {args.batch_size}, {_PIPELINE_EPOCHS} epochs",
                  flush=True)
            for workers in dict.fromkeys([args.workers, 0]):
                try:
                    row = time_pipeline(dataset, args.batch_size, workers)
                except Exception as err:  # a broken loader is reported, the training still timed
                    row = PipelineRow(workers, note=f"failed: {_one_line(err)}")
                    failed = True
                pipeline.append(row)
                _progress(["pipeline"] + row.cells())

    # 2. training steps, ours and the peer's in turns
    rows: list[StepRow] = []
    peer_step = None
    peer_row = StepRow(f"gluoncv {PEER}", PEER_SHAPE, args.batch_size, len(networks))
    if args.peer:
        try:
            peer_step = build_peer_step(args.batch_size, args.seed)
        except Exception as err:
            peer_row.note = f"build failed: {_one_line(err)}"
            failed = True
    for order, (name, shape) in enumerate(networks):
        row = StepRow(name, shape, args.batch_size, order)
        rows.append(row)
        try:
            step = build_our_step(name, shape, args.batch_size, args.seed)
            runners = [step] + ([peer_step] if peer_step is not None else [])
            samples = time_in_turns(runners, args.warmup, args.steps, args.rounds)
        except Exception as err:  # out of memory, an operator error, a diverging loss: report, go on
            row.note = f"failed: {_one_line(err)}"
            failed = True
            _progress(row.cells())
            continue
        finally:
            step = None
        row.times = samples[0]
        if peer_step is not None:
            peer_row.times += samples[1]
            row.ratio = statistics.median(samples[1]) / row.seconds  # same batch: the img/s ratio
        _progress(row.cells())
    if args.peer:
        if peer_row.times:
            peer_row.ratio = 1.0
        rows.append(peer_row)

    # 3. report
    print("\nTraining step (forward, targets, loss, backward, SGD)")
    print(_table(_STEP_HEADER, [r.cells() for r in rows], {1, 2, 3, 4, 5, 6}))
    print("\nData pipeline (DetectionDataset train=True, make_loader)")
    print(_table(_PIPELINE_HEADER, [r.cells() for r in pipeline], {0, 1, 2, 3}))
    train_speed = rows[0].img_s
    loader_speed = pipeline[0].img_s if pipeline else None
    if train_speed and loader_speed:
        ratio = loader_speed / train_speed
        verdict = "holds" if ratio >= TARGET_RATIO else "does NOT hold"
        print(f"\npipeline / training: {loader_speed:.1f} / {train_speed:.2f} img/s = {ratio:.1f}x with "
              f"{pipeline[0].workers} workers (target >= {TARGET_RATIO:g}x: {verdict})")
    else:
        print("\npipeline / training: not measured (see the failed rows)")
    self_mib, child_mib = _peak_rss_mib()
    print(f"peak RSS: this process {self_mib:.0f} MiB, largest loader worker {child_mib:.0f} MiB")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{time.perf_counter() - started:.0f} s; load average now {load}")
    return 1 if failed else 0


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit status (0 ok, 1 something failed, 2 bad usage)."""
    try:
        args = build_parser().parse_args(argv)
        set_omp_threads(args.threads)
        networks = parse_networks(args.networks, "first")
        return run(args, networks)
    except UsageError as err:
        _error(err)
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
