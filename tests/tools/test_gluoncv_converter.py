"""tools.model_converters.gluoncv on GluonCV's own SSD networks: the converted checkpoint
detects what GluonCV's forward detects, on real photos, and its anchors are GluonCV's.

The references are GluonCV's model-zoo networks themselves
(``gluoncv.model_zoo.get_model(name, pretrained=False, pretrained_base=False)``)
with seeded random weights, saved with ``save_parameters`` as GluonCV saves
its models:

- every convolution He-initialized (normal, std ``sqrt(2 / fan_in)``), so that
  the photos' content reaches the heads;
- every BatchNorm given random statistics, gammas and betas; in the extra
  layers (``FeatureExpander``'s ``mx.sym.BatchNorm``: epsilon 1e-3, gamma
  fixed at 1) the convolutions are scaled by 0.03 and the variances by 0.03²,
  so that the epsilon weighs as much as the variance, and the stored gammas
  are not 1: a conversion that ignored either would not match;
- the heads calibrated on the photos (:func:`calibrate_heads`): class logits
  centred per channel and scaled to a standard deviation of 2, box offsets to
  0.5, and the background logit raised as far as leaves every photo at least
  5 (anchor, class) pairs scoring 0.3 or more, so that several detections
  survive NMS.

GluonCV gets each photo as its transforms make it (RGB / 255, minus ImageNet's
mean, over its std), ours the same resized RGB pixels. GluonCV's boxes are
pixel corners of the network input, not clipped; ours are normalized corners
clipped to [0, 1]: GluonCV's are compared divided by the input side and
clipped to [0, 1].
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import mxnet as mx
import numpy as np
import pytest

from common.images import load_image
from dataset.coco import COCO_CLASSES
from dataset.voc import VOC_CLASSES
from evaluate.parity import match_detections
from symbol.checkpoint import load_checkpoint
from tools.model_converters.gluoncv import main as convert_main
from tools.model_converters.gluoncv_weights import EXPANDER_BN, GLUON_BN, BatchNormSettings, carry_batch_norm
from tools.model_converters.gluoncv_zoo import supported_names

gluoncv = pytest.importorskip("gluoncv")

REPO = Path(__file__).resolve().parents[2]
THRESH, SCORE_TOL, MIN_IOU = 0.3, 2e-3, 0.97
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
#: The extra layers' convolutions and BatchNorm statistics scale (see the module docstring).
EXTRA_SCALE = 0.03
#: Photos per model (GluonCV's and our forward of the 512 VGG16 and ResNet-50 take ~1 s each);
#: the seed of each model's weights is its index here.
PHOTOS = {"ssd_300_vgg16_atrous_coco": 1, "ssd_300_vgg16_atrous_voc": 3, "ssd_512_mobilenet1.0_coco": 1,
          "ssd_512_mobilenet1.0_voc": 7, "ssd_512_resnet50_v1_coco": 1, "ssd_512_resnet50_v1_voc": 2,
          "ssd_512_vgg16_atrous_coco": 1, "ssd_512_vgg16_atrous_voc": 1}
#: GluonCV's first prior sizes (its presets.py) where they are not the preset table's.
OWN_SIZES = {"ssd_300_vgg16_atrous_coco": [21, 45, 99, 153, 207, 261],
             "ssd_512_vgg16_atrous_voc": [51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8],
             "ssd_512_vgg16_atrous_coco": [51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8],
             "ssd_512_resnet50_v1_coco": [51.2, 133.12, 215.04, 296.96, 378.88, 460.8]}
#: GluonCV's input, (x / 255 - mean) / std, times std * 255 for VGG16 (init_scale), on RGB pixels.
VGG_INPUT = {"mean": [123.675, 116.28, 103.53], "std": [1.0, 1.0, 1.0], "bgr": False}
IMAGENET_INPUT = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "bgr": False}
GLUONCV_NMS = {"nms_thresh": 0.45, "nms_topk": 400, "keep_topk": 100, "thresh": 0.01, "force_suppress": False,
               "nms_mode": "gluoncv"}


class Reference(NamedTuple):
    """A saved GluonCV model and what GluonCV computes on its photos."""

    name: str
    side: int
    params: Path
    images: list[Path]
    pixels: np.ndarray  # (N, 3, side, side) float32 RGB 0..255, the photos resized
    detections: list[np.ndarray]  # per photo (M, 6) [class, score, x1, y1, x2, y2] normalized, clipped
    feature_shapes: list[tuple[int, int]]  # (H, W) of every source
    anchors: np.ndarray  # (N_anchors, 4) GluonCV's anchors as normalized corners
    classes: tuple[str, ...]


def resized_pixels(paths: list[Path], side: int) -> np.ndarray:
    """The photos as demo.py feeds them: RGB, warp-resized (bilinear) to ``side``, NCHW float32."""
    images = [cv2.resize(load_image(p), (side, side), interpolation=cv2.INTER_LINEAR) for p in paths]
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)


def gluoncv_input(pixels: np.ndarray) -> mx.nd.NDArray:
    """GluonCV's transform of RGB pixels: ``(x / 255 - mean) / std``."""
    return mx.nd.array((pixels / 255.0 - MEAN[:, None, None]) / STD[:, None, None])


