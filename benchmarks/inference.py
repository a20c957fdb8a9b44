"""Inference speed of every preset SSD on the CPU, in float32, INT8, bfloat16 and ONNX Runtime, next to
GluonCV's SSD300 (float32 and INT8) and OpenCV dnn in the same run.

    python benchmarks/inference.py                                  # all presets, batch 1 and 8
    python benchmarks/inference.py --networks vgg16_reduced:300 --batch-sizes 1 --rounds 30
    python benchmarks/inference.py --networks vgg16_reduced:300,mobilenet --precisions fp32,int8
    python benchmarks/inference.py --backend none --peer-backend none,MKLDNN --precisions fp32
    python benchmarks/inference.py --no-peer --no-peer-int8 --no-opencv --min-time 5

Every network of ``symbol.presets.PRESETS`` (20 classes, random weights) is
hybridized with ``static_alloc`` and ``static_shape`` and timed on a full
forward pass: in-graph preprocessing, backbone, heads, decoding and NMS, up to
the detections being ready. ``--precisions`` (default ``fp32,int8,bf16,onnx``)
times each network in float32, exported to ONNX (:mod:`symbol.onnx_export`, the
whole detector) and run by ONNX Runtime on as many threads (``onnx``), and as
:mod:`symbol.quantization` converts it:
INT8 calibrated (``--calib-mode``) on ``--num-calib`` images of ``--calib-dir``
(default: the bundled synthetic scenes; the values of random weights make no
difference to the speed) and bfloat16 (skipped on CPUs without bfloat16
instructions). The peers run interleaved with every network, so that all see
the same machine load:

- GluonCV's ``ssd_300_vgg16_atrous_voc`` (random weights, hybridized the same
  way; ``--peer``), and the same network quantized by the same MXNet API with
  GluonCV's own recipe (``--peer-int8``: ``quantize_net`` with
  ``quantized_dtype='auto'``, the layers whose names contain ``flatten`` or
  ``concat`` excluded, as GluonCV's ``eval_ssd.py --calibration`` does,
  naive calibration on the same images);
- OpenCV dnn (``--opencv``, beside ``vgg16_reduced`` 300 only) running Caffe's
  own VGG16 SSD300 deploy file (the shared fixtures), the same Caffe layout as
  ``vgg16_reduced`` 300, in float32 with random weights whose heads are scaled
  so that only some priors beat the background, as ``caffe_vs_mxnet.py`` does.

The ratio columns are img/s over the img/s of: the same network in float32
(``vs fp32``), GluonCV in float32 (``vs GluonCV``, the first
``--peer-backend``) and GluonCV in INT8 (``vs GluonCV int8``), each from the
calls timed beside that row.

With ``--backend MKLDNN`` (the default) the graphs are hybridized with
``backend='MKLDNN'``: MXNet's subgraph pass fuses conv + bias + BN + ReLU. (The
``MXNET_SUBGRAPH_BACKEND`` variable does not reach Gluon's ``hybridize`` in
MXNet 1.9.1; the flag is the way to get the fusion.) Before timing, each
network's detections are compared with those of the plain hybridized graph on
the same input; a difference above ``--tolerance`` fails that row.

Timing: ``--warmup`` calls first (graph build, weight reorders), then
``--rounds`` rounds; in each round every model runs back to back for at least
``--min-time / --rounds`` seconds (at least one call). A row reports the median
of its calls. Use an otherwise idle machine for figures to quote; the header
prints the load average at the start and the end. ``--threads`` (or
``OMP_NUM_THREADS``) sets the OpenMP threads; the default, all cores, is the
fastest on an idle machine.

Rows are printed on stderr as they are measured, the table on stdout at the
end. The INT8 and bfloat16 rows note how far their ten best detection scores are
from float32's on the first calibration image (random weights: a sanity
check, not an accuracy figure; ``benchmarks/quantization_accuracy.py``
measures accuracy).
Exit status: 0, 1 when a network failed to build or run or its backend output
differed (its row says so), 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from tools.benchmarking import parse_networks, set_omp_threads
from tools.cli import ArgumentParser, UsageError, non_negative_int, positive, print_error

_PROG = "inference.py"
BACKENDS = ("none", "MKLDNN")
PRECISIONS = ("fp32", "int8", "bf16", "onnx")
PEER = "ssd_300_vgg16_atrous_voc"
PEER_SHAPE = 300
NUM_CLASSES = 20
# What the peer expects: ImageNet-normalized RGB (ours take 0..255 pixels).
_PEER_MEAN = (0.485, 0.456, 0.406)
_PEER_STD = (0.229, 0.224, 0.225)
#: GluonCV's quantization recipe (scripts/detection/ssd/eval_ssd.py --calibration).
_PEER_INT8_EXCLUDE_MATCH = ("flatten", "concat")
_REPO = Path(__file__).resolve().parents[1]
_DEFAULT_CALIB_DIR = _REPO / "assets" / "demo_images"
#: Caffe's VGG16 SSD300 deploy file (the layout of vgg16_reduced 300), for the OpenCV dnn row.
_CAFFE_VGG300 = _REPO.parent / "shared" / "fixtures" / "caffe" / "VGG_VOC0712_SSD_300x300_deploy.prototxt"
_CAFFE_MEAN = (104.0, 117.0, 123.0)
_OPENCV_BESIDE = ("vgg16_reduced", 300)






def _int_list(text: str) -> list[int]:
    values = [positive(int)(t.strip()) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers")
    return sorted(set(values))


def _precision_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in PRECISIONS:
            raise argparse.ArgumentTypeError(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}")
    if "fp32" not in names:
        names.insert(0, "fp32")  # the reference of the other precisions
    return list(dict.fromkeys(names))


def _backend_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in BACKENDS:
            raise argparse.ArgumentTypeError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(BACKENDS)}")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Inference img/s of every preset SSD on the CPU, "
                                        f"next to GluonCV's {PEER}.")
    p.add_argument("--networks", default=None,
                   help="comma-separated NAME or NAME:SIZE (default: every preset of symbol.presets.PRESETS)")
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 8], help="comma-separated (default: 1,8)")
    p.add_argument("--backend", choices=BACKENDS, default="MKLDNN",
                   help="graph backend of our networks: 'none' (plain static graph) or 'MKLDNN' "
                        "(subgraph fusion; default)")
    p.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                   help=f"time GluonCV's {PEER} beside each network (default: on)")
    p.add_argument("--peer-backend", type=_backend_list, default=None,
                   help="comma-separated backends of the peer, each timed (default: the same as --backend); "
                        "the ratio column refers to the first")
    p.add_argument("--precisions", type=_precision_list, default=list(PRECISIONS),
                   help="comma-separated, of fp32, int8, bf16, onnx (ONNX Runtime): our networks' versions to "
                        "time (default: all; fp32 is always timed)")
    p.add_argument("--peer-int8", action=argparse.BooleanOptionalAction, default=True,
                   help=f"time GluonCV's {PEER} quantized with GluonCV's recipe beside each network "
                        f"(default: on)")
    p.add_argument("--opencv", action=argparse.BooleanOptionalAction, default=True,
                   help="time OpenCV dnn on Caffe's VGG16 SSD300 beside vgg16_reduced 300 (default: on)")
    p.add_argument("--calib-dir", default=str(_DEFAULT_CALIB_DIR),
                   help="images to calibrate the INT8 models on (default: the bundled synthetic scenes)")
    p.add_argument("--num-calib", type=positive(int), default=6,
                   help="calibration images, at most (default: 6)")
    p.add_argument("--calib-mode", choices=("naive", "entropy"), default="naive",
                   help="INT8 calibration of ours (GluonCV's is naive, its recipe's default; default: naive)")
    p.add_argument("--warmup", type=non_negative_int, default=1,
                   help="untimed calls per model and batch size, after the graph is built (default: 1)")
    p.add_argument("--min-time", type=positive(float), default=2.0,
                   help="seconds of timed calls per model and batch size, at least (default: 2.0)")
    p.add_argument("--rounds", type=positive(int), default=3,
                   help="interleaving rounds, also the least number of timed calls (default: 3)")
    p.add_argument("--threads", type=positive(int), default=None,
                   help="OpenMP threads (sets OMP_NUM_THREADS before MXNet loads; default: the environment's, "
                        "else all cores)")
    p.add_argument("--tolerance", type=positive(float), default=1e-3,
                   help="largest allowed difference between backend and plain detections (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the inputs (default: 0)")
    return p




# --------------------------------------------------------------------------- models
@dataclass
class Model:
    """A hybridized network (or another runtime) ready to time.

    ``net(input)`` runs one batch to its detections; ``make_input(batch)`` builds
    that batch once (kept while the batch size stays the same).
    """

    label: str
    data_shape: int
    backend: str
    net: Any  # mx.gluon.HybridBlock, or any callable
    make_input: Callable[[int], Any]  # batch size -> the net's input
    precision: str = "fp32"
    inputs: dict = field(default_factory=dict)

    def input(self, batch: int):
        if batch not in self.inputs:
            self.inputs.clear()  # one batch size at a time: keep memory flat
            self.inputs[batch] = self.make_input(batch)
        return self.inputs[batch]

    def __call__(self, batch: int) -> None:
        _wait(self.net(self.input(batch)))


def _wait(out) -> None:
    if isinstance(out, (list, tuple)):
        for o in out:
            _wait(o)
    elif hasattr(out, "wait_to_read"):
        out.wait_to_read()


def _hybridize(net, backend: str) -> None:
    net.hybridize(backend=None if backend == "none" else backend, static_alloc=True, static_shape=True)


def _pixels(seed: int, batch: int, side: int):
    import mxnet as mx
    import numpy as np

    rng = np.random.RandomState(seed)
    return mx.nd.array(rng.uniform(0, 255, (batch, 3, side, side)).astype("float32"))


def _our_net(name: str, data_shape: int, seed: int):
    import mxnet as mx

    from symbol import get_model

    mx.random.seed(seed)  # the same weights for every precision
    return get_model(name, data_shape, NUM_CLASSES)


def build_ours(name: str, data_shape: int, backend: str, seed: int) -> Model:
    net = _our_net(name, data_shape, seed)
    _hybridize(net, backend)
    return Model(name, data_shape, backend, net, lambda b: _pixels(seed, b, data_shape))


def build_low_precision(name: str, data_shape: int, backend: str, seed: int, precision: str,
                        calibration: Any, calib_mode: str) -> Model:
    """Our network ``name`` converted by :mod:`symbol.quantization` (``int8``: calibrated on
    ``calibration``, RGB images; ``bf16``)."""
    from evaluate.detector import network_input
    from symbol.quantization import cpu_has_bf16, quantize_ssd, to_bfloat16

    if precision == "onnx":
        return build_onnxruntime(name, data_shape, seed)
    net = _our_net(name, data_shape, seed)
    if precision == "int8":
        low = quantize_ssd(net, network_input(calibration, data_shape), calib_mode=calib_mode)
    else:
        if cpu_has_bf16() is False:
            raise RuntimeError("this CPU has no bfloat16 instructions")
        low = to_bfloat16(net)
    _hybridize(low, backend)
    return Model(name, data_shape, backend, low, lambda b: _pixels(seed, b, data_shape), precision)


def _peer_input(seed: int, batch: int):
    import mxnet as mx

    x = _pixels(seed, batch, PEER_SHAPE) / 255.0
    mean = mx.nd.array(_PEER_MEAN).reshape((1, 3, 1, 1))
    std = mx.nd.array(_PEER_STD).reshape((1, 3, 1, 1))
    return mx.nd.broadcast_div(mx.nd.broadcast_sub(x, mean), std)


def _gluoncv_net(seed: int):
    import mxnet as mx

    try:
        from gluoncv import model_zoo
    except ImportError as err:
        raise RuntimeError(f"the peer needs gluoncv ({err}); install it or pass --no-peer") from None
    mx.random.seed(seed)
    net = model_zoo.get_model(PEER, pretrained=False, pretrained_base=False)
    net.initialize()
    return net


def build_peer(backend: str, seed: int) -> Model:
    net = _gluoncv_net(seed)
    _hybridize(net, backend)
    return Model(f"gluoncv {PEER}", PEER_SHAPE, backend, net, lambda b: _peer_input(seed, b))


def build_peer_int8(backend: str, seed: int, calibration: Any) -> Model:
    """GluonCV's SSD300 quantized as GluonCV's ``eval_ssd.py --calibration`` does:
    ``quantize_net`` (tensor-wise), ``quantized_dtype='auto'``, layers named ``*flatten*`` and
    ``*concat*`` excluded, naive calibration (here on ``calibration``, RGB images, normalized
    as GluonCV feeds them)."""
    import contextlib
    import io
    import warnings

    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net_v2

    from evaluate.detector import network_input

    net = _gluoncv_net(seed)
    pixels = mx.nd.array(network_input(calibration, PEER_SHAPE)) / 255.0
    mean = mx.nd.array(_PEER_MEAN).reshape((1, 3, 1, 1))
    std = mx.nd.array(_PEER_STD).reshape((1, 3, 1, 1))
    data = mx.io.NDArrayIter(mx.nd.broadcast_div(mx.nd.broadcast_sub(pixels, mean), std), batch_size=1)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # quantize_net, which eval_ssd.py calls, is quantize_net_v2 with tensor-wise scales (and a warning)
        qnet = quantize_net_v2(net, quantized_dtype="auto", quantize_granularity="tensor-wise",
                               exclude_layers=[], exclude_layers_match=list(_PEER_INT8_EXCLUDE_MATCH),
                               calib_data=data, calib_mode="naive", num_calib_examples=len(calibration),
                               ctx=mx.cpu())
    _hybridize(qnet, backend)
    return Model(f"gluoncv {PEER}", PEER_SHAPE, backend, qnet, lambda b: _peer_input(seed, b), "int8")


def build_opencv(seed: int, workdir: Path) -> Model:
    """OpenCV dnn (its own CPU backend) running Caffe's VGG16 SSD300 deploy file with random
    weights, heads scaled so that scores spread out (as a trained model's do); timed from
    the resized BGR image to the detections (``blobFromImages``, ``setInput``, ``forward``)."""
    import cv2
    import numpy as np

    from tools.caffe_converter import reader, writer

    if not _CAFFE_VGG300.is_file():
        raise FileNotFoundError(f"Caffe's VGG16 SSD300 deploy file is not there: {_CAFFE_VGG300}")
    cv2.setNumThreads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    net_def = reader.read_prototxt(_CAFFE_VGG300)
    blobs = writer.random_blobs(net_def, seed)

    def bgr_images(batch: int) -> list:
        pixels = _pixels(seed, batch, PEER_SHAPE).asnumpy()  # the RGB input ours get
        return [np.ascontiguousarray(p.transpose(1, 2, 0)[:, :, ::-1]).astype(np.uint8) for p in pixels]

    writer.spread_head_scores(_CAFFE_VGG300, net_def, blobs, bgr_images(1)[0], _CAFFE_MEAN, 1.0, workdir=workdir)
    caffemodel = writer.write_caffemodel(workdir / "vgg300.caffemodel", net_def, blobs)
    dnn = cv2.dnn.readNetFromCaffe(str(_CAFFE_VGG300), str(caffemodel))
    dnn.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    dnn.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def forward(images: list):
        dnn.setInput(cv2.dnn.blobFromImages(images, 1.0, (PEER_SHAPE, PEER_SHAPE), _CAFFE_MEAN, swapRB=False,
                                            crop=False))
        return dnn.forward()

    return Model("opencv dnn VGG16 SSD300 (Caffe)", PEER_SHAPE, "opencv", forward, bgr_images)


def build_onnxruntime(name: str, data_shape: int, seed: int) -> Model:
    """Our network ``name`` exported by :mod:`symbol.onnx_export` (the whole detector, free
    batch dimension) and run by ONNX Runtime on the CPU (as many threads as OpenMP's)."""
    from evaluate.onnx_runtime import onnx_session, run_onnx
    from symbol.onnx_export import export_onnx

    net = _our_net(name, data_shape, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(net, Path(tmp) / f"{name}_{data_shape}.onnx", dynamic_batch=True)
        session = onnx_session(path, threads=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))

    def forward(x):
        return run_onnx(session, x.asnumpy() if hasattr(x, "asnumpy") else x)

    return Model(name, data_shape, "onnxruntime", forward, lambda b: _pixels(seed, b, data_shape).asnumpy(),
                 "onnx")


def calibration_images(folder: str, count: int) -> list:
    """Up to ``count`` RGB images of ``folder`` (sorted), for INT8 calibration."""
    from common.images import load_image
    from evaluate.calibration import IMAGE_EXTENSIONS

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:count]
    if not files:
        raise UsageError(f"--calib-dir: no images in {folder}")
    return [load_image(f) for f in files]


def _detections(out):
    """The model's output as one (B, K, 6) NumPy array (GluonCV's ids, scores, boxes joined)."""
    import numpy as np

    if isinstance(out, (list, tuple)):
        return np.concatenate([o.asnumpy() for o in out], axis=-1)
    return out if isinstance(out, np.ndarray) else out.asnumpy()


def detection_difference(a, b) -> float:
    """Largest difference between two (B, K, 6) detection arrays.

    Row by row when the orders agree; otherwise each row is matched to the
    closest row of the other array (both ways), so that two detections with
    near-equal scores that swap places do not count as a difference.
    """
    import numpy as np

    if a.shape != b.shape:
        return float("inf")
    direct = float(np.abs(a - b).max()) if a.size else 0.0
    if direct == 0.0 or a.size == 0:
        return direct
    worst = 0.0  # never above ``direct``: a row's own counterpart is one of its candidates
    for x, y in zip(a, b):
        d = np.abs(x[:, None, :] - y[None, :, :]).max(axis=-1)  # (K, K)
        worst = max(worst, float(d.min(axis=1).max()), float(d.min(axis=0).max()))
    return worst


def check_backend(model: Model, batch: int) -> float:
    """Max difference between the model's detections and the plain static graph's on one input."""
    x = model.input(batch)
    _hybridize(model.net, "none")
    ref = _detections(model.net(x))
    _hybridize(model.net, model.backend)
    return detection_difference(_detections(model.net(x)), ref)


def top_score_difference(model: Model, reference: Model, images: Any) -> float:
    """Largest difference of the ten best detection scores (sorted, per image) of two of our
    models on ``images`` (RGB): a sanity check of a low-precision version against float32
    on images like the ones it was calibrated on (random pixels are not)."""
    import mxnet as mx
    import numpy as np

    from evaluate.detector import network_input

    x = mx.nd.array(network_input(images, reference.data_shape))
    a, b = (np.sort(_detections(m.net(x))[..., 1], axis=1)[:, ::-1][:, :10] for m in (model, reference))
    return float(np.abs(a - b).max())


# --------------------------------------------------------------------------- timing
def time_interleaved(runners: Sequence[Callable[[], None]], warmup: int, min_time: float,
                     rounds: int) -> list[list[float]]:
    """Seconds per call of each runner, the runners taking turns.

    Each runner is called ``warmup`` times untimed; then in each of ``rounds``
    rounds every runner is called back to back until ``min_time / rounds``
    seconds have passed (at least once).
    """
    for run in runners:
        for _ in range(warmup):
            run()
    samples: list[list[float]] = [[] for _ in runners]
    chunk = min_time / rounds
    for _ in range(rounds):
        for run, times in zip(runners, samples):
            spent = 0.0
            while True:
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
                spent += times[-1]
                if spent >= chunk:
                    break
    return samples


@dataclass
class Row:
    label: str
    data_shape: int
    batch: int
    backend: str
    order: int = 0  # position in the network list, for sorting; the peers come last
    precision: str = "fp32"
    times: list[float] = field(default_factory=list)
    ratios: dict = field(default_factory=dict)  # column -> img/s over that reference's img/s
    note: str = ""

    @property
    def seconds(self) -> Optional[float]:
        return statistics.median(self.times) if self.times else None

    def cells(self) -> list[str]:
        s = self.seconds
        head = [self.label, str(self.data_shape), str(self.batch), self.precision, self.backend]
        if s is None:
            return head + ["-"] * (3 + len(_RATIOS)) + [self.note]
        ratios = ["-" if self.ratios.get(c) is None else f"{self.ratios[c]:.2f}x" for c in _RATIOS]
        return head + [f"{s * 1e3:.1f}", f"{self.batch / s:.2f}", str(len(self.times))] + ratios + [self.note]


_RATIOS = ("vs fp32", "vs GluonCV", "vs GluonCV int8")
_HEADER = ["network", "size", "batch", "precision", "backend", "ms/batch", "img/s", "calls", *_RATIOS, "note"]


def format_table(rows: Sequence[Row]) -> str:
    cells = [_HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEADER) - 1)]
    right = {1, 2} | set(range(5, len(_HEADER) - 1))
    lines = []
    for c in cells:
        parts = [c[i].rjust(w) if i in right else c[i].ljust(w) for i, w in enumerate(widths)]
        lines.append("  ".join(parts + [c[-1]]).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


# --------------------------------------------------------------------------- run
def _progress(row: Row) -> None:
    print("  " + "  ".join(c for c in row.cells() if c), file=sys.stderr, flush=True)


def _check(model: Model, batch: int, row: Row, tolerance: float) -> bool:
    """Compare the model's backend graph with the plain one; note the result in ``row``."""
    diff = check_backend(model, batch)
    if diff <= tolerance:
        row.note = f"max diff vs plain graph {diff:.1e}"
        return True
    row.note = f"{model.backend} DIFFERS from the plain graph: max diff {diff:.3g}"
    return False


@dataclass
class Peer:
    """A model timed beside every network (``only``: beside that (network, size) only)."""

    model: Model
    column: Optional[str] = None  # the ratio column it is the reference of
    only: Optional[tuple[str, int]] = None
    rows: dict = field(default_factory=dict)  # batch -> Row


def _build_peers(args: argparse.Namespace, networks: list[tuple[str, int]], calibration: Any, workdir: Path,
                 last: int, rows: list[Row]) -> tuple[list[Peer], bool]:
    """The peers the flags ask for (OpenCV's only beside vgg16_reduced 300); a peer that fails
    to build becomes a row saying why."""
    wanted: list[tuple[str, str, Callable[[], Model], Optional[str], Optional[tuple[str, int]]]] = []
    for i, backend in enumerate((args.peer_backend or [args.backend]) if args.peer else []):
        wanted.append((f"gluoncv {PEER}", backend, lambda b=backend: build_peer(b, args.seed),
                       "vs GluonCV" if i == 0 else None, None))
    if args.peer_int8:
        wanted.append((f"gluoncv {PEER}", args.backend,
                       lambda: build_peer_int8(args.backend, args.seed, calibration), "vs GluonCV int8", None))
    if args.opencv and _OPENCV_BESIDE in networks:
        wanted.append(("opencv dnn VGG16 SSD300 (Caffe)", "opencv", lambda: build_opencv(args.seed, workdir), None,
                       _OPENCV_BESIDE))
    peers, failed = [], False
    for label, backend, build, column, only in wanted:
        try:
            peers.append(Peer(build(), column, only))
        except Exception as err:  # a benchmark reports a broken peer and goes on
            precision = "int8" if column == "vs GluonCV int8" else "fp32"
            rows += [Row(label, PEER_SHAPE, b, backend, last, precision, note=f"build failed: {_one_line(err)}")
                     for b in args.batch_sizes]
            failed = True
    for peer in peers:
        m = peer.model
        peer.rows = {b: Row(m.label, m.data_shape, b, m.backend, last, m.precision) for b in args.batch_sizes}
    return peers, failed


def run(args: argparse.Namespace, networks: list[tuple[str, int]]) -> int:
    import mxnet as mx

    peer_backends = (args.peer_backend or [args.backend]) if args.peer else []
    if "MKLDNN" in [args.backend] + peer_backends and not mx.runtime.Features().is_enabled("MKLDNN"):
        raise UsageError("this MXNet build has no MKLDNN; use --backend none --peer-backend none")
    low_precisions = [p for p in args.precisions if p != "fp32"]
    calibration = (calibration_images(args.calib_dir, args.num_calib)
                   if "int8" in low_precisions or args.peer_int8 else None)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"mxnet {mx.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', '(unset)')}, load average {load}")
    print(f"ours: {NUM_CLASSES} classes, random weights, backend {args.backend}, {', '.join(args.precisions)}"
          + (f" (int8: {args.calib_mode} calibration on {len(calibration)} image(s) of {args.calib_dir})"
             if "int8" in low_precisions else "")
          + "; peers: " + (", ".join(filter(None, [
              f"GluonCV {PEER} fp32 ({', '.join(peer_backends)})" if peer_backends else "",
              "GluonCV int8 (its recipe)" if args.peer_int8 else "",
              "OpenCV dnn VGG16 SSD300 fp32" if args.opencv and _OPENCV_BESIDE in networks else ""])) or "none")
          + f"; median of >= {args.rounds} calls and >= {args.min_time:g} s after {args.warmup} warm-up",
          flush=True)
    started = time.perf_counter()
    rows: list[Row] = []
    last = len(networks)  # the peer rows sort after every network
    with tempfile.TemporaryDirectory() as tmp:
        peers, failed = _build_peers(args, networks, calibration, Path(tmp), last, rows)
        unchecked = [p for p in peers if p.model.backend != "none" and p.model.precision == "fp32"
                     and p.model.backend != "opencv"]
        for order, (name, shape) in enumerate(networks):
            failed |= _time_network(args, name, shape, order, peers, unchecked, calibration, low_precisions, rows)
    for batch in args.batch_sizes:
        refs = {p.column: p.rows[batch] for p in peers if p.column}
        for peer in peers:
            row = peer.rows[batch]
            if row.times:
                for column, ref in refs.items():
                    if ref.times:
                        row.ratios[column] = ref.seconds / row.seconds
            rows.append(row)
    rows.sort(key=lambda r: (r.batch, r.order))
    print()
    print(format_table(rows))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\n{time.perf_counter() - started:.0f} s; load average now {load}")
    return 1 if failed else 0


