"""tools.model_converters.mmdet on checkpoints with mmdetection's real parameter names and shapes.

mmdetection cannot run here. The state dicts are built from the names and
shapes of real mmdetection 3.3.0 models (``tests/fixtures/mmdet``), filled
with random values, and written in both of ``torch.save``'s formats by
``torch_files.save_pth``. The references are independent of the converter:

- which of our parameters took which array is found by value (every array is
  unique), undoing the background rotation with this file's own rule;
- the priors are mmdetection's ``SSDAnchorGenerator`` rule written out in
  NumPy here, and the priors real mmdetection generated (the fixture);
- the end-to-end test predicts what a head whose class convolutions hold
  only biases must detect, from those priors.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
from collections import Counter, OrderedDict
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from dataset.coco import COCO_CLASSES
from symbol.checkpoint import load_checkpoint
from tools.model_converters.mmdet import main as convert_main
from tools.model_converters.mmdet_models import MODELS, config_conflicts, read_config_text
from tools.model_converters.mmdet_weights import upgrade_ssd_name

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mmdet"
NAMES = {m: [(n, tuple(s)) for n, s in json.loads((FIXTURES / f"{m}.names.json").read_text())]
         for m in ("ssd300_coco", "ssd512_coco", "ssdlite_mobilenetv2_coco", "ssd300_coco_old")}
REAL_ANCHORS = json.loads((FIXTURES / "anchors.json").read_text())
SIDE = {"ssd300_coco": 300, "ssd512_coco": 512, "ssdlite_mobilenetv2_coco": 320}
MMDET_DECODING = {"nms_mode": "mmdet", "thresh": 0.02, "nms_thresh": 0.45, "nms_topk": 1000, "keep_topk": 200,
                  "force_suppress": False}


def _torch_files():
    """torch_files.py beside this file (test modules are not importable by name)."""
    spec = importlib.util.spec_from_file_location("torch_files", Path(__file__).with_name("torch_files.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch_files = _torch_files()


# ---------------------------------------------------------------------- checkpoints
def random_state(kind: str, seed: int = 0) -> "OrderedDict[str, np.ndarray]":
    """A state dict of ``kind``'s real names and shapes: He-scaled convolutions, positive
    variances, small biases, so that activations stay finite through the network."""
    rng = np.random.default_rng(seed)
    out: OrderedDict = OrderedDict()
    for name, shape in NAMES[kind]:
        if name.endswith("num_batches_tracked"):
            out[name] = np.array(1000, np.int64)
        elif name.endswith("running_var"):
            out[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif len(shape) == 4:
            out[name] = (rng.standard_normal(shape) * math.sqrt(2.0 / math.prod(shape[1:]))).astype(np.float32)
        else:
            out[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return out


def write_checkpoint(path: Path, state: dict, meta: dict | None = None, legacy: bool = False) -> Path:
    """``{'meta': meta, 'state_dict': state}`` as torch.save writes it."""
    obj = {"state_dict": state} if meta is None else {"meta": meta, "state_dict": state}
    return torch_files.save_pth(obj, path, legacy=legacy)


def meta_v3(classes=COCO_CLASSES) -> dict:
    """An mmengine checkpoint's meta (mmdetection 3)."""
    return {"mmengine_version": "0.10.7", "epoch": 24, "iter": 1000,
            "dataset_meta": {"classes": tuple(classes), "palette": [(220, 20, 60)] * len(classes)}}


def meta_v2(classes=COCO_CLASSES) -> dict:
    """An mmdetection 2 checkpoint's meta."""
    return {"mmdet_version": "2.13.0", "CLASSES": tuple(classes), "epoch": 24}


