"""tools.export_onnx: the whole detector in one ONNX file, run by ONNX Runtime alone on real photos.

Each model is exported with the command a user types; ``onnx_standalone.py``
then runs the file in a separate interpreter with ONNX Runtime, NumPy and
OpenCV only (it checks that neither MXNet nor this project was loaded) on
the VOC fixture photos. Its detections must be the MXNet model's on the same
pixels: every detection scoring >= 0.3 in either has its twin (same class,
IoU >= 0.97, score within 1e-3), none missing, none extra.

Models: OpenCV's face detector (a real trained Caffe SSD, the generic ``caffe``
graph, Caffe decoding), the embedded synthetic model (trained MobileNet), and
one network of every other preset family with random weights whose heads are
rescaled on the photos (:func:`calibrate_heads`) so that each photo has
several confident detections; together they cover the four decoding modes,
class-agnostic NMS, batch 1 and a free batch dimension run 3 images at a time.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from common.images import load_image  # noqa: E402
from evaluate.onnx_runtime import model_metadata, onnx_session, run_onnx  # noqa: E402
from evaluate.parity import match_detections  # noqa: E402
from symbol import get_model  # noqa: E402
from symbol.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from symbol.onnx_export import export_onnx  # noqa: E402
from tools.benchmarking import opencv_face_detector  # noqa: E402
from tools.caffe_converter.convert_model import main as convert_main  # noqa: E402
from tools.export_onnx import main as export_main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("onnx_standalone.py")
THRESH, SCORE_TOL, MIN_IOU = 0.3, 1e-3, 0.97
EMBEDDED = REPO / "assets" / "synthetic_model" / "ssd_synthetic"


@pytest.fixture(scope="module")
def photos(fixtures_dir) -> list[Path]:
    return sorted((fixtures_dir / "images").glob("*.jpg"))


def pixels(images: list[Path], side: int) -> np.ndarray:
    """(N, 3, side, side) float32 RGB 0..255, resized as evaluate.detector.Detector does."""
    return np.stack([cv2.resize(load_image(p), (side, side), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
                     for p in images]).astype(np.float32)


def mxnet_rows(prefix: Path, images: list[Path], **overrides) -> list[np.ndarray]:
    """The MXNet model's detections of each image (hybridized, as users run it), class >= 0."""
    net, config = load_checkpoint(prefix, 0, **overrides)
    net.hybridize(static_alloc=True, static_shape=True)
    with autograd.predict_mode():
        out = net(mx.nd.array(pixels(images, config.data_shape))).asnumpy()
    return [rows[rows[:, 0] >= 0] for rows in out]


