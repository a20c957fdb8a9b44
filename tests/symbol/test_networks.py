"""Every SSD network family end to end: output shapes and prior counts, Caffe's prior
order, hybridized == imperative, export + SymbolBlock import, pretrained bases,
input sizes, preprocessing."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from symbol import get_model, network_names
from symbol.presets import PRESETS

NUM_CLASSES = 3

# Priors of each preset, derived by hand: sum over the sources of H * W * priors per
# location (4 with one extra ratio, 6 with two; 3 where there is no max size).
EXPECTED_PRIORS = {
    ("vgg16_reduced", 300): 8732,  # 38²·4 + 19²·6 + 10²·6 + 5²·6 + 3²·4 + 1²·4
    ("vgg16_reduced", 512): 24564,  # 64²·4 + 32²·6 + 16²·6 + 8²·6 + 4²·6 + 2²·4 + 1²·4
    ("mobilenet", 300): 1917,  # 19²·3 + 10²·6 + 5²·6 + 3²·6 + 2²·6 + 1²·6
    ("mobilenet", 512): 6132,  # 32²·4 + 16²·6 + 8²·6 + 4²·6 + 2²·4 + 1²·4
    ("resnet50", 512): 6132,  # 32²·4 + 16²·6 + 8²·6 + 4²·6 + 2²·4 + 1²·4
    ("resnet50_v2", 512): 6132,  # 32²·4 + 16²·6 + 8²·6 + 4²·6 + 2²·4 + 1²·4
    ("inceptionv3", 512): 5186,  # 30²·4 + 14²·6 + 7²·6 + 4²·6 + 2²·4 + 1²·4
    ("ssdlite_mobilenetv2", 320): 3234,  # (20² + 10² + 5² + 3² + 2² + 1²)·6
}

# One small configuration per network family (fast on CPU).
SMALL = {
    "vgg16_reduced": (300, {}),
    "resnet50": (256, {}),
    "resnet50_v2": (256, {}),
    "inceptionv3": (256, {}),
    "mobilenet": (300, {"multiplier": 0.25}),
    "ssdlite_mobilenetv2": (320, {"multiplier": 0.25}),
}


def _pixels(size: int, batch: int = 1, seed: int = 0) -> mx.nd.NDArray:
    rng = np.random.RandomState(seed)
    return mx.nd.array(rng.uniform(0, 255, (batch, 3, size, size)))


def _build(name: str, size: int, seed: int = 0, **kwargs):
    mx.random.seed(seed)
    np.random.seed(seed)
    return get_model(name, size, NUM_CLASSES, **kwargs)


def _caffe_priors(cx: float, cy: float, min_size: float, max_size: float | None,
                  ratios: tuple[float, ...], side: float) -> np.ndarray:
    """Caffe PriorBox at one location (flip on, clip off): min, sqrt(min * max), then
    each ratio r followed by 1 / r; corners normalized by the image side."""
    boxes = [(min_size, min_size)]
    if max_size is not None:
        s = math.sqrt(min_size * max_size)
        boxes.append((s, s))
    for r in ratios:
        boxes.append((min_size * math.sqrt(r), min_size / math.sqrt(r)))
        boxes.append((min_size / math.sqrt(r), min_size * math.sqrt(r)))
    return np.array([[(cx - w / 2) / side, (cy - h / 2) / side, (cx + w / 2) / side, (cy + h / 2) / side]
                     for w, h in boxes])


def test_expected_priors_cover_every_preset():
    assert set(EXPECTED_PRIORS) == {(n, s) for n in PRESETS for s in PRESETS[n]}
    assert set(SMALL) == set(network_names())


# ---------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name,size", sorted(EXPECTED_PRIORS))
def test_preset_output_shapes(name, size):
    n = EXPECTED_PRIORS[(name, size)]
    net = _build(name, size)
    x = _pixels(size)
    with autograd.train_mode():
        cls_preds, box_preds, anchors = net(x)
    assert cls_preds.shape == (1, n, NUM_CLASSES + 1)
    assert box_preds.shape == (1, n * 4)
    assert anchors.shape == (1, n, 4)
    dets = net(x).asnumpy()
    assert dets.shape == (1, 200, 6)
    valid = dets[0, :, 0] >= 0
    assert valid.any()
    assert np.all(dets[0, valid, 0] < NUM_CLASSES)
    assert np.all(dets[0, ~valid] == -1)


def test_vgg300_priors_in_caffe_order():
    net = _build("vgg16_reduced", 300)
    with autograd.train_mode():
        anchors = net(_pixels(300))[2].asnumpy()[0]
    # conv4_3 (38x38, step 8): min 30, max 60, ratio 2; locations (0, 0) then (0, 1).
    np.testing.assert_allclose(anchors[0:4], _caffe_priors(4, 4, 30, 60, (2,), 300), atol=1e-6)
    np.testing.assert_allclose(anchors[4:8], _caffe_priors(12, 4, 30, 60, (2,), 300), atol=1e-6)
    # Second row of conv4_3 starts after 38 locations.
    np.testing.assert_allclose(anchors[38 * 4:38 * 4 + 4], _caffe_priors(4, 12, 30, 60, (2,), 300),
                               atol=1e-6)
    # fc7 (19x19, step 16): min 60, max 111, ratios 2 and 3.
    start = 38 * 38 * 4
    np.testing.assert_allclose(anchors[start:start + 6], _caffe_priors(8, 8, 60, 111, (2, 3), 300),
                               atol=1e-6)
    # conv9_2 (1x1, step 300): min 264, max 315, ratio 2; not clipped.
    np.testing.assert_allclose(anchors[-4:], _caffe_priors(150, 150, 264, 315, (2,), 300), atol=1e-6)
    assert anchors[-2, 2] > 1.0


def test_ssdlite_priors_in_caffe_order():
    net = _build("ssdlite_mobilenetv2", 320, multiplier=0.25)
    with autograd.train_mode():
        anchors = net(_pixels(320))[2].asnumpy()[0]
    # block13 (20x20, step 16): min 48, max 100, ratios 2 and 3.
    np.testing.assert_allclose(anchors[0:6], _caffe_priors(8, 8, 48, 100, (2, 3), 320), atol=1e-6)
    np.testing.assert_allclose(anchors[6:12], _caffe_priors(24, 8, 48, 100, (2, 3), 320), atol=1e-6)
    np.testing.assert_allclose(anchors[-6:], _caffe_priors(160, 160, 304, 320, (2, 3), 320), atol=1e-6)


def _mxnet_ssd_priors(cx: float, cy: float, sizes: tuple[float, ...], ratios: tuple[float, ...]) -> np.ndarray:
    """MultiBoxPrior at one location (normalized): each size with ratio 1, then each
    ratio with the first size."""
    boxes = [(s, s) for s in sizes] + [(sizes[0] * math.sqrt(r), sizes[0] / math.sqrt(r)) for r in ratios]
    return np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] for w, h in boxes])


@pytest.mark.parametrize("name", ["resnet50_v2", "inceptionv3"])
def test_mxnet_ssd_priors(name):
    """mxnet-ssd's get_scales(0.2, 0.9, 6) sizes, the square roots in single precision, and
    steps of image size / feature size."""
    net = _build(name, 512)
    with autograd.train_mode():
        anchors = net(_pixels(512))[2].asnumpy()[0]
    first = 32 if name == "resnet50_v2" else 30  # first source's map side
    c = 0.5 / first
    np.testing.assert_allclose(anchors[0:4], _mxnet_ssd_priors(c, c, (0.1, 0.14142136), (2, 0.5)), atol=1e-6)
    np.testing.assert_allclose(anchors[4:8], _mxnet_ssd_priors(3 * c, c, (0.1, 0.14142136), (2, 0.5)),
                               atol=1e-6)
    start = first * first * 4
    side = 16 if name == "resnet50_v2" else 14
    np.testing.assert_allclose(anchors[start:start + 6],
                               _mxnet_ssd_priors(0.5 / side, 0.5 / side, (0.2, 0.2720294), (2, 0.5, 3, 1 / 3)),
                               atol=1e-6)
    np.testing.assert_allclose(anchors[-4:], _mxnet_ssd_priors(0.5, 0.5, (0.88, 0.9612492), (2, 0.5)), atol=1e-6)


def _batch_norms(block) -> list:
    found = []
    block.apply(lambda b: found.append(b) if isinstance(b, gluon.nn.BatchNorm) else None)
    return found


def _poolings(block) -> list[tuple[str, str]]:
    """(pool_type, node name) of every Pooling node in the block's graph, in order."""
    import json

    graph = json.loads(mx.sym.Group(block(mx.sym.var("data"))).tojson())
    return [(n["attrs"]["pool_type"], n["name"]) for n in graph["nodes"] if n["op"] == "Pooling"]


