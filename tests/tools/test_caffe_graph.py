"""The caffe network (any Caffe SSD, the graph as it is) against OpenCV's dnn module, layer type by layer type.

Each case is a small generated SSD deploy prototxt (64x64 input, two sources,
PriorBox, DetectionOutput) whose body uses the layer types under test, with
random weights. OpenCV runs the Caffe files; the converted model must give the
same box offsets, class probabilities and priors, and the same detections.
OpenCV has no DepthwiseConvolution and no Clip: the first runs in OpenCV as the
equivalent grouped Convolution, the second as a layer registered with
``cv2.dnn_registerLayer`` (``numpy.clip``).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from evaluate.detector import Detector
from evaluate.parity import match_detections
from symbol.checkpoint import load_checkpoint
from tools.caffe_converter import reader, writer
from tools.caffe_converter.convert_model import main as convert_main

SIDE, CLASSES = 64, 4  # input side; classes with the background
CLIP = (-0.5, 0.8)  # the bounds of the Clip layer of the cases
MEAN, SCALE = (104.0, 117.0, 123.0), 0.017


def conv(name: str, bottom: str, out: int, kernel: int = 3, pad: int = 1, stride: int = 1, extra: str = "",
         kind: str = "Convolution") -> str:
    return (f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{name}" convolution_param {{ '
            f'num_output: {out} kernel_size: {kernel} pad: {pad} stride: {stride} {extra} }} }}\n')


def layer(name: str, kind: str, bottoms, top=None, params: str = "") -> str:
    bottoms = [bottoms] if isinstance(bottoms, str) else bottoms
    tops = [top or name] if not isinstance(top, list) else top
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{kind}" {b} {t} {params} }}\n'


PRIORS = ('min_size: 12 max_size: 24 aspect_ratio: 2 flip: true clip: false variance: 0.1 variance: 0.1 '
          'variance: 0.2 variance: 0.2 step: 4 offset: 0.5',
          'min_size: 24 max_size: 40 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: false variance: 0.1 '
          'variance: 0.1 variance: 0.2 variance: 0.2 offset: 0.5')


def num_priors(params: str) -> int:
    mins, maxs = params.count("min_size"), params.count("max_size")
    ratios = params.count("aspect_ratio") * (2 if "flip: true" in params else 1)
    return mins * (1 + ratios) + maxs


def ssd_prototxt(body: str, priors=PRIORS) -> str:
    """``body`` writes blob ``feat`` (and may write ``src2``); two sources with heads: ``feat`` and
    ``src2``, by default a 2x2 max pool of ``feat``."""
    text = f'name: "case"\ninput: "data"\ninput_shape {{ dim: 1 dim: 3 dim: {SIDE} dim: {SIDE} }}\n' + body
    if 'top: "src2"' not in body:
        text += layer("src2", "Pooling", "feat", params="pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
    locs, confs, boxes = [], [], []
    for src, prior in zip(("feat", "src2"), priors):
        a = num_priors(prior)
        for kind, width in (("loc", a * 4), ("conf", a * CLASSES)):
            text += conv(f"{src}_{kind}", src, width)
            text += layer(f"{src}_{kind}_perm", "Permute", f"{src}_{kind}",
                          params="permute_param { order: 0 order: 2 order: 3 order: 1 }")
            text += layer(f"{src}_{kind}_flat", "Flatten", f"{src}_{kind}_perm", params="flatten_param { axis: 1 }")
        text += layer(f"{src}_priorbox", "PriorBox", [src, "data"], params=f"prior_box_param {{ {prior} }}")
        locs.append(f"{src}_loc_flat")
        confs.append(f"{src}_conf_flat")
        boxes.append(f"{src}_priorbox")
    text += layer("mbox_loc", "Concat", locs, params="concat_param { axis: 1 }")
    text += layer("mbox_conf", "Concat", confs, params="concat_param { axis: 1 }")
    text += layer("mbox_priorbox", "Concat", boxes, params="concat_param { axis: 2 }")
    text += layer("mbox_conf_reshape", "Reshape", "mbox_conf",
                  params=f"reshape_param {{ shape {{ dim: 0 dim: -1 dim: {CLASSES} }} }}")
    text += layer("mbox_conf_softmax", "Softmax", "mbox_conf_reshape", params="softmax_param { axis: 2 }")
    text += layer("mbox_conf_flatten", "Flatten", "mbox_conf_softmax", params="flatten_param { axis: 1 }")
    text += layer("detection_out", "DetectionOutput", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
                  params=f"include {{ phase: TEST }} detection_output_param {{ num_classes: {CLASSES} "
                         f"share_location: true background_label_id: 0 nms_param {{ nms_threshold: 0.45 "
                         f"top_k: 400 }} code_type: CENTER_SIZE keep_top_k: 200 confidence_threshold: 0.01 }}")
    return text


C1 = conv("c1", "data", 8)
CASES = {
    "conv_group_dilation_nobias": C1 + layer("r1", "ReLU", "c1", "c1")
    + conv("feat", "c1", 8, pad=2, extra="dilation: 2 group: 4 bias_term: false"),
    "depthwise": C1 + conv("feat", "c1", 8, extra="group: 8", kind="DepthwiseConvolution"),
    "deconvolution": conv("c1", "data", 8, stride=2) + layer("r1", "ReLU", "c1", "c1")
    + conv("feat", "c1", 8, kernel=4, pad=1, stride=2, extra="group: 2", kind="Deconvolution"),
    "batchnorm_scale_folded": C1 + layer("bn", "BatchNorm", "c1", "c1") + layer("sc", "Scale", "c1", "c1",
                                                                                 "scale_param { bias_term: true }")
    + layer("feat", "ReLU", "c1"),
    "batchnorm_kept": C1 + layer("r1", "ReLU", "c1") + layer("bn1", "BatchNorm", "r1")
    + layer("sc1", "Scale", "bn1", params="scale_param { bias_term: false }") + layer("bn2", "BatchNorm", "sc1", "feat"),
    "scale_alone_eltwise_sum": C1 + conv("c2", "data", 8) + layer("sc", "Scale", "c2", params="scale_param { bias_term: true }")
    + layer("feat", "Eltwise", ["c1", "sc"], params="eltwise_param { operation: SUM coeff: 0.5 coeff: -1.5 }"),
    "eltwise_prod_max": C1 + conv("c2", "data", 8) + layer("p", "Eltwise", ["c1", "c2"], params="eltwise_param { operation: PROD }")
    + layer("feat", "Eltwise", ["p", "c2"], params="eltwise_param { operation: MAX }"),
    "leaky_relu": C1 + layer("feat", "ReLU", "c1", params="relu_param { negative_slope: 0.1 }"),
    "prelu": C1 + layer("p1", "PReLU", "c1") + conv("c2", "p1", 8) + layer("feat", "PReLU", "c2",
                                                                           params="prelu_param { channel_shared: true }"),
    "relu6_clip": C1 + layer("r6", "ReLU6", "c1") + conv("c2", "r6", 8) + layer("feat", "Clip", "c2",
                                                                                params=f"clip_param {{ min: {CLIP[0]} max: {CLIP[1]} }}"),
    "sigmoid_tanh_power": C1 + layer("s", "Sigmoid", "c1") + layer("pw", "Power", "s",
                                                                   params="power_param { power: 2 scale: 2 shift: 0.1 }")
    + conv("c2", "pw", 8) + layer("feat", "TanH", "c2"),
    "pooling_ceil_ave_global": conv("c1", "data", 8, kernel=2, pad=0) + layer("mp", "Pooling", "c1", params=(
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 }"))
    + layer("ap", "Pooling", "mp", params="pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }")
    + conv("feat", "ap", 8, kernel=1, pad=0)
    + layer("src2", "Pooling", "feat", params="pooling_param { pool: AVE global_pooling: true }"),
    "concat_slice_split_dropout": C1 + layer("sl", "Slice", "c1", ["a", "b", "c"],
                                             "slice_param { axis: 1 slice_point: 2 slice_point: 5 }")
    + layer("sp", "Split", "b", ["b1", "b2"]) + layer("cat", "Concat", ["c", "b1", "a", "b2"])
    + layer("feat", "Dropout", "cat", params="dropout_param { dropout_ratio: 0.3 }"),
    "normalize_permute_reshape_softmax": C1 + layer("n1", "Normalize", "c1", params=(
        "norm_param { across_spatial: false channel_shared: false }"))
    + layer("n2", "Normalize", "n1", params="norm_param { across_spatial: true channel_shared: true eps: 1e-6 }")
    + layer("pm", "Permute", "n2", params="permute_param { order: 0 order: 1 order: 3 order: 2 }")
    + layer("rs", "Reshape", "pm", params="reshape_param { shape { dim: 0 dim: 16 dim: -1 dim: 64 } }")
    + layer("feat", "Softmax", "rs", params="softmax_param { axis: 1 }"),
}
# PriorBox's options: several min sizes, no max size, clip, a fixed image size, separate steps, offset.
PRIOR_CASES = {
    "priorbox_options": (C1 + layer("feat", "ReLU", "c1"), (
        'min_size: 8 min_size: 16 aspect_ratio: 2 flip: false clip: true variance: 0.1 img_size: 64 '
        'step_h: 4 step_w: 4 offset: 0.2',
        'min_size: 20 max_size: 30 min_size: 34 max_size: 50 aspect_ratio: 3 flip: true variance: 0.1 '
        'clip: false img_h: 64 img_w: 64 offset: 0.5')),
}


class OpenCVClip:
    """Caffe's Clip for OpenCV, which has none: the reference is ``numpy.clip`` (with the
    cases' bounds: OpenCV does not pass clip_param's values through correctly)."""

    def __init__(self, params, blobs):
        self.low, self.high = CLIP

    def getMemoryShapes(self, inputs):
        return inputs

    def forward(self, inputs):
        return [np.clip(inputs[0], self.low, self.high)]


@pytest.fixture(scope="module", autouse=True)
def opencv_clip():
    cv2.dnn_registerLayer("Clip", OpenCVClip)
    yield
    cv2.dnn_unregisterLayer("Clip")


def opencv_twin(text: str) -> str:
    """The prototxt OpenCV can run: DepthwiseConvolution as the grouped Convolution it is."""
    return text.replace('type: "DepthwiseConvolution"', 'type: "Convolution"')


@pytest.fixture(scope="module")
def image(fixtures_dir) -> np.ndarray:
    return cv2.resize(cv2.imread(str(fixtures_dir / "images" / "000001.jpg")), (SIDE, SIDE),
                      interpolation=cv2.INTER_LINEAR)


def make_case(text: str, image: np.ndarray, folder: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """(prototxt, OpenCV's twin prototxt, caffemodel with spread-out scores)."""
    prototxt, twin = folder / "case.prototxt", folder / "twin.prototxt"
    prototxt.write_text(text)
    twin.write_text(opencv_twin(text))
    net = reader.read_prototxt(prototxt)
    blobs = writer.random_blobs(net, seed)
    writer.spread_head_scores(twin, reader.read_prototxt(twin), blobs, image, MEAN, SCALE, background=6.0,
                              workdir=folder)
    return prototxt, twin, writer.write_caffemodel(folder / "case.caffemodel", net, blobs)


def opencv_run(twin: Path, caffemodel: Path, image: np.ndarray) -> list[np.ndarray]:
    """OpenCV's box offsets, class probabilities, priors and DetectionOutput rows."""
    dnn = cv2.dnn.readNetFromCaffe(str(twin), str(caffemodel))
    dnn.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    dnn.setInput(cv2.dnn.blobFromImage(image, SCALE, (SIDE, SIDE), MEAN, swapRB=False))
    return [np.asarray(o) for o in dnn.forward(["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "detection_out"])]


def opencv_detections(rows: np.ndarray) -> np.ndarray:
    rows = rows.reshape(-1, 7)
    rows = rows[rows[:, 2] > 0]
    return np.concatenate([rows[:, 1:2] - 1, rows[:, 2:3], np.clip(rows[:, 3:7], 0, 1)], axis=1)


def convert(prototxt: Path, caffemodel: Path, prefix: Path, *flags: str) -> None:
    status = convert_main([str(prototxt), str(caffemodel), str(prefix), "--network", "caffe", "--class-names",
                           "a,b,c", "--mean", ",".join(map(str, MEAN)), "--scale", str(SCALE), *flags])
    assert status == 0


def check_against_opencv(prefix: Path, twin: Path, caffemodel: Path, image: np.ndarray) -> None:
    loc, conf, priors, dets = opencv_run(twin, caffemodel, image)
    net, config = load_checkpoint(prefix, 0)
    x = mx.nd.array(image[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32))
    with autograd.predict_mode():
        cls_preds, box_preds, anchors = net.raw_predictions(x)
    np.testing.assert_allclose(anchors.asnumpy().reshape(-1), priors[0, 0], atol=2e-6)
    np.testing.assert_allclose(box_preds.asnumpy().reshape(-1), loc.reshape(-1), atol=2e-4, rtol=1e-4)
    prob = mx.nd.softmax(cls_preds, axis=-1).asnumpy().reshape(-1)
    np.testing.assert_allclose(prob, conf.reshape(-1), atol=2e-5)
    # Detections through the detector users run (hybridized, MKLDNN on the CPU).
    detector = Detector(net, config, thresh=0.01)
    (found,) = detector.detect([image[:, :, ::-1]])
    ours = np.array([[d.class_id, d.score, *np.divide(d.bbox, SIDE)] for d in found]).reshape(-1, 6)
    parity = match_detections(opencv_detections(dets), ours, thresh=0.3, score_tol=2e-3, min_iou=0.97)
    assert parity.ok, parity.summary()
    assert len(parity.pairs) >= 3, parity.summary()


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_types_equal_opencv(case, image, tmp_path):
    prototxt, twin, caffemodel = make_case(ssd_prototxt(CASES[case]), image, tmp_path)
    convert(prototxt, caffemodel, tmp_path / "ours")
    config = json.loads((tmp_path / "ours-config.json").read_text())
    assert config["network"] == "caffe" and config["layout"]["format"] == "caffe-graph"
    check_against_opencv(tmp_path / "ours", twin, caffemodel, image)


@pytest.mark.parametrize("case", sorted(PRIOR_CASES))
def test_priorbox_options_equal_opencv(case, image, tmp_path):
    body, priors = PRIOR_CASES[case]
    prototxt, twin, caffemodel = make_case(ssd_prototxt(body, priors), image, tmp_path)
    convert(prototxt, caffemodel, tmp_path / "ours")
    check_against_opencv(tmp_path / "ours", twin, caffemodel, image)


def test_batchnorm_kept_on_request(image, tmp_path):
    """--no-fold-batch-norm keeps BatchNorm (with its Scale merged) as a layer: same outputs."""
    prototxt, twin, caffemodel = make_case(ssd_prototxt(CASES["batchnorm_scale_folded"]), image, tmp_path)
    convert(prototxt, caffemodel, tmp_path / "kept", "--no-fold-batch-norm")
    layers = json.loads((tmp_path / "kept-config.json").read_text())["layout"]["layers"]
    kinds = {l["name"]: (l["type"], l["params"]) for l in layers}
    assert kinds["bn"][0] == "BatchNorm" and kinds["bn"][1]["scale"] and kinds["bn"][1]["bias"]
    assert "sc" not in kinds  # merged into the BatchNorm
    check_against_opencv(tmp_path / "kept", twin, caffemodel, image)
    convert(prototxt, caffemodel, tmp_path / "folded")
    layers = json.loads((tmp_path / "folded-config.json").read_text())["layout"]["layers"]
    assert {l["type"] for l in layers} & {"BatchNorm", "Scale"} == set()