def onnx_rows(model: Path, images: list[Path], batch: int = 1) -> list[np.ndarray]:
    """``onnx_standalone.py``'s detections, in an interpreter that imports nothing of ours."""
    done = subprocess.run([sys.executable, "-I", str(RUNNER), str(model), "--batch", str(batch),
                           *map(str, images)], capture_output=True, text=True, cwd=model.parent, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [np.asarray(rows, np.float64).reshape(-1, 6) for rows in json.loads(done.stdout)]


def export(prefix: Path, out: Path, *flags: str) -> Path:
    assert export_main(["--prefix", str(prefix), "--epoch", "0", "--out", str(out), *flags]) == 0
    onnx.checker.check_model(str(out), full_check=True)
    return out


def assert_same(expected: list[np.ndarray], got: list[np.ndarray], at_least: int) -> str:
    """Every image's detections >= THRESH paired; returns the totals as one line."""
    assert len(expected) == len(got)
    pairs, score, iou = 0, 0.0, 1.0
    for i, (ref, ours) in enumerate(zip(expected, got)):
        parity = match_detections(ref, ours, THRESH, SCORE_TOL, MIN_IOU)
        assert parity.ok, f"image {i}: {parity.summary()}"
        pairs += sum(max(a[1], b[1]) >= THRESH for a, b in parity.pairs)
        score, iou = max(score, parity.max_score_diff), min(iou, parity.worst_iou)
    assert pairs >= at_least, f"only {pairs} detections >= {THRESH}: too few for a test"
    return f"{pairs} detections matched, worst score difference {score:.1e}, worst IoU {iou:.6f}"


# ---------------------------------------------------------------------- random weights, confident heads
def _last_conv(head) -> nn.Conv2D:
    return head if isinstance(head, nn.Conv2D) else head[len(head) - 1]


def calibrate_heads(net, batch: np.ndarray, candidates: int = 6, logit_std: float = 2.0,
                    box_std: float = 0.3) -> None:
    """Rescale a random preset network's heads in place so that its predictions on ``batch``
    look like a trained model's: class logits and box offsets of a set spread per channel,
    and a background bias that leaves ``candidates`` (prior, class) pairs >= 0.35 on every image."""
    outputs: dict = {}
    handles = [head.register_forward_hook(lambda block, inputs, out, key=(kind, i): outputs.__setitem__(
        key, out.asnumpy())) for kind, heads in (("cls", net.class_heads), ("box", net.box_heads))
        for i, head in enumerate(heads)]
    with autograd.predict_mode():
        net.raw_predictions(mx.nd.array(batch))
    for handle in handles:
        handle.detach()
    k = net.num_classes + 1
    logits = []
    for (kind, i), out in sorted(outputs.items()):
        conv = _last_conv((net.class_heads if kind == "cls" else net.box_heads)[i])
        mean = out.mean(axis=(0, 2, 3)) if out[:, 0].size > 1 else np.full(out.shape[1], out.mean())
        alpha = (logit_std if kind == "cls" else box_std) / max(float((out - mean[:, None, None]).std()), 1e-12)
        conv.weight.set_data(conv.weight.data() * alpha)
        conv.bias.set_data(mx.nd.array((conv.bias.data().asnumpy() - mean) * alpha))
        if kind == "cls":
            scaled = (out - mean[:, None, None]) * alpha
            logits.append(scaled.transpose(0, 2, 3, 1).reshape(len(out), -1, k))
    logits = np.concatenate(logits, axis=1)

    def fewest(offset: float) -> int:
        z = logits.copy()
        z[..., 0] += offset
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return int((p[..., 1:] >= 0.35).sum(axis=(1, 2)).min())

    lo, hi = -10.0, 30.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fewest(mid) >= candidates else (lo, mid)
    for head in net.class_heads:
        bias = _last_conv(head).bias
        b = bias.data().asnumpy()
        b[::k] += lo
        bias.set_data(mx.nd.array(b))


def random_checkpoint(folder: Path, network: str, side: int, images: list[Path], classes: int = 20) -> Path:
    """A checkpoint of ``network`` with random weights and :func:`calibrate_heads` on ``images``.

    BatchNorm gets running statistics of its own, and a fixed gamma (``scale=False``, which MXNet
    reads as 1 whatever is stored) a stored value of 2.5: the export must use them as MXNet does."""
    mx.random.seed(0)
    net = get_model(network, side, classes)
    rng = np.random.default_rng(0)
    for name, p in net.collect_params().items():
        if name.endswith("running_mean"):
            p.set_data(mx.nd.array(rng.normal(0, 0.1, p.shape)))
        elif name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
        elif name.endswith("gamma") and p.grad_req == "null":
            p.set_data(mx.nd.full(p.shape, 2.5))
    calibrate_heads(net, pixels(images, side))
    prefix = folder / network
    save_checkpoint(net, prefix, 0, [f"class{i}" for i in range(classes)])
    return prefix


# ---------------------------------------------------------------------- parity on real photos
PRESETS = [  # network, data shape, export flags, the same decoding for the MXNet model, batch
    ("vgg16_reduced", 300, (), {}, 1),
    ("resnet50", 128, ("--nms-mode", "gluoncv"), {"nms_mode": "gluoncv"}, 1),
    ("resnet50_v2", 128, ("--force-nms",), {"force_suppress": True}, 1),
    ("inceptionv3", 160, (), {}, 1),
    ("mobilenet", 160, ("--nms-mode", "caffe", "--dynamic-batch"), {"nms_mode": "caffe"}, 3),
    ("ssdlite_mobilenetv2", 160, ("--nms-mode", "mmdet", "--thresh", "0.02", "--nms-topk", "100"),
     {"nms_mode": "mmdet", "thresh": 0.02, "nms_topk": 100}, 1),
]


@pytest.mark.parametrize("network,side,flags,decoding,batch", PRESETS, ids=[p[0] for p in PRESETS])
def test_preset_networks_detect_as_in_mxnet(network, side, flags, decoding, batch, photos, tmp_path):
    prefix = random_checkpoint(tmp_path, network, side, photos)
    model = export(prefix, tmp_path / f"{network}.onnx", *flags)
    print(network, side, assert_same(mxnet_rows(prefix, photos, **decoding), onnx_rows(model, photos, batch),
                                     at_least=5 * len(photos)))


def test_embedded_model_detects_as_in_mxnet(photos, tmp_path):
    """Trained weights (the synthetic MobileNet), its own decoding, batch 1 and 3."""
    images = photos + sorted((REPO / "assets" / "demo_images").glob("*.jpg"))
    expected = mxnet_rows(EMBEDDED, images)
    fixed = export(EMBEDDED, tmp_path / "fixed.onnx")
    free = export(EMBEDDED, tmp_path / "free.onnx", "--dynamic-batch")
    assert_same(expected, onnx_rows(fixed, images), at_least=25)
    print("embedded", assert_same(expected, onnx_rows(free, images, batch=3), at_least=25))
    session = onnx_session(free)
    meta = model_metadata(session)
    assert meta["class_names"] == ["circle", "square", "triangle"] and meta["data_shape"] == 300
    direct = run_onnx(session, pixels(images, 300))  # the helper, in this process
    assert direct.shape == (len(images), 200, 6)
    assert_same(expected, [rows[rows[:, 0] >= 0] for rows in direct], at_least=25)


@pytest.fixture(scope="module")
def face_model(tmp_path_factory) -> Path:
    try:
        deploy, caffemodel = opencv_face_detector()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    prefix = tmp_path_factory.mktemp("face") / "face"
    assert convert_main([str(deploy), str(caffemodel), str(prefix), "--mean", "104,177,123",
                         "--class-names", "face"]) == 0
    return prefix


@pytest.fixture(scope="module")
def face_photos(photos, tmp_path_factory) -> list[Path]:
    """Real photos with faces: two portraits, 16 LFW faces in one mosaic, the VOC photos."""
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    faces = np.load(data / "lfw_subset.npy")[:16]
    tiles = [cv2.resize((f * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC) for f in faces]
    mosaic = tmp_path_factory.mktemp("faces") / "lfw_mosaic.png"
    cv2.imwrite(str(mosaic), np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, 16, 4)]))
    return [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", data / "astronaut.png",
            mosaic] + photos