# (kind, names, format, meta) of the checkpoints converted once for several tests
CASES = {
    "ssd300_coco": ("ssd300_coco", True, meta_v3),
    "ssd512_coco": ("ssd512_coco", False, meta_v3),
    "ssdlite_mobilenetv2_coco": ("ssdlite_mobilenetv2_coco", True, meta_v3),
    "ssdlite_zip": ("ssdlite_mobilenetv2_coco", False, None),
    "ssd300_coco_old": ("ssd300_coco_old", True, meta_v2),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """``get(case) -> (prefix, state, stdout)``: the case's checkpoint converted by the CLI, once."""
    root = tmp_path_factory.mktemp("mmdet")
    cache: dict = {}

    def get(case: str):
        if case not in cache:
            kind, legacy, meta = CASES[case]
            state = random_state(kind, seed=len(cache))
            pth = write_checkpoint(root / f"{case}.pth", state, meta() if meta else None, legacy=legacy)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert convert_main([str(pth), str(root / case)]) == 0
            cache[case] = (root / case, state, out.getvalue())
        return cache[case]
    return get


# ---------------------------------------------------------------------- mmdetection's priors, in NumPy
def mmdet_prior_sizes(input_size: int, basesize_ratio_range: tuple[float, float], levels: int):
    """SSDAnchorGenerator's sizes from ``basesize_ratio_range``: whole percents from the low
    to the high ratio in ``int((high - low) / (levels - 2))`` steps, each size
    ``int(input_size * percent / 100)``, then a first level of 7 / 15 percent (SSD300
    COCO) or 4 / 10 percent (SSD512 COCO)."""
    low, high = int(basesize_ratio_range[0] * 100), int(basesize_ratio_range[1] * 100)
    step = int(math.floor(high - low) / (levels - 2))
    mins = [int(input_size * r / 100) for r in range(low, high + 1, step)]
    maxs = [int(input_size * (r + step) / 100) for r in range(low, high + 1, step)]
    first = {(300, 0.15): (7, 15), (512, 0.1): (4, 10)}[(input_size, basesize_ratio_range[0])]
    return [int(input_size * first[0] / 100)] + mins, [int(input_size * first[1] / 100)] + maxs


def mmdet_anchors(strides, ratios, mins, maxs, featmaps) -> list[np.ndarray]:
    """Per level ``(H * W * A, 4)`` priors in pixels, ``x1, y1, x2, y2``: per location (row-major)
    the scale-1 ratio-1 box, the ``sqrt(max / min)`` one, then ratios ``1/r, r`` (height over
    width) per ratio; centres at ``stride / 2 + stride * index``."""
    levels = []
    for stride, level_ratios, low, high, (h, w) in zip(strides, ratios, mins, maxs, featmaps):
        shapes = [(low, low), (math.sqrt(low * high),) * 2]
        for r in level_ratios:
            shapes += [(low * math.sqrt(r), low / math.sqrt(r)), (low / math.sqrt(r), low * math.sqrt(r))]
        base = np.array([[stride / 2 - bw / 2, stride / 2 - bh / 2, stride / 2 + bw / 2, stride / 2 + bh / 2]
                         for bw, bh in shapes])
        ys, xs = np.meshgrid(np.arange(h) * stride, np.arange(w) * stride, indexing="ij")
        shift = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], axis=-1)
        levels.append((shift[:, None, :] + base[None]).reshape(-1, 4))
    return levels


def reference_anchors(kind: str) -> list[np.ndarray]:
    model = MODELS[kind]
    levels = REAL_ANCHORS[kind]["levels"]
    preset = model.preset
    if model.basesize_ratio_range is not None:
        mins, maxs = mmdet_prior_sizes(preset.data_shape, model.basesize_ratio_range, preset.num_sources)
    else:  # SSDLite's config gives them
        mins, maxs = [48, 100, 150, 202, 253, 304], [100, 150, 202, 253, 304, 320]
    ratios = {"ssd300_coco": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
              "ssd512_coco": [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]],
              "ssdlite_mobilenetv2_coco": [[2, 3]] * 6}[kind]
    return mmdet_anchors([lv["stride"][0] for lv in levels], ratios, mins, maxs, [lv["featmap"] for lv in levels])


