"""Learning check: the quick recipe on a fresh synthetic set, scored with VOC07 mAP.

    python benchmarks/learn_synthetic.py                       # target: mAP >= 0.85 within 20 minutes
    python benchmarks/learn_synthetic.py --work-dir /tmp/syn --keep --seed 7

Three steps, each timed, all on this machine's CPU:

1. ``tools.make_synthetic``: ``--num-images`` images of ``--image-size``
   pixels (80% train, 20% test), seeded by ``--seed``;
2. ``train.py`` with :data:`RECIPE` (MobileNet-0.25 SSD300 with batch norm,
   from scratch; colour and flip augmentation only, since crops that change
   the aspect ratio turn circles into the distractor ellipses; SGD with
   warm-up and two steps; the recipe of the embedded demo model, see the
   README), in a subprocess, exactly as a user runs it;
3. the last epoch's checkpoint scored on the test split with
   :func:`evaluate.evaluation.evaluate_detector` (VOC07 11-point mAP, IoU >
   0.5, the model's own decoding: threshold 0.01, NMS 0.45).

It prints the per-class APs, the mAP, and the minutes of each step, then
whether the target (``--target-map`` within ``--target-minutes``, data,
training and scoring together) was met. Exit status: 0 when it was, 1 when
not or when a step failed, 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from tools.benchmarking import set_omp_threads
from tools.cli import ArgumentParser, UsageError, positive, print_error

_PROG = "learn_synthetic.py"
REPO = Path(__file__).resolve().parents[1]

#: train.py flags of the quick recipe (add --data-root, --prefix).
RECIPE = ("--network", "mobilenet", "--multiplier", "0.25", "--batch-norm", "--data-shape", "300",
          "--augment", "photometric", "--dataset", "folder", "--train-set", "train", "--val-set", "test",
          "--val-interval", "10", "--batch-size", "32", "--lr", "0.03", "--warmup-epochs", "1",
          "--lr-steps", "28,35", "--end-epoch", "40", "--num-workers", "2", "--checkpoint-interval", "10",
          "--frequent", "0", "--cpu", "--seed", "0")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Train the quick recipe on a fresh synthetic set "
                                               "and print its VOC07 mAP and the minutes taken.")
    p.add_argument("--work-dir", default=None, help="where the data and checkpoints go (default: a "
                                                   "temporary folder, deleted unless --keep)")
    p.add_argument("--keep", action=argparse.BooleanOptionalAction, default=False,
                   help="keep the work folder (default: off)")
    p.add_argument("--num-images", type=positive(int), default=1200, help="synthetic images (default: 1200)")
    p.add_argument("--image-size", type=positive(int), default=300, help="their side (default: 300)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic set (default: 1)")
    p.add_argument("--threads", type=positive(int), default=None,
                   help="OMP_NUM_THREADS (default: the environment's, else all cores)")
    p.add_argument("--target-map", type=float, default=0.85, help="target VOC07 mAP (default: 0.85)")
    p.add_argument("--target-minutes", type=float, default=20.0, help="time budget (default: 20)")
    return p


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def run(args: argparse.Namespace, work: Path) -> int:
    from dataset.factory import open_dataset
    from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
    from evaluate.detector import Detector
    from evaluate.evaluation import evaluate_detector, format_table

    data, prefix = work / "synthetic", work / "model" / "ssd"
    tic = time.perf_counter()
    summary = make_synthetic(data, num_images=args.num_images, image_size=args.image_size, seed=args.seed,
                             force=True)
    t_data = time.perf_counter() - tic
    print(f"data: {summary['train']} train / {summary['test']} test images, {summary['objects']} objects, "
          f"{_minutes(t_data)}", flush=True)

    command = [sys.executable, str(REPO / "train.py"), *RECIPE, "--data-root", str(data),
               "--prefix", str(prefix)]
    print("train:", " ".join(command[1:]), flush=True)
    tic = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its log lines as they come
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1, env=env) as proc:
        tail: list[str] = []
        for line in proc.stdout:  # type: ignore[union-attr]
            tail = (tail + [line.rstrip()])[-5:]
            if "Train-loss" in line or "Validation" in line:  # one line per epoch
                print(line.rstrip(), flush=True)
    t_train = time.perf_counter() - tic
    if proc.returncode != 0:
        print_error(_PROG, f"train.py failed ({proc.returncode}): {' | '.join(tail)}")
        return 1
    print(f"training: {_minutes(t_train)}", flush=True)

    tic = time.perf_counter()
    epoch = int(RECIPE[RECIPE.index("--end-epoch") + 1])
    detector = Detector.from_checkpoint(prefix, epoch, batch_size=16)
    result = evaluate_detector(detector, open_dataset("folder", data, "test", SYNTHETIC_CLASSES), "voc07")
    t_eval = time.perf_counter() - tic
    total = t_data + t_train + t_eval
    print(format_table(result))
    print(f"VOC07 mAP {result.mAP:.4f} on {summary['test']} test images; minutes: data "
          f"{t_data / 60:.1f}, training {t_train / 60:.1f}, scoring {t_eval / 60:.1f}, total {total / 60:.1f} "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {os.cpu_count()} cores)")
    met = result.mAP >= args.target_map and total <= 60 * args.target_minutes
    print(f"target (mAP >= {args.target_map} within {args.target_minutes:g} min): "
          f"{'met' if met else 'NOT met'}")
    return 0 if met else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        set_omp_threads(args.threads)
    except UsageError as err:
        print_error(_PROG, err)
        return 2
    if args.work_dir is not None:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        return run(args, work)
    work = Path(tempfile.mkdtemp(prefix="learn_synthetic_"))
    try:
        return run(args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