def test_caffe_graph_face_detector_detects_as_in_mxnet(face_model, face_photos, tmp_path):
    """OpenCV's face detector (real weights, the generic Caffe graph, Caffe decoding): batch 1 and 3."""
    expected = mxnet_rows(face_model, face_photos)
    fixed = export(face_model, tmp_path / "face.onnx")
    free = export(face_model, tmp_path / "face_dynamic.onnx", "--dynamic-batch")
    assert_same(expected, onnx_rows(fixed, face_photos), at_least=18)
    print("face", assert_same(expected, onnx_rows(free, face_photos, batch=3), at_least=18))
    inputs = onnx.load(str(free)).graph.input
    assert [d.dim_param or d.dim_value for d in inputs[0].type.tensor_type.shape.dim] == ["batch", 3, 300, 300]
    inputs = onnx.load(str(fixed)).graph.input
    assert [d.dim_value for d in inputs[0].type.tensor_type.shape.dim] == [1, 3, 300, 300]


# ---------------------------------------------------------------------- refusals
def _tiny_graph(normalize_across_spatial: bool) -> dict:
    """A one-source Caffe graph: a convolution, a BatchNorm of fixed gamma (``scale=False``), a
    PReLU per channel and Caffe's Normalize (across the whole map or not), the source."""
    def conv(name, bottom, out, stride=1):
        return {"name": name, "type": "Convolution", "bottom": [bottom], "top": [name],
                "params": {"num_output": out, "kernel": [3, 3], "stride": [stride, stride], "pad": [1, 1],
                           "dilation": [1, 1], "group": 1, "bias": True}}

    def simple(name, kind, bottom, **params):
        return {"name": name, "type": kind, "bottom": [bottom] if isinstance(bottom, str) else bottom,
                "top": [name], "params": params}

    prior = dict(min_sizes=[10.0], max_sizes=[20.0], aspect_ratios=[2.0], flip=True, clip=False,
                 variances=[0.1, 0.1, 0.2, 0.2], img_h=0, img_w=0, step_h=0.0, step_w=0.0, offset=0.5)
    layers = [conv("c1", "data", 8, stride=2),
              simple("bn", "BatchNorm", "c1", eps=1e-5, momentum=0.9, scale=False, bias=True),
              simple("pr", "PReLU", "bn", channel_shared=False),
              simple("n1", "Normalize", "pr", across_spatial=normalize_across_spatial, channel_shared=False,
                     eps=1e-10),
              conv("loc", "n1", 16), simple("loc_perm", "Permute", "loc", order=[0, 2, 3, 1]),
              simple("loc_flat", "Flatten", "loc_perm", axis=1, end_axis=-1),
              conv("conf", "n1", 12), simple("conf_perm", "Permute", "conf", order=[0, 2, 3, 1]),
              simple("conf_flat", "Flatten", "conf_perm", axis=1, end_axis=-1),
              simple("pb", "PriorBox", ["n1", "data"], **prior)]
    return {"format": "caffe-graph", "version": 1, "input": "data", "layers": layers,
            "outputs": {"loc": "loc_flat", "conf": "conf_flat", "priors": "pb"}, "class_heads": ["conf"],
            "num_classes": 3}


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export_onnx: error: "), err
    return err[0]