def test_prior_sizes_are_mmdetections_truncated_integers():
    assert mmdet_prior_sizes(300, (0.15, 0.9), 6) == ([21, 45, 99, 153, 207, 261], [45, 99, 153, 207, 261, 315])
    assert mmdet_prior_sizes(512, (0.1, 0.9), 7) == ([20, 51, 133, 215, 296, 378, 460],
                                                    [51, 133, 215, 296, 378, 460, 542])
    for kind in ("ssd300_coco", "ssd512_coco"):
        preset = MODELS[kind].preset
        assert (list(preset.min_sizes), list(preset.max_sizes)) == mmdet_prior_sizes(
            preset.data_shape, MODELS[kind].basesize_ratio_range, preset.num_sources)


@pytest.mark.parametrize("kind", sorted(SIDE))
def test_numpy_rule_reproduces_real_mmdetection_priors(kind):
    """The rule above against SSDAnchorGenerator's own output (samples of every level)."""
    ours = reference_anchors(kind)
    for level, (real, mine) in enumerate(zip(REAL_ANCHORS[kind]["levels"], ours, strict=True)):
        a = real["priors_per_location"]
        assert real["count"] == len(mine), level
        np.testing.assert_allclose(mine[:a], real["first"], atol=2e-5, err_msg=f"level {level}")
        np.testing.assert_allclose(mine[-a:], real["last"], atol=2e-5, err_msg=f"level {level}")
        if real["second"] is not None:
            np.testing.assert_allclose(mine[a:2 * a], real["second"], atol=2e-5, err_msg=f"level {level}")


@pytest.mark.parametrize("case", ["ssd300_coco", "ssd512_coco", "ssdlite_mobilenetv2_coco"])
def test_converted_priors_equal_mmdetections(case, converted):
    prefix, _, _ = converted(case)
    net, config = load_checkpoint(prefix, 0)
    side = SIDE[case]
    assert config.data_shape == side
    with autograd.predict_mode():
        anchors = net.raw_predictions(mx.nd.zeros((1, 3, side, side)))[2].asnumpy()[0]
    reference = reference_anchors(case)
    assert len(anchors) == sum(len(r) for r in reference)
    start = 0
    for level, ref in enumerate(reference):
        np.testing.assert_allclose(anchors[start:start + len(ref)], ref / side, rtol=0, atol=1e-6,
                                   err_msg=f"level {level}")
        start += len(ref)


# ---------------------------------------------------------------------- weights
def background_last(ours: np.ndarray, num_classes: int) -> np.ndarray:
    """Our class convolution's outputs (per prior: background, class 0, 1, ...) in
    mmdetection's order (per prior: class 0, 1, ..., background)."""
    per_prior = ours.reshape(-1, num_classes + 1, *ours.shape[1:])
    return np.concatenate([per_prior[:, 1:], per_prior[:, :1]], axis=1).reshape(ours.shape)


def sources_by_value(params: dict, state: dict, num_classes: int = 80) -> dict[str, str]:
    """For each of our parameters, the mmdetection array holding the same values."""
    by_value = {np.ascontiguousarray(v, np.float32).tobytes(): k for k, v in state.items()
                if not k.endswith("num_batches_tracked")}
    assert len(by_value) == sum(not k.endswith("num_batches_tracked") for k in state), "values not unique"
    found = {}
    for name, value in params.items():
        if re.fullmatch(r"class_heads\.\d+\.(1\.)?(weight|bias)", name):
            value = background_last(value, num_classes)
        found[name] = by_value.get(np.ascontiguousarray(value, np.float32).tobytes())
    return found