def test_inceptionv3_is_mxnet_ssds():
    """Fixed-gamma BN with epsilon 1e-3 after every conv, no conv bias, a max pool in
    mixed_10's pool branch, mxnet-ssd's extra layers (128 filters in the last 1x1)."""
    net = _build("inceptionv3", 256)
    bns = _batch_norms(net.backbone)
    assert len(bns) == 94
    assert all(b._kwargs["fix_gamma"] and b._kwargs["eps"] == 1e-3 for b in bns)
    assert all(p.grad_req == "null" for b in bns for p in [b.gamma])
    convs = [p for k, p in net.backbone._collect_params_with_prefix().items() if k.endswith(".0.weight")]
    assert len(convs) == 94 and not any(k.endswith("bias") for k in net.backbone._collect_params_with_prefix())
    pools = _poolings(net.backbone)
    assert [t for t, _ in pools].count("max") == 5 and [t for t, _ in pools].count("avg") == 8
    assert pools[-1][0] == "max" and pools[-2][0] == "avg"  # mixed_10's, then mixed_9's
    assert [e[0].weight.shape[0] for e in [block[0] for block in net.extras]] == [256, 128, 128, 128]
    assert "mixed_10.tower_1_mixed_conv_1.1.running_var" in net.backbone._collect_params_with_prefix()