def _time_network(args: argparse.Namespace, name: str, shape: int, order: int, peers: list[Peer],
                  unchecked: list[Peer], calibration: Any, low_precisions: list[str], rows: list[Row]) -> bool:
    """Build ``name`` at ``shape`` in every precision and time them beside the peers; appends
    the rows; returns whether something failed."""
    failed = False
    models: list[Model] = []
    sanity_images = calibration[:1] if calibration else None
    try:
        models.append(build_ours(name, shape, args.backend, args.seed))
    except Exception as err:  # e.g. a backbone still being written: report it in the table
        for batch in args.batch_sizes:
            rows.append(Row(name, shape, batch, args.backend, order, note=f"build failed: {_one_line(err)}"))
            _progress(rows[-1])
        return True
    for precision in low_precisions:
        try:
            models.append(build_low_precision(name, shape, args.backend, args.seed, precision, calibration,
                                              args.calib_mode))
        except Exception as err:
            for batch in args.batch_sizes:
                rows.append(Row(name, shape, batch, args.backend, order, precision,
                                note=f"conversion failed: {_one_line(err)}"))
                _progress(rows[-1])
            failed |= not (precision == "bf16" and "bfloat16 instructions" in str(err))
    here = [p for p in peers if p.only is None or p.only == (name, shape)]
    for batch in args.batch_sizes:
        mine = [Row(name, shape, batch, m.backend, order, m.precision) for m in models]
        rows.extend(mine)
        try:
            if args.backend != "none" and batch == args.batch_sizes[0]:
                if not _check(models[0], batch, mine[0], args.tolerance):
                    failed = True
                    for r in mine:
                        _progress(r)
                    continue
            for model, row in zip(models[1:], mine[1:]):
                if batch == args.batch_sizes[0] and sanity_images:
                    row.note = (f"top-10 score diff vs fp32 on a calibration image "
                                f"{top_score_difference(model, models[0], sanity_images):.1e}")
            while unchecked:
                peer = unchecked.pop(0)
                failed |= not _check(peer.model, batch, peer.rows[batch], args.tolerance)
            runners = [lambda m=m, b=batch: m(b) for m in models] + [lambda p=p, b=batch: p.model(b) for p in here]
            samples = time_interleaved(runners, args.warmup, args.min_time, args.rounds)
        except Exception as err:  # out of memory, an operator error: report and go on
            for r in mine:
                r.note = f"failed: {_one_line(err)}"
                _progress(r)
            failed = True
            continue
        for row, times in zip(mine, samples):
            row.times = times
        beside = {}
        for peer, times in zip(here, samples[len(models):]):
            peer.rows[batch].times += times
            if peer.column:
                beside[peer.column] = statistics.median(times)
        for row in mine:
            row.ratios["vs fp32"] = mine[0].seconds / row.seconds  # same batch size: the img/s ratio
            for column, seconds in beside.items():
                row.ratios[column] = seconds / row.seconds
            _progress(row)
    return failed


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit status (0 ok, 1 a network failed or differed, 2 bad usage)."""
    try:
        args = build_parser().parse_args(argv)
        set_omp_threads(args.threads)
        networks = parse_networks(args.networks)
        return run(args, networks)
    except UsageError as err:
        _error(err)
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