#: Pairs read off the two architectures (mmcv's VGG16 features: conv4_3 is 21, fc6 31, fc7
#: 33; MobileNetV2's layer5 ends at our block13 source), checked by value below.
SPOT_CHECKS = {
    "ssd300_coco": {"backbone.stages.0.0.0.weight": "backbone.features.0.weight",
                    "backbone.stages.3.2.0.weight": "backbone.features.21.weight",
                    "backbone.stages.4.2.0.bias": "backbone.features.28.bias",
                    "backbone.fc6.0.weight": "backbone.features.31.weight",
                    "backbone.fc7.0.bias": "backbone.features.33.bias",
                    "extras.3.1.0.weight": "neck.extra_layers.3.1.conv.weight",
                    "norms.0.scale": "neck.l2_norm.weight",
                    "class_heads.0.weight": "bbox_head.cls_convs.0.0.weight",
                    "box_heads.5.bias": "bbox_head.reg_convs.5.0.bias"},
    "ssd512_coco": {"extras.4.1.0.weight": "neck.extra_layers.4.1.conv.weight",
                    "class_heads.6.bias": "bbox_head.cls_convs.6.0.bias"},
    "ssd300_coco_old": {"extras.0.0.0.weight": "backbone.extra.0.weight",
                        "extras.2.1.0.bias": "backbone.extra.5.bias",
                        "extras.3.1.0.weight": "backbone.extra.7.weight",
                        "norms.0.scale": "backbone.l2_norm.weight",
                        "class_heads.3.bias": "bbox_head.cls_convs.3.bias",
                        "box_heads.2.weight": "bbox_head.reg_convs.2.weight"},
    "ssdlite_mobilenetv2_coco": {
        "backbone.stages.0.0.weight": "backbone.conv1.conv.weight",
        "backbone.stages.0.1.gamma": "backbone.conv1.bn.weight",
        "backbone.stages.0.3.out.3.weight": "backbone.layer1.0.linear_conv.conv.weight",
        "backbone.stages.0.15.out.7.running_var": "backbone.layer5.2.linear_conv.bn.running_var",
        "backbone.stages.1.0.out.0.weight": "backbone.layer6.0.expand_conv.conv.weight",
        "backbone.stages.1.4.weight": "backbone.conv2.conv.weight",
        "backbone.stages.1.5.beta": "backbone.conv2.bn.bias",
        "extras.1.1.0.0.weight": "neck.extra_layers.1.1.depthwise_conv.conv.weight",
        "extras.3.1.1.1.running_mean": "neck.extra_layers.3.1.pointwise_conv.bn.running_mean",
        "class_heads.2.0.1.gamma": "bbox_head.cls_convs.2.0.bn.weight",
        "class_heads.5.1.weight": "bbox_head.cls_convs.5.1.weight",
        "box_heads.0.1.bias": "bbox_head.reg_convs.0.1.bias"},
}


@pytest.mark.parametrize("case", ["ssd300_coco", "ssd512_coco", "ssdlite_mobilenetv2_coco", "ssd300_coco_old"])
def test_every_array_used_once_and_every_parameter_set(case, converted):
    prefix, state, out = converted(case)
    params = {k: v.asnumpy() for k, v in mx.nd.load(f"{prefix}-0000.params").items()}
    found = sources_by_value(params, state)
    unset = sorted(k for k, v in found.items() if v is None)
    assert not unset, f"parameters of ours set from no array: {unset[:5]}"
    uses = Counter(found.values())
    assert max(uses.values()) == 1
    assert set(uses) == {k for k in state if not k.endswith("num_batches_tracked")}
    for mine, theirs in SPOT_CHECKS[case].items():
        assert found[mine] == theirs, mine
    assert f"parameters: {len(params)} converted" in out


def test_background_channel_moves_first_for_every_prior(converted):
    """A class bias marking each channel (prior * 1000 + channel) arrives rotated per prior."""
    prefix, state, _ = converted("ssd300_coco")
    params = mx.nd.load(f"{prefix}-0000.params")
    theirs = state["bbox_head.cls_convs.1.0.bias"]
    ours = params["class_heads.1.bias"].asnumpy()
    assert ours.shape == (6 * 81,)
    for prior in range(6):
        np.testing.assert_array_equal(ours[prior * 81], theirs[prior * 81 + 80])  # background
        np.testing.assert_array_equal(ours[prior * 81 + 1:prior * 81 + 81], theirs[prior * 81:prior * 81 + 80])