def test_resnet50_v2_is_mxnet_ssds():
    """bn_data with a fixed gamma and a learned beta, BN epsilon 2e-5, 16 bottleneck units
    with a 1x1 shortcut conv in the first of each stage."""
    net = _build("resnet50_v2", 256)
    backbone = net.backbone
    assert backbone.bn_data._kwargs["fix_gamma"] and backbone.bn_data.gamma.grad_req == "null"
    assert backbone.bn_data.beta.grad_req == "write"
    bns = _batch_norms(backbone)
    assert len(bns) == 2 + 16 * 3
    assert all(b._kwargs["eps"] == 2e-5 for b in bns)
    assert sum(b._kwargs["fix_gamma"] for b in bns) == 1
    params = backbone._collect_params_with_prefix()
    assert sorted(k for k in params if k.endswith("sc.weight")) == [
        f"stage{s}_unit1.sc.weight" for s in (1, 2, 3, 4)]
    assert params["stage3_unit1.conv2.weight"].shape == (256, 256, 3, 3)
    assert backbone.stage3_unit1.conv2._kwargs["stride"] == (2, 2)
    assert backbone.stage3_unit1.conv1._kwargs["stride"] == (1, 1)
    assert [e[0].weight.shape[0] for e in [block[0] for block in net.extras]] == [256, 128, 128, 128]


# ---------------------------------------------------------------------------- graph
@pytest.mark.parametrize("name,size,kwargs", [
    ("vgg16_reduced", 300, {}),
    ("mobilenet", 300, {"multiplier": 0.25}),
    ("mobilenet", 512, {"multiplier": 0.25}),
    ("ssdlite_mobilenetv2", 320, {"multiplier": 0.25}),
])
def test_hybridized_equals_imperative(name, size, kwargs):
    net = _build(name, size, **kwargs)
    x = _pixels(size, batch=1 if name == "vgg16_reduced" else 2)
    imperative_dets = net(x).asnumpy()
    with autograd.train_mode():
        imperative_raw = [o.asnumpy() for o in net(x)]
    net.hybridize(static_alloc=True, static_shape=True)
    hybrid_dets = net(x).asnumpy()
    with autograd.train_mode():
        hybrid_raw = [o.asnumpy() for o in net(x)]
    np.testing.assert_allclose(hybrid_dets, imperative_dets, rtol=1e-5, atol=1e-5)
    for h, i in zip(hybrid_raw, imperative_raw):
        np.testing.assert_allclose(h, i, rtol=1e-4, atol=1e-5)