def randomize(net, rng: np.random.Generator) -> None:
    """He-initialized convolutions, random BatchNorms; the extra layers scaled (module docstring)."""
    for key, p in net._collect_params_with_prefix().items():
        extra = ".expand_" in key
        shape = p.shape

        def uniform(lo: float, hi: float) -> np.ndarray:
            return rng.uniform(lo, hi, shape).astype(np.float32)

        if key.endswith("weight") and len(shape) == 4:
            std = np.sqrt(2.0 / np.prod(shape[1:])) * (EXTRA_SCALE if extra else 1.0)
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        elif key.endswith("bias"):
            value = uniform(-0.1, 0.1)
        elif key.endswith("gamma"):  # ignored by GluonCV in the extra layers (fix_gamma)
            value = uniform(0.5, 1.5) if extra else uniform(0.8, 1.2)
        elif key.endswith("beta"):
            value = uniform(-0.1, 0.1)
        elif key.endswith(("running_mean", "moving_mean")):
            value = uniform(-0.1, 0.1) * (EXTRA_SCALE if extra else 1.0)
        elif key.endswith(("running_var", "moving_var")):
            value = uniform(0.5, 1.5) * (EXTRA_SCALE ** 2 if extra else 1.0)
        else:  # the L2 scale (20), init_scale, anchors: GluonCV's own
            continue
        p.set_data(mx.nd.array(value, dtype=p.dtype))


def calibrate_heads(net, features: list, num_classes: int, logit_std: float = 2.0, box_std: float = 0.5,
                    candidates: int = 5) -> None:
    """Rescale GluonCV's heads in place on the ``features`` of the photos (module docstring)."""
    logits = []
    for feat, cls_head, box_head in zip(features, net.class_predictors, net.box_predictors):
        for head, std in ((cls_head, logit_std), (box_head, box_std)):
            out = head(feat).asnumpy()
            # Per channel where there are several values of it (a 1x1 map of one photo has one).
            mean = out.mean(axis=(0, 2, 3), keepdims=True) if out[:, 0].size > 1 else out.mean()
            alpha = std / float((out - mean).std())
            weight, bias = head.predictor.weight, head.predictor.bias
            weight.set_data(weight.data() * alpha)
            bias.set_data(mx.nd.array((bias.data().asnumpy() - np.ravel(mean)) * alpha))
            if head is cls_head:
                logits.append(((out - mean) * alpha).transpose(0, 2, 3, 1).reshape(len(out), -1, num_classes + 1))
    logits = np.concatenate(logits, axis=1)

    def count(offset: float) -> int:
        """The fewest (anchor, class) pairs of a photo scoring 0.3 or more."""
        z = logits.copy()
        z[..., 0] += offset
        z = np.exp(z - z.max(-1, keepdims=True))
        p = z / z.sum(-1, keepdims=True)
        return int((p[..., 1:] >= THRESH).sum(axis=(1, 2)).min())

    lo, hi = -10.0, 30.0
    for _ in range(40):  # the largest background offset that leaves `candidates` to every photo
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(mid) >= candidates else (lo, mid)
    for head in net.class_predictors:
        bias = head.predictor.bias
        b = bias.data().asnumpy()
        b[::num_classes + 1] += lo
        bias.set_data(mx.nd.array(b))


def gluoncv_detections(net, pixels: np.ndarray) -> list[np.ndarray]:
    """GluonCV's detections of each photo as rows [class, score, x1, y1, x2, y2]: its pixel
    corners divided by the input side and clipped to [0, 1] (as ours are)."""
    side = pixels.shape[-1]
    out = []
    for i in range(len(pixels)):
        ids, scores, boxes = (a.asnumpy()[0] for a in net(gluoncv_input(pixels[i:i + 1])))
        keep = ids[:, 0] >= 0
        rows = np.concatenate([ids[keep], scores[keep], np.clip(boxes[keep] / side, 0.0, 1.0)], axis=1)
        out.append(rows.astype(np.float64))
    return out