def test_head_biases_detect_where_mmdetection_would(tmp_path):
    """Class convolutions reduced to their biases and zero box offsets: what mmdetection
    would detect follows from the priors alone. On the 1x1 last level of SSDLite, prior 3
    (ratio 2, tall) says class 17 and prior 1 (the sqrt(min * max) square) class 3; every
    other prior says background."""
    state = random_state("ssdlite_mobilenetv2_coco", seed=5)
    for level in range(6):
        for kind in ("cls", "reg"):
            state[f"bbox_head.{kind}_convs.{level}.1.weight"][:] = 0.0
        state[f"bbox_head.reg_convs.{level}.1.bias"][:] = 0.0
        bias = state[f"bbox_head.cls_convs.{level}.1.bias"]
        bias[:] = 0.0
        bias[80::81] = 10.0  # background (last of each prior's 81)
    last = state["bbox_head.cls_convs.5.1.bias"]
    last[3 * 81 + 80], last[3 * 81 + 17] = 0.0, 10.0
    last[1 * 81 + 80], last[1 * 81 + 3] = 0.0, 9.0
    pth = write_checkpoint(tmp_path / "lite.pth", state, meta_v3())
    assert convert_main([str(pth), str(tmp_path / "lite")]) == 0
    net, _ = load_checkpoint(tmp_path / "lite", 0)
    image = mx.nd.array(np.random.default_rng(0).uniform(0, 255, (1, 3, 320, 320)))
    with autograd.predict_mode():
        rows = net(image).asnumpy()[0]
    rows = rows[rows[:, 0] >= 0]
    priors = reference_anchors("ssdlite_mobilenetv2_coco")[5] / 320.0
    expected = np.array([[17, math.exp(10) / (math.exp(10) + 80), *np.clip(priors[3], 0, 1)],
                         [3, math.exp(9) / (math.exp(9) + 80), *np.clip(priors[1], 0, 1)]])
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-5)


def test_old_names_are_renamed_as_upgrade_ssd_version_does():
    """mmdetection's rule: ``*extra*`` by the third component, ``*l2_norm*``, and ``.0``
    inserted after the 21st character of ``*bbox_head*``."""
    assert upgrade_ssd_name("backbone.extra.0.weight") == "neck.extra_layers.0.0.conv.weight"
    assert upgrade_ssd_name("backbone.extra.7.bias") == "neck.extra_layers.3.1.conv.bias"
    assert upgrade_ssd_name("backbone.extra.9.weight") == "neck.extra_layers.4.1.conv.weight"
    assert upgrade_ssd_name("backbone.l2_norm.weight") == "neck.l2_norm.weight"
    assert upgrade_ssd_name("bbox_head.cls_convs.5.weight") == "bbox_head.cls_convs.5.0.weight"
    assert upgrade_ssd_name("bbox_head.reg_convs.0.bias") == "bbox_head.reg_convs.0.0.bias"
    assert upgrade_ssd_name("backbone.features.21.weight") == "backbone.features.21.weight"
    new = {n for n, _ in NAMES["ssd300_coco"]}
    assert {upgrade_ssd_name(n) for n, _ in NAMES["ssd300_coco_old"]} == new