def test_mode_switch_on_hybridized_net():
    net = _build("mobilenet", 300, multiplier=0.25)
    x = _pixels(300)
    net.hybridize()
    first = net(x).asnumpy()
    assert first.shape == (1, 200, 6)
    with autograd.train_mode():
        raw = net(x)
    assert isinstance(raw, (list, tuple)) and len(raw) == 3
    assert raw[0].shape == (1, 1917, NUM_CLASSES + 1)
    again = net(x)
    assert not isinstance(again, (list, tuple))
    np.testing.assert_array_equal(again.asnumpy(), first)
    with autograd.train_mode():
        raw_again = net(x)
    np.testing.assert_array_equal(raw_again[1].asnumpy(), raw[1].asnumpy())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_export_then_import_gives_same_detections(name, tmp_path):
    size, kwargs = SMALL[name]
    net = _build(name, size, **kwargs)
    prefix = str(tmp_path / name)
    net.export(prefix)
    imported = gluon.SymbolBlock.imports(f"{prefix}-symbol.json", ["data"], f"{prefix}-0000.params")
    x = _pixels(size, seed=1)
    expected = net(x).asnumpy()
    np.testing.assert_allclose(imported(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_exported_graph_loads_without_project_code(tmp_path):
    size, kwargs = SMALL["ssdlite_mobilenetv2"]
    net = _build("ssdlite_mobilenetv2", size, **kwargs)
    prefix = str(tmp_path / "ssdlite")
    net.export(prefix)
    x = _pixels(size, seed=2)
    np.save(tmp_path / "x.npy", x.asnumpy())
    np.save(tmp_path / "expected.npy", net(x).asnumpy())
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import mxnet as mx
        net = mx.gluon.SymbolBlock.imports({prefix + '-symbol.json'!r}, ['data'],
                                           {prefix + '-0000.params'!r})
        out = net(mx.nd.array(np.load({str(tmp_path / 'x.npy')!r}))).asnumpy()
        np.testing.assert_allclose(out, np.load({str(tmp_path / 'expected.npy')!r}), rtol=1e-5, atol=1e-5)
        assert not any(m == 'symbol' or m.startswith(('symbol.', 'gluoncv')) for m in sys.modules)
    """)
    # Run from tmp_path so that the repository's ``symbol`` package is not importable by path.
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------- sizes and names
@pytest.mark.parametrize("name,size,kwargs,n,first", [
    # conv4_3 50x50, fc7 25x25, extras 13, 7, 5, 3: 50²·4 + 25²·6 + 13²·6 + 7²·6 + 5²·4 + 3²·4.
    # First prior: min 30 of 300 (0.1 of the image), centred in the first of 50 cells.
    ("vgg16_reduced", 400, {}, 15194, (0.5 / 50, 0.1)),
    # conv11 16x16, conv13 8x8, extras 4, 2, 1, 1: 16²·3 + (8² + 4² + 2² + 1 + 1)·6.
    # First prior: min 60 of 300 (0.2 of the image), centred in the first of 16 cells.
    ("mobilenet", 256, {"multiplier": 0.25}, 1284, (0.5 / 16, 0.2)),
])
def test_non_preset_data_shape_scales_sizes(name, size, kwargs, n, first):
    net = _build(name, size, **kwargs)
    with autograd.train_mode():
        cls_preds, box_preds, anchors = net(_pixels(size))
    assert cls_preds.shape == (1, n, NUM_CLASSES + 1)
    assert anchors.shape == (1, n, 4)
    centre, width = first
    box = anchors[0, 0].asnumpy()
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, (centre, centre), atol=1e-6)
    np.testing.assert_allclose(box[2:] - box[:2], (width, width), atol=1e-6)
    assert net(_pixels(size)).shape == (1, 200, 6)


@pytest.mark.parametrize("size", [16, 160])
def test_too_small_data_shape_raises(size):
    with pytest.raises(ValueError, match="data_shape"):
        get_model("vgg16_reduced", size, NUM_CLASSES)


def test_unknown_network_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_model("resnet5", 512, NUM_CLASSES)
    for name in network_names():
        assert name in str(err.value)


@pytest.mark.parametrize("num_classes", [0, -1])
def test_num_classes_must_be_positive(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        get_model("mobilenet", 300, num_classes, multiplier=0.25)


@pytest.mark.parametrize("name", ["vgg16_reduced", "resnet50", "resnet50_v2", "inceptionv3", "mobilenet",
                                  "ssdlite_mobilenetv2"])
def test_unknown_backbone_option_raises(name):
    size = SMALL[name][0]
    with pytest.raises(ValueError, match="depth"):
        get_model(name, size, NUM_CLASSES, depth=3)


def test_mobilenetv2_multiplier_must_be_positive():
    with pytest.raises(ValueError, match="multiplier"):
        get_model("ssdlite_mobilenetv2", 320, NUM_CLASSES, multiplier=0.0)


def test_ssdlite_uses_mmdetection_bn_and_relu6():
    net = _build("ssdlite_mobilenetv2", 320, multiplier=0.25)
    layers = []

    def collect(block):
        layers.append(block)

    net.apply(collect)  # backbone, extras and heads
    bns = [b for b in layers if isinstance(b, gluon.nn.BatchNorm)]
    assert len(bns) > 60
    assert all(b._kwargs["eps"] == 1e-3 and b._kwargs["momentum"] == 0.97 for b in bns)
    assert any(type(b).__name__ == "ReLU6" for b in layers)
    assert net.backbone.source_channels == (24, 1280)


# ---------------------------------------------------------------------------- pretrained bases
def _zoo_classifier(name: str):
    """A randomly initialized model-zoo classifier of each backbone, and the number of its
    ``features`` layers the SSD backbone uses."""
    if name == "resnet50":
        from mxnet.gluon.model_zoo.vision import resnet50_v1
        return resnet50_v1(), 8, 64
    if name == "mobilenet":
        from mxnet.gluon.model_zoo.vision import mobilenet1_0
        return mobilenet1_0(), 81, 64
    from gluoncv.model_zoo.mobilenet import MobileNetV2
    return MobileNetV2(1.0), 23, 64


PRETRAINED = {
    "resnet50": (512, {}),
    "resnet50_v2": (512, {}),
    "inceptionv3": (512, {}),
    "mobilenet": (300, {"batch_norm": True}),
    "ssdlite_mobilenetv2": (320, {}),
}
# Backbones whose pretrained base is a file saved from the backbone block itself.
OWN_FORMAT_BASES = ("resnet50_v2", "inceptionv3")


@pytest.mark.parametrize("name", sorted(set(PRETRAINED) - set(OWN_FORMAT_BASES)))
def test_pretrained_base_weights_are_loaded(name, tmp_path):
    mx.random.seed(3)
    classifier, n_layers, side = _zoo_classifier(name)
    classifier.initialize()
    classifier(mx.nd.zeros((1, 3, side, side)))  # finish the deferred shapes
    for p in classifier.collect_params().values():  # also randomize the BN statistics
        p.set_data(mx.nd.random.uniform(0.5, 1.5, p.shape))
    path = tmp_path / f"{name}.params"
    classifier.save_parameters(str(path))

    size, kwargs = PRETRAINED[name]
    net = get_model(name, size, NUM_CLASSES, pretrained_base=str(path), **kwargs)
    expected = [p for layer in list(classifier.features)[:n_layers] for p in layer.collect_params().values()]
    actual = list(net.backbone.collect_params().values())
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.name.split("_", 1)[1] == e.name.split("_", 1)[1]
        np.testing.assert_array_equal(a.data().asnumpy(), e.data().asnumpy())


@pytest.mark.parametrize("name", OWN_FORMAT_BASES)
def test_pretrained_base_saved_from_the_backbone_is_loaded(name, tmp_path):
    mx.random.seed(3)
    size, kwargs = PRETRAINED[name]
    donor = get_model(name, size, NUM_CLASSES, **kwargs).backbone
    for p in donor.collect_params().values():  # also randomize the BN statistics
        p.set_data(mx.nd.random.uniform(0.5, 1.5, p.shape))
    path = tmp_path / f"{name}.params"
    donor.save_parameters(str(path))
    net = get_model(name, size, NUM_CLASSES, pretrained_base=str(path), **kwargs)
    expected = donor._collect_params_with_prefix()
    actual = net.backbone._collect_params_with_prefix()
    assert sorted(actual) == sorted(expected)
    for key, p in actual.items():
        np.testing.assert_array_equal(p.data().asnumpy(), expected[key].data().asnumpy())


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_missing_pretrained_base_raises(name, tmp_path):
    size, kwargs = PRETRAINED[name]
    missing = tmp_path / "nowhere.params"
    with pytest.raises(FileNotFoundError, match="nowhere.params"):
        get_model(name, size, NUM_CLASSES, pretrained_base=str(missing), **kwargs)


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_wrong_pretrained_base_raises(name, tmp_path):
    size, kwargs = PRETRAINED[name]
    other = gluon.nn.Dense(2, in_units=2)
    other.initialize()
    wrong = tmp_path / "dense.params"
    other.save_parameters(str(wrong))
    with pytest.raises(ValueError, match="dense.params"):
        get_model(name, size, NUM_CLASSES, pretrained_base=str(wrong), **kwargs)
    garbage = tmp_path / "garbage.params"
    garbage.write_bytes(b"not a parameter file")
    with pytest.raises(ValueError, match="garbage.params"):
        get_model(name, size, NUM_CLASSES, pretrained_base=str(garbage), **kwargs)


# ---------------------------------------------------------------------------- preprocessing
R, G, B = 200.0, 100.0, 50.0
# Each preset's normalization of the RGB pixel (R, G, B), written out by hand.
_CAFFE_VGG = (B - 104, G - 117, R - 123)
_CAFFE_MOBILENET = ((B - 127.5) * 0.007843, (G - 127.5) * 0.007843, (R - 127.5) * 0.007843)
_IMAGENET = ((R - 123.675) / 58.395, (G - 116.28) / 57.12, (B - 103.53) / 57.375)
_MXNET_SSD = (R - 123, G - 117, B - 104)
EXPECTED_PREPROCESSED = {
    ("vgg16_reduced", 300): _CAFFE_VGG,
    ("vgg16_reduced", 512): _CAFFE_VGG,
    ("mobilenet", 300): _CAFFE_MOBILENET,
    ("mobilenet", 512): _IMAGENET,
    ("resnet50", 512): _IMAGENET,
    ("resnet50_v2", 512): _MXNET_SSD,
    ("inceptionv3", 512): _MXNET_SSD,
    ("ssdlite_mobilenetv2", 320): _IMAGENET,
}


def test_vgg_preprocess_is_caffe_bgr_mean():
    net = _build("vgg16_reduced", 300)
    pixel = mx.nd.array([123.0, 117.0, 104.0]).reshape((1, 3, 1, 1))
    np.testing.assert_allclose(net.preprocess(pixel).asnumpy().ravel(), (0, 0, 0), atol=1e-6)


@pytest.mark.parametrize("name,size", sorted(EXPECTED_PREPROCESSED))
def test_preset_preprocessing_is_applied(name, size):
    assert set(EXPECTED_PREPROCESSED) == set(EXPECTED_PRIORS)
    kwargs = SMALL[name][1] if name != "vgg16_reduced" else {}
    net = _build(name, size, **kwargs)
    pixel = mx.nd.array([R, G, B]).reshape((1, 3, 1, 1))
    np.testing.assert_allclose(net.preprocess(pixel).asnumpy().ravel(),
                               EXPECTED_PREPROCESSED[(name, size)], rtol=1e-5, atol=1e-5)


def test_preprocess_override():
    net = get_model("mobilenet", 300, NUM_CLASSES, multiplier=0.25,
                    preprocess={"mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0], "bgr": False})
    pixel = mx.nd.array([R, G, B]).reshape((1, 3, 1, 1))
    np.testing.assert_allclose(net.preprocess(pixel).asnumpy().ravel(), (R / 255, G / 255, B / 255),
                               rtol=1e-6)
    assert net.build_args["preprocess"]["std"] == [255.0] * 3


def test_export_after_shape_inference_only(tmp_path):
    """A hybridized net whose graph was only traced for shapes still exports its weights."""
    net = _build("mobilenet", 300, multiplier=0.25)
    net.hybridize()
    net.infer_shape(mx.nd.zeros((1, 3, 300, 300)))
    prefix = str(tmp_path / "m")
    net.export(prefix)
    assert len(mx.nd.load(prefix + "-0000.params")) == len(list(net.collect_params().keys()))
    imported = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"], prefix + "-0000.params")
    x = _pixels(300)
    np.testing.assert_array_equal(imported(x).asnumpy(), net(x).asnumpy())


def test_raw_predictions_match_training_outputs_without_batch_norm():
    net = _build("mobilenet", 300, multiplier=0.25, batch_norm=False)
    net.hybridize()
    x = _pixels(300, batch=2)
    with autograd.train_mode():
        expected = net(x)
    with autograd.predict_mode():
        got = net.raw_predictions(x)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-5)