def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out" / "model.onnx"
    assert export_main(["--prefix", str(tmp_path / "missing"), "--out", str(out)]) == 1
    assert "checkpoint params not found" in _error_line(capsys)

    graph = tmp_path / "graph"
    save_checkpoint(get_model("caffe", 48, 2, layout=_tiny_graph(True)), graph, 0, ["a", "b"])
    assert export_main(["--prefix", str(graph), "--out", str(out)]) == 1
    line = _error_line(capsys)
    assert "n1" in line and "L2Normalization" in line, line

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert export_main(["--prefix", str(EMBEDDED), "--out", str(blocker / "model.onnx")]) == 1
    assert "cannot write" in _error_line(capsys)
    assert export_main(["--prefix", str(EMBEDDED), "--out", str(tmp_path)]) == 1
    assert "is a directory" in _error_line(capsys)
    for opset in ("12", "99"):
        assert export_main(["--prefix", str(EMBEDDED), "--out", str(out), "--opset", opset]) == 1
        assert "opset" in _error_line(capsys)
    assert not out.parent.exists()  # nothing written, not even the folder
    assert not list(tmp_path.rglob(".*.tmp*"))


def test_layers_the_mxnet_exporter_gets_wrong(tmp_path):
    """The same graph with Normalize per location exports, and detects as MXNet does: the BatchNorm's
    statistics are its own and its stored gamma (2.5) is ignored, as MXNet ignores a fixed gamma;
    PReLU's slopes apply per channel (MXNet's exporter gives ONNX a slope that broadcasts on width)."""
    out = tmp_path / "model.onnx"
    net = get_model("caffe", 48, 2, layout=_tiny_graph(False))
    for name in ("conf", "loc"):  # spread-out scores, no saturated (tied) probabilities
        net.block_of(name).weight.set_data(net.block_of(name).weight.data() * 0.02)
    bn = net.block_of("bn")
    bn.gamma.set_data(mx.nd.full(bn.gamma.shape, 2.5))
    bn.beta.set_data(mx.nd.full(bn.beta.shape, 0.5))
    bn.running_mean.set_data(mx.nd.array(np.linspace(-1, 1, 8)))
    bn.running_var.set_data(mx.nd.array(np.linspace(0.5, 2, 8)))
    net.block_of("pr").alpha.set_data(mx.nd.array(np.linspace(-0.5, 0.5, 8)))  # a slope per channel
    model = export_onnx(net, out, dynamic_batch=True, opset=17)
    assert onnx.load(str(model)).opset_import[0].version == 17
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 48, 48)).astype(np.float32)
    with autograd.predict_mode():
        expected = net(mx.nd.array(x)).asnumpy()
    assert (expected[..., 1] > 0.05).sum() > 20
    np.testing.assert_allclose(run_onnx(model, x), expected, atol=1e-5)