# ---------------------------------------------------------------------- the checkpoint's config
@pytest.mark.parametrize("case", ["ssd300_coco", "ssd512_coco", "ssdlite_mobilenetv2_coco", "ssd300_coco_old"])
def test_config_records_input_layout_decoding_and_names(case, converted):
    prefix, _, out = converted(case)
    config = json.loads(Path(f"{prefix}-config.json").read_text())
    kind = case.replace("_old", "")
    assert config["data_shape"] == SIDE[kind]
    assert config["nms"] == MMDET_DECODING
    assert config["class_names"] == list(COCO_CLASSES)
    assert "the checkpoint's names" in out
    if kind == "ssdlite_mobilenetv2_coco":
        assert config["network"] == "ssdlite_mobilenetv2"
        assert config["preprocess"] == {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
                                        "bgr": False}
        assert "layout" not in config  # the preset table is mmdetection's
    else:
        assert config["network"] == "vgg16_reduced"
        assert config["preprocess"] == {"mean": [123.675, 116.28, 103.53], "std": [1.0, 1.0, 1.0], "bgr": False}
        sizes = mmdet_prior_sizes(SIDE[kind], MODELS[kind].basesize_ratio_range, MODELS[kind].num_levels)
        layout = config["layout"]
        assert (layout["min_sizes"], layout["max_sizes"]) == sizes
        assert layout["preprocess"] == config["preprocess"]
        assert layout["normalization"][0] == 20.0
    if case == "ssd300_coco_old":
        assert "names upgraded from before mmdetection 2.14" in out and "saved by mmdetection 2.13.0" in out


def test_class_names_default_to_coco_and_can_be_given(converted, tmp_path, capsys):
    prefix, _, out = converted("ssdlite_zip")  # no meta
    assert json.loads(Path(f"{prefix}-config.json").read_text())["class_names"] == list(COCO_CLASSES)
    assert "default names" in out
    state = random_state("ssdlite_mobilenetv2_coco", seed=9)
    own = [f"part{i}" for i in range(80)]
    pth = write_checkpoint(tmp_path / "own.pth", state, meta_v3(own))
    assert convert_main([str(pth), str(tmp_path / "own")]) == 0
    assert json.loads((tmp_path / "own-config.json").read_text())["class_names"] == own
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"given{i}" for i in range(80)) + "\n")
    assert convert_main([str(pth), str(tmp_path / "given"), "--class-names", str(names)]) == 0
    assert json.loads((tmp_path / "given-config.json").read_text())["class_names"][79] == "given79"


SSD300_V2_CONFIG = """model = dict(
    type='SingleStageDetector',
    backbone=dict(type='SSDVGG', depth=16, with_last_pool=False, ceil_mode=True, out_indices=(3, 4),
                  out_feature_indices=(22, 34)),
    neck=dict(type='SSDNeck', in_channels=(512, 1024), out_channels=(512, 1024, 512, 256, 256, 256),
              level_strides=(2, 2, 1, 1), level_paddings=(1, 1, 0, 0), l2_norm_scale=20),
    bbox_head=dict(
        type='SSDHead',
        in_channels=(512, 1024, 512, 256, 256, 256),
        num_classes=80,
        anchor_generator=dict(
            type='SSDAnchorGenerator',
            scale_major=False,
            input_size=300,
            basesize_ratio_range=(0.15, 0.9),
            strides=[8, 16, 32, 64, 100, 300],
            ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]])),
    test_cfg=dict(
        nms_pre=1000,
        nms=dict(type='nms', iou_threshold=0.45),
        min_bbox_size=0,
        score_thr=0.02,
        max_per_img=200))
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[1, 1, 1], to_rgb=True)
"""

#: mmengine's pretty_text lays lists out one item per line.
SSDLITE_V3_CONFIG = """input_size = 320
model = dict(
    bbox_head=dict(
        anchor_generator=dict(
            max_sizes=[
                100,
                150,
                202,
                253,
                304,
                320,
            ],
            min_sizes=[
                48,
                100,
                150,
                202,
                253,
                304,
            ],
            scale_major=False,
            strides=[
                16,
                32,
                64,
                107,
                160,
                320,
            ],
            type='SSDAnchorGenerator'),
        type='SSDHead'),
    data_preprocessor=dict(
        bgr_to_rgb=True,
        mean=[
            123.675,
            116.28,
            103.53,
        ],
        std=[
            58.395,
            57.12,
            57.375,
        ],
        type='DetDataPreprocessor'),
    test_cfg=dict(
        max_per_img=100,
        min_bbox_size=0,
        nms=dict(iou_threshold=0.5, type='nms'),
        nms_pre=1000,
        score_thr=0.05),
    type='SingleStageDetector')
"""