def gluoncv_anchors(net, features: list, side: int) -> np.ndarray:
    """GluonCV's anchors (SSDAnchorGenerator: pixel cx, cy, w, h, cropped to each feature
    map) as normalized corners, in the order of its predictions."""
    grids = [gen(feat).asnumpy().reshape(-1, 4) for gen, feat in zip(net.anchor_generators, features)]
    cx, cy, w, h = np.concatenate(grids).astype(np.float64).T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) / side


def gluoncv_model(name: str, seed: int, **kwargs):
    """GluonCV's ``name`` with the random weights of the module docstring (heads not calibrated)."""
    side = int(name.split("_")[1])
    mx.random.seed(seed)
    net = gluoncv.model_zoo.get_model(name, pretrained=False, pretrained_base=False, **kwargs)
    net.initialize()
    net(mx.nd.zeros((1, 3, side, side)))  # finish the deferred shapes
    randomize(net, np.random.default_rng(seed))
    return net


def build_reference(name: str, photos: list[Path], workdir: Path, seed: int = 0, **kwargs) -> Reference:
    """GluonCV's ``name`` with random weights calibrated on ``photos`` (module docstring),
    saved to ``workdir``, and what GluonCV computes on the photos."""
    side = int(name.split("_")[1])
    net = gluoncv_model(name, seed, **kwargs)
    pixels = resized_pixels(photos, side)
    features = net.features(gluoncv_input(pixels))
    calibrate_heads(net, features, len(net.classes))
    workdir.mkdir(parents=True, exist_ok=True)
    params = workdir / f"{name}.params"
    net.save_parameters(str(params))
    return Reference(name, side, params, list(photos), pixels, gluoncv_detections(net, pixels),
                     [tuple(f.shape[2:]) for f in features], gluoncv_anchors(net, features, side),
                     tuple(net.classes))


def our_detections(net, pixels: np.ndarray) -> list[np.ndarray]:
    """A converted network's detections of the pixels, rows [class, score, x1, y1, x2, y2]."""
    out = net(mx.nd.array(pixels)).asnumpy()
    return [d[d[:, 0] >= 0].astype(np.float64) for d in out]


def assert_parity(reference: list[np.ndarray], ours: list[np.ndarray], least: int = 3) -> list[str]:
    """Every photo's detections match; at least ``least`` pairs in all. Returns the summaries.

    Where GluonCV kept its 100 (``post_nms``) and they all score 0.3 or more,
    the cut falls among them and a near-tie there (equal scores to 1e-6) may
    keep either box: the detections are compared above the lowest kept score
    (and the tolerance) instead.
    """
    pairs, summaries = 0, []
    for theirs, mine in zip(reference, ours, strict=True):
        cut = theirs[:, 1].min() + SCORE_TOL if len(theirs) == GLUONCV_NMS["keep_topk"] else 0.0
        parity = match_detections(theirs, mine, thresh=max(THRESH, cut), score_tol=SCORE_TOL, min_iou=MIN_IOU)
        assert parity.ok, parity.summary()
        pairs += len(parity.pairs)
        summaries.append(parity.summary())
    assert pairs >= least, f"only {pairs} detections of {THRESH} or more: too few for a meaningful comparison"
    return summaries


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gluoncv")


