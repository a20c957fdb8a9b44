"""Caffe SSD300 in OpenCV's dnn module against the same model converted to this project, same run.

    python benchmarks/caffe_vs_mxnet.py                       # random weights, the shared fixture prototxt
    python benchmarks/caffe_vs_mxnet.py --prototxt deploy.prototxt --caffemodel VGG_SSD_300x300.caffemodel
    python benchmarks/caffe_vs_mxnet.py --threads 2 --min-time 20

OpenCV (``cv2.dnn.readNetFromCaffe``, its own CPU backend) runs Caffe's layers,
DetectionOutput included; the converted model runs hybridized (static memory,
MKLDNN backend, as ``demo.py`` does) with the checkpoint's Caffe-exact decoding.
Both are fp32 at batch 1 and timed from the same resized 300x300 image to the
detections (OpenCV: ``blobFromImage``, ``setInput``, ``forward``; ours: the
NDArray, the forward, the copy back), taking turns so that both see the same
machine load. Without ``--caffemodel`` the weights are random (written with the
project's schema, heads scaled so that scores spread out). Before timing, the
two models' detections scoring at least 0.3 are compared.

Prints img/s (median time per image) of each and the ratio; exit status 1 when
the detections differ by more than ``--tolerance``, 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from tools.benchmarking import set_omp_threads
from tools.cli import ArgumentParser, UsageError, non_negative_int, positive, print_error

_PROG = "caffe_vs_mxnet.py"
_DEFAULT_PROTOTXT = (Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "caffe"
                     / "VGG_VOC0712_SSD_300x300_deploy.prototxt")
_DEFAULT_IMAGE = _DEFAULT_PROTOTXT.parents[1] / "images" / "000001.jpg"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="img/s of OpenCV dnn running a Caffe SSD and of the same "
                                               "model converted to this project.")
    p.add_argument("--prototxt", default=str(_DEFAULT_PROTOTXT),
                   help="Caffe deploy prototxt (default: the shared fixtures' VGG16 SSD300)")
    p.add_argument("--caffemodel", default=None, help="its weights (default: random weights)")
    p.add_argument("--image", default=str(_DEFAULT_IMAGE), help="the image both run on")
    p.add_argument("--threads", type=positive(int), default=None,
                   help="threads of both (OMP_NUM_THREADS and cv2.setNumThreads; default: the environment's "
                        "OMP_NUM_THREADS, else all cores)")
    p.add_argument("--backend", choices=("none", "MKLDNN"), default="MKLDNN",
                   help="graph backend of the converted model (default: MKLDNN)")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls of each (default: 2)")
    p.add_argument("--min-time", type=positive(float), default=10.0,
                   help="seconds of timed calls of each, at least (default: 10)")
    p.add_argument("--rounds", type=positive(int), default=5, help="interleaving rounds (default: 5)")
    p.add_argument("--tolerance", type=positive(float), default=2e-3,
                   help="largest allowed score / box difference of the detections (default: 2e-3)")
    return p


def time_interleaved(runners: Sequence[Callable[[], None]], warmup: int, min_time: float,
                     rounds: int) -> list[list[float]]:
    """Seconds per call of each runner, taking turns in ``rounds`` rounds (see benchmarks/inference.py)."""
    for run in runners:
        for _ in range(warmup):
            run()
    samples: list[list[float]] = [[] for _ in runners]
    for _ in range(rounds):
        for run, times in zip(runners, samples):
            spent = 0.0
            while spent < min_time / rounds or not times:
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
                spent += times[-1]
    return samples


def run(args: argparse.Namespace) -> int:
    import cv2
    import mxnet as mx
    import numpy as np

    from symbol.checkpoint import load_checkpoint, save_checkpoint
    from symbol.presets import find_preset
    from tools.caffe_converter import compare, reader, writer
    from tools.caffe_converter.converter import convert_ssd, detect_network

    threads = int(os.environ["OMP_NUM_THREADS"])
    cv2.setNumThreads(threads)
    net_def = reader.read_prototxt(args.prototxt)
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise UsageError(f"cannot read image {args.image}")
    with tempfile.TemporaryDirectory() as tmp:
        caffemodel = args.caffemodel
        if caffemodel is None:
            blobs = writer.random_blobs(net_def, 0)
            conversion_side = net_def.input_shape[2]
            resized = cv2.resize(bgr, (conversion_side, conversion_side), interpolation=cv2.INTER_LINEAR)
            pre = find_preset(detect_network(net_def), conversion_side).preprocess
            writer.spread_head_scores(args.prototxt, net_def, blobs, resized, pre.mean, 1.0 / pre.std[0],
                                      workdir=tmp)
            caffemodel = str(writer.write_caffemodel(Path(tmp) / "random.caffemodel", net_def, blobs))
        conversion = convert_ssd(net_def, reader.read_caffemodel(caffemodel))
        prefix = Path(tmp) / "converted"
        save_checkpoint(conversion.net, prefix, 0, conversion.class_names)
        net, config = load_checkpoint(prefix, 0)
        side, pre = config.data_shape, config.preprocess
        resized = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_LINEAR)

        ocv = cv2.dnn.readNetFromCaffe(args.prototxt, caffemodel)
        ocv.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        ocv.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        rgb = np.ascontiguousarray(resized[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
        net.hybridize(backend=None if args.backend == "none" else args.backend, static_alloc=True,
                      static_shape=True)

        def caffe() -> np.ndarray:
            ocv.setInput(cv2.dnn.blobFromImage(resized, 1.0 / pre.std[0], (side, side), tuple(pre.mean),
                                               swapRB=False, crop=False))
            return ocv.forward()

        def ours() -> np.ndarray:
            return net(mx.nd.array(rgb)).asnumpy()

        # Same detections first.
        ref = caffe().reshape(-1, 7)
        ref = ref[ref[:, 2] > 0]
        ref = np.concatenate([ref[:, 1:2] - 1, ref[:, 2:3], np.clip(ref[:, 3:7], 0, 1)], axis=1)
        mine = ours()[0]
        pairs, unmatched = compare.match_detections(ref, mine[mine[:, 0] >= 0], 0.3)
        diff = max((float(np.abs(a[1:] - b[1:]).max()) for a, b in pairs), default=0.0)
        print(f"detections >= 0.3: {len(pairs)} matched, {unmatched} unmatched, max difference {diff:.2g}",
              file=sys.stderr)
        if unmatched or diff > args.tolerance:
            print_error(_PROG, f"the converted model's detections differ from OpenCV's ({unmatched} unmatched, "
                               f"max difference {diff:.3g})")
            return 1

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        samples = time_interleaved([caffe, ours], args.warmup, args.min_time, args.rounds)
    med = [statistics.median(s) for s in samples]
    weights = "random weights" if args.caffemodel is None else Path(args.caffemodel).name
    print(f"# {Path(args.prototxt).name} ({weights}), {side}x{side}, fp32, batch 1, {threads} threads, "
          f"OpenCV {cv2.__version__}, MXNet {mx.__version__} ({args.backend}), load average {load:.2f}")
    print("| runtime | ms/img | img/s | vs OpenCV |")
    print("|---|---|---|---|")
    for label, m in (("OpenCV dnn (Caffe model)", med[0]), ("converted, this project", med[1])):
        print(f"| {label} | {m * 1e3:.1f} | {1.0 / m:.2f} | {med[0] / m:.2f}x |")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        for path in (args.prototxt, args.caffemodel, args.image):
            if path is not None and not os.path.isfile(path):
                raise UsageError(f"no such file: {path}")
        set_omp_threads(args.threads)
    except UsageError as err:
        print_error(_PROG, err)
        return 2
    try:
        return run(args)
    except (UsageError, ValueError, OSError) as err:
        print_error(_PROG, err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