def test_config_text_is_read_as_plain_values():
    v2 = read_config_text(SSD300_V2_CONFIG)
    assert (v2.input_size, v2.basesize_ratio_range, v2.strides) == (300, (0.15, 0.9), (8, 16, 32, 64, 100, 300))
    assert (v2.mean, v2.std, v2.nms_type) == ((123.675, 116.28, 103.53), (1, 1, 1), "nms")
    assert v2.test_cfg.score_thr == 0.02 and v2.test_cfg.iou_threshold == 0.45 and v2.test_cfg.nms_pre == 1000
    assert config_conflicts(v2, MODELS["ssd300_coco"]) == []
    assert len(config_conflicts(v2, MODELS["ssd512_coco"])) == 3
    v3 = read_config_text(SSDLITE_V3_CONFIG)
    assert v3.min_sizes == (48, 100, 150, 202, 253, 304) and v3.std == (58.395, 57.12, 57.375)
    assert (v3.test_cfg.max_per_img, v3.test_cfg.score_thr, v3.test_cfg.iou_threshold) == (100, 0.05, 0.5)
    assert config_conflicts(v3, MODELS["ssdlite_mobilenetv2_coco"]) == []
    assert read_config_text("model = dict(type='SSD')").test_cfg is None


def test_the_checkpoints_own_test_cfg_is_its_decoding(tmp_path):
    state = random_state("ssdlite_mobilenetv2_coco", seed=3)
    pth = write_checkpoint(tmp_path / "cfg.pth", state, {**meta_v3(), "cfg": SSDLITE_V3_CONFIG})
    assert convert_main([str(pth), str(tmp_path / "cfg")]) == 0
    nms = json.loads((tmp_path / "cfg-config.json").read_text())["nms"]
    assert nms == {**MMDET_DECODING, "thresh": 0.05, "nms_thresh": 0.5, "keep_topk": 100}


def test_a_config_of_other_anchors_needs_model(tmp_path, capsys, caplog):
    """SSD300 VOC's anchors (basesize_ratio_range 0.2) are not ssd300_coco's: refused,
    converted as ssd300_coco when --model says so."""
    voc = SSD300_V2_CONFIG.replace("(0.15, 0.9)", "(0.2, 0.9)")
    pth = write_checkpoint(tmp_path / "voc.pth", random_state("ssd300_coco"), {**meta_v2(), "config": voc},
                           legacy=True)
    assert convert_main([str(pth), str(tmp_path / "voc")]) == 1
    err = capsys.readouterr().err
    assert "basesize_ratio_range (config (0.2, 0.9), ssd300_coco's (0.15, 0.9))" in err and "--model" in err
    assert not list(tmp_path.glob("voc-*"))
    assert convert_main([str(pth), str(tmp_path / "voc"), "--model", "ssd300_coco"]) == 0
    assert "converting as --model ssd300_coco says" in caplog.text


def test_a_checkpoint_of_mmengines_runner_converts(tmp_path, capsys):
    """A checkpoint saved during training by mmengine's Runner holds objects of other
    classes beside the weights (HistoryBuffer, NumPy scalars): skipped, never run, and
    its meta's class names still read."""
    marker = tmp_path / "pwned"
    names = [f"thing{i}" for i in range(80)]
    meta = meta_v3(names)
    meta["seed"] = np.int64(7)  # pickled by NumPy as numpy.core.multiarray.scalar
    meta["hook"] = torch_files.Call("os", "system", (f"touch '{marker}'",))
    obj = {"meta": meta, "state_dict": random_state("ssdlite_mobilenetv2_coco"),
           "message_hub": {"log_scalars": {"train/loss": torch_files.Call(
               "mmengine.logging.history_buffer", "HistoryBuffer", (), {"max_length": 10, "_log_history": [0.5]})}}}
    pth = torch_files.save_pth(obj, tmp_path / "epoch_24.pth")
    assert convert_main([str(pth), str(tmp_path / "model")]) == 0
    assert "80 classes (the checkpoint's names)" in capsys.readouterr().out
    config = json.loads((tmp_path / "model-config.json").read_text())
    assert config["class_names"] == names
    assert not marker.exists()