@pytest.fixture(scope="module")
def photos(fixtures_dir) -> list[Path]:
    return sorted((fixtures_dir / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def reference(workdir, photos):
    """``get(name)``: the saved GluonCV model ``name`` and what GluonCV computes, built once."""
    cache: dict[str, Reference] = {}

    def get(name: str) -> Reference:
        if name not in cache:
            cache[name] = build_reference(name, photos[:PHOTOS[name]], workdir / name,
                                          seed=list(PHOTOS).index(name))
        return cache[name]
    return get


def run_failing(capsys, *argv) -> str:
    """Run the converter expecting failure; returns its one line on stderr."""
    capsys.readouterr()
    assert convert_main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gluoncv: error: "), err
    return err


# ---------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_detections_and_anchors_equal_gluoncv(name, reference, workdir, capsys):
    ref = reference(name)
    prefix = workdir / "converted" / name
    capsys.readouterr()
    assert convert_main([name, str(ref.params), str(prefix)]) == 0
    printed = capsys.readouterr().out
    assert f"(GluonCV's {name}) at {ref.side}" in printed and "anchors: " in printed

    net, config = load_checkpoint(prefix, 0)
    for summary in assert_parity(ref.detections, our_detections(net, ref.pixels)):
        print(f"parity {name}: {summary}")
    # Our priors at GluonCV's feature-map sizes (the parity above needs the sizes to agree).
    ours = np.concatenate([gen(mx.nd.zeros((1, 1, h, w))).asnumpy()[0]
                           for gen, (h, w) in zip(net.anchor_generators, ref.feature_shapes, strict=True)])
    assert ours.shape == ref.anchors.shape
    np.testing.assert_allclose(ours, ref.anchors, rtol=0, atol=1e-6)

    assert config.network == {"vgg16": "vgg16_reduced", "resnet50": "resnet50", "mobilenet1.0": "mobilenet"}[
        name.split("_")[2]]
    assert config.data_shape == ref.side and config.class_names == ref.classes
    assert config.class_names == (VOC_CLASSES if name.endswith("_voc") else COCO_CLASSES)
    assert config.preprocess.to_dict() == (VGG_INPUT if "vgg16" in name else IMAGENET_INPUT)
    assert dict(config.nms) == GLUONCV_NMS
    if name in OWN_SIZES:
        assert config.layout["min_sizes"] == OWN_SIZES[name] and "its own (min_sizes, max_sizes" in printed
    else:
        assert config.layout is None and "layout: the preset table" in printed


def test_custom_classes_model(photos, workdir, capsys):
    """A ``_custom`` model (GluonCV's transfer learning to one's own classes) converts with
    --class-names and detects as GluonCV does."""
    name = "ssd_512_mobilenet1.0_custom"
    ref = build_reference(name, photos[:1], workdir / name, seed=11, classes=["cat", "dog", "person"])
    prefix = workdir / "converted" / name
    line = run_failing(capsys, name, ref.params, prefix)
    assert "--class-names" in line and "3 classes" in line
    assert convert_main([name, str(ref.params), str(prefix), "--class-names", "cat,dog,person"]) == 0
    net, config = load_checkpoint(prefix, 0)
    assert config.class_names == ("cat", "dog", "person")
    assert_parity(ref.detections, our_detections(net, ref.pixels), least=1)


def test_command_line_and_demo_end_to_end(reference, workdir):
    """As users run them: the converter's command line (--epoch), then demo.py --save-json
    on the photo files; demo.py resizes as GluonCV's input was made above."""
    ref = reference("ssd_512_mobilenet1.0_voc")
    prefix = workdir / "cli" / "mobilenet"
    proc = subprocess.run([sys.executable, "-m", "tools.model_converters.gluoncv", ref.name, str(ref.params),
                           str(prefix), "--epoch", "3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "network: mobilenet (GluonCV's ssd_512_mobilenet1.0_voc) at 512, 20 classes" in proc.stdout
    assert Path(f"{prefix}-0003.params").is_file() and not Path(f"{prefix}-0000.params").exists()
    out = workdir / "cli" / "demo.json"
    proc = subprocess.run([sys.executable, "demo.py", "--prefix", str(prefix), "--epoch", "3", "--images",
                           ",".join(map(str, ref.images)), "--cpu", "--thresh", "0.298", "--save-json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours = []
    for entry in json.loads(out.read_text()):
        w, h = entry["width"], entry["height"]
        rows = [[d["class_id"], d["score"], *np.divide(d["bbox"], [w, h, w, h])] for d in entry["detections"]]
        ours.append(np.array(rows, dtype=np.float64).reshape(-1, 6))
    for summary in assert_parity(ref.detections, ours, least=20):
        print(f"demo.py: {summary}")


# ---------------------------------------------------------------------- batch norms
@pytest.mark.parametrize("target", [GLUON_BN, BatchNormSettings(1e-4, False), EXPANDER_BN])
def test_carried_batch_norm_computes_mxnet_batch_norm(target):
    """carry_batch_norm against MXNet's BatchNorm operator at inference: GluonCV's extra
    layers' (eps 1e-3, gamma fixed) computed by a BatchNorm of other settings."""
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.normal(0, 0.05, (2, 8, 3, 3)))
    gamma, beta = rng.uniform(0.5, 1.5, 8), rng.uniform(-0.1, 0.1, 8)
    mean, var = rng.uniform(-0.01, 0.01, 8), rng.uniform(1e-4, 4e-3, 8)

    def batch_norm(g, settings):
        return mx.nd.BatchNorm(x, *map(mx.nd.array, (g, beta, mean, var)), eps=settings.eps,
                               fix_gamma=settings.fix_gamma, use_global_stats=True).asnumpy()

    want = batch_norm(gamma, EXPANDER_BN)
    assert not np.allclose(want, batch_norm(gamma, GLUON_BN), atol=1e-2)  # settings that matter here
    if target.fix_gamma and target.eps != EXPANDER_BN.eps:
        with pytest.raises(ValueError):
            carry_batch_norm(gamma, var, EXPANDER_BN, target)
        return
    np.testing.assert_allclose(batch_norm(carry_batch_norm(gamma, var, EXPANDER_BN, target), target), want,
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- bad input
def _truncated(ref: Reference, workdir: Path) -> Path:
    data = ref.params.read_bytes()
    path = workdir / "bad" / "truncated.params"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:len(data) // 2])
    return path


def _reshaped(ref: Reference, workdir: Path) -> Path:
    arrays = mx.nd.load(str(ref.params))
    arrays["features.expand_conv1_weight"] = mx.nd.zeros((512, 256, 3, 3))
    path = workdir / "bad" / "reshaped.params"
    path.parent.mkdir(parents=True, exist_ok=True)
    mx.nd.save(str(path), arrays)
    return path


def _unnamed(ref: Reference, workdir: Path) -> Path:
    path = workdir / "bad" / "unnamed.params"
    path.parent.mkdir(parents=True, exist_ok=True)
    mx.nd.save(str(path), [mx.nd.zeros(3)])
    return path


MOBILENET = "ssd_512_mobilenet1.0_voc"
BAD = {
    # case: (model name, params (from the reference models), flags, what the one line says)
    "not an SSD": ("faster_rcnn_resnet50_v1b_voc", lambda r, w: r(MOBILENET).params, [],
                   ["'faster_rcnn_resnet50_v1b_voc' is not a supported GluonCV SSD", *supported_names()]),
    "YOLO": ("yolo3_darknet53_voc", lambda r, w: r(MOBILENET).params, [], ["ssd_512_resnet50_v1_coco"]),
    "unknown SSD": ("ssd_300_foo", lambda r, w: r(MOBILENET).params, [], ["ssd_300_vgg16_atrous_voc"]),
    "another network": ("ssd_512_resnet50_v1_voc", lambda r, w: r(MOBILENET).params, [],
                        [f"{MOBILENET}.params does not hold GluonCV's ssd_512_resnet50_v1_voc but GluonCV's "
                         f"mobilenet1.0 SSD with 6 sources and 20 classes"]),
    "another size": ("ssd_512_vgg16_atrous_voc", lambda r, w: r("ssd_300_vgg16_atrous_voc").params, [],
                     ["ssd_300_vgg16_atrous_voc.params does not hold GluonCV's ssd_512_vgg16_atrous_voc but "
                      "GluonCV's vgg16_atrous SSD with 6 sources and 20 classes: 9 of its parameters missing "
                      "(anchor_generators.6.anchors"]),
    "another dataset": ("ssd_512_resnet50_v1_coco", lambda r, w: r("ssd_512_resnet50_v1_voc").params, [],
                        ["detects 20 classes, not COCO's 80", "--class-names"]),
    "another model's anchors": ("ssd_512_resnet50_v1_coco", lambda r, w: r("ssd_512_resnet50_v1_voc").params,
                                ["--class-names", ",".join(VOC_CLASSES)],
                                ["the anchors of source 0 are not GluonCV's ssd_512_resnet50_v1_coco's"]),
    "another shape": (MOBILENET, lambda r, w: _reshaped(r(MOBILENET), w), [],
                      ["reshaped.params does not hold", "features.expand_conv1_weight has shape (512, 256, 3, 3) "
                       "where GluonCV's ssd_512_mobilenet1.0_voc has (512, 512, 3, 3)"]),
    "truncated params": (MOBILENET, lambda r, w: _truncated(r(MOBILENET), w), [],
                         ["cannot read params file", "truncated.params"]),
    "unnamed arrays": (MOBILENET, lambda r, w: _unnamed(r(MOBILENET), w), [],
                       ["unnamed.params is not a GluonCV params file"]),
    "class names": (MOBILENET, lambda r, w: r(MOBILENET).params, ["--class-names", "cat,dog"],
                    ["2 class names given but", f"{MOBILENET}.params detects 20 classes"]),
    "missing file": (MOBILENET, lambda r, w: w / "nowhere.params", [], ["no such file", "nowhere.params"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(case, reference, workdir, capsys):
    name, params, flags, messages = BAD[case]
    out = workdir / "out" / case.replace(" ", "_")
    line = run_failing(capsys, name, params(reference, workdir), out, *flags)
    assert all(m in line for m in messages), line
    assert not out.parent.exists() or not list(out.parent.glob(out.name + "*"))