# ---------------------------------------------------------------------- bad input
def _faster_rcnn(path: Path) -> Path:
    rng = np.random.default_rng(0)
    state = {n: rng.standard_normal(s).astype(np.float32) for n, s in (
        ("backbone.conv1.weight", (64, 3, 7, 7)), ("backbone.bn1.weight", (64,)),
        ("backbone.layer1.0.conv1.weight", (64, 64, 1, 1)), ("neck.lateral_convs.0.conv.weight", (256, 256, 1, 1)),
        ("rpn_head.rpn_conv.weight", (256, 256, 3, 3)), ("roi_head.bbox_head.fc_cls.weight", (81, 1024)))}
    return write_checkpoint(path, state, meta_v3())


def _truncated(path: Path) -> Path:
    full = write_checkpoint(path, random_state("ssdlite_mobilenetv2_coco"), meta_v3())
    data = full.read_bytes()
    full.write_bytes(data[:len(data) // 2])
    return full


def _unknown_global(path: Path) -> Path:
    state = random_state("ssdlite_mobilenetv2_coco")
    state["bbox_head.cls_convs.0.1.bias"] = torch_files.Call("os", "system", ("echo pwned",))
    return write_checkpoint(path, state, meta_v3())


def _meta_classes_mismatch(path: Path) -> Path:
    return write_checkpoint(path, random_state("ssdlite_mobilenetv2_coco"), meta_v3(COCO_CLASSES[:79]))


def _missing_parameter(path: Path) -> Path:
    state = random_state("ssdlite_mobilenetv2_coco")
    del state["backbone.layer3.1.depthwise_conv.bn.running_mean"]
    return write_checkpoint(path, state, meta_v3())


def _head_disagrees(path: Path) -> Path:
    state = random_state("ssdlite_mobilenetv2_coco")
    state["bbox_head.cls_convs.2.1.weight"] = np.zeros((6 * 21, 512, 1, 1), np.float32)
    return write_checkpoint(path, state, meta_v3())


def _not_pytorch(path: Path) -> Path:
    path.write_text('{"state_dict": {}}\n')
    return path


def _ssdlite(path: Path) -> Path:
    return write_checkpoint(path, random_state("ssdlite_mobilenetv2_coco"), meta_v3())


BAD = {
    "missing file": (lambda p: p, [], "no such file"),
    "truncated": (_truncated, [], ".pth: "),
    "not PyTorch": (_not_pytorch, [], "not a PyTorch checkpoint"),
    "Faster R-CNN": (_faster_rcnn, [], "is not an mmdetection SSD with a VGG16 or MobileNetV2 backbone"),
    "unknown global": (_unknown_global, [], "state_dict['bbox_head.cls_convs.0.1.bias'] is not a tensor (os.system)"),
    "meta classes": (_meta_classes_mismatch, [], "its meta lists 79 class names but its class head has 80"),
    "given classes": (_ssdlite, ["--class-names", "a,b,c"], "3 class names given but"),
    "wrong --model": (_ssdlite, ["--model", "ssd300_coco"], "not ssd300_coco's"),
    "missing parameter": (_missing_parameter, [], "lacks 1 parameter(s) of the model: "
                                                  "backbone.layer3.1.depthwise_conv.bn.running_mean"),
    "head disagrees": (_head_disagrees, [], "disagree on the number of classes (20, 80)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_file_and_nothing_is_written(case, tmp_path, capsys):
    make, flags, message = BAD[case]
    pth = make(tmp_path / "model.pth")
    out = tmp_path / "out" / "model"
    assert convert_main([str(pth), str(out), *flags]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmdet: error: "), captured.err
    assert message in lines[0]
    if case != "given classes":
        assert str(pth) in lines[0]
    assert not (tmp_path / "out").exists()
    assert captured.out == ""
