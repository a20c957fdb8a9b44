"""symbol.caffe_graph: the layout, Caffe's shape arithmetic, the in-graph PriorBox, the network block."""
from __future__ import annotations

import copy

import mxnet as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mxnet import autograd

from symbol import get_model
from symbol.caffe_graph import (GraphError, PriorBox, _pooling_convention, conv_output, infer_shapes, parse_layout,
                                pool_output, prior_sizes)
from symbol.checkpoint import load_checkpoint, read_config, save_checkpoint
from tools.caffe_converter import caffe_pb2
from tools.caffe_converter.priors import caffe_priors

SIDE = 48


def conv(name, bottom, out, kernel=3, pad=1, stride=1):
    return {"name": name, "type": "Convolution", "bottom": [bottom], "top": [name],
            "params": {"num_output": out, "kernel": [kernel, kernel], "stride": [stride, stride], "pad": [pad, pad],
                       "dilation": [1, 1], "group": 1, "bias": True}}


def simple(name, kind, bottom, top=None, **params):
    bottom = [bottom] if isinstance(bottom, str) else bottom
    return {"name": name, "type": kind, "bottom": bottom, "top": [top or name], "params": params}


PRIOR = dict(min_sizes=[10.0], max_sizes=[20.0], aspect_ratios=[2.0], flip=True, clip=False,
             variances=[0.1, 0.1, 0.2, 0.2], img_h=0, img_w=0, step_h=0.0, step_w=0.0, offset=0.5)


def tiny_layout(classes: int = 3) -> dict:
    """One source (a 3x3 conv, stride 2, ReLU), 4 priors a location, ``classes`` with the background."""
    layers = [conv("c1", "data", 8, stride=2), simple("r1", "ReLU", "c1", negative_slope=0.0),
              conv("loc", "r1", 16), simple("loc_perm", "Permute", "loc", order=[0, 2, 3, 1]),
              simple("loc_flat", "Flatten", "loc_perm", axis=1, end_axis=-1),
              conv("conf", "r1", 4 * classes), simple("conf_perm", "Permute", "conf", order=[0, 2, 3, 1]),
              simple("conf_flat", "Flatten", "conf_perm", axis=1, end_axis=-1),
              simple("pb", "PriorBox", ["r1", "data"], **PRIOR)]
    return {"format": "caffe-graph", "version": 1, "input": "data", "layers": layers,
            "outputs": {"loc": "loc_flat", "conf": "conf_flat", "priors": "pb"}, "class_heads": ["conf"],
            "num_classes": classes}


# ---------------------------------------------------------------------- Caffe's arithmetic
def test_caffe_output_sizes():
    assert conv_output(300, 3, 1, 6, dilation=6) == 300  # fc6
    assert pool_output(75, 2, 2, 0) == 38  # SSD300's pool3: Caffe rounds up
    assert pool_output(150, 3, 2, 0) == 75  # the face detector's conv1_pool
    assert pool_output(5, 2, 2, 1) == 3  # the last window would start in the padding: dropped
    assert pool_output(19, 3, 1, 1) == 19


@pytest.mark.parametrize("size,kernel,stride,pad,convention", [
    (75, 2, 2, 0, "full"), (150, 2, 2, 0, "valid"), (5, 2, 2, 1, "valid"), (150, 3, 2, 0, "full")])
def test_pooling_convention_matches_caffe(size, kernel, stride, pad, convention):
    layer = parse_layout({**tiny_layout(), "layers": tiny_layout()["layers"] + [simple(
        "p", "Pooling", "r1", pool="max", kernel=[kernel, kernel], stride=[stride, stride], pad=[pad, pad],
        **{"global": False})]}).layers[-1]
    out = pool_output(size, kernel, stride, pad)
    assert _pooling_convention(layer, (1, 8, size, size), (1, 8, out, out)) == convention
    x = mx.nd.random.uniform(shape=(1, 2, size, size))
    y = mx.nd.Pooling(x, kernel=(kernel,) * 2, stride=(stride,) * 2, pad=(pad,) * 2, pool_type="max",
                      pooling_convention=convention)
    assert y.shape[2:] == (out, out)


# ---------------------------------------------------------------------- PriorBox
@pytest.mark.filterwarnings("ignore:The 1-th input to HybridBlock is not used")  # img_size fixes the image size
@settings(max_examples=40, deadline=None)
@given(mins=st.lists(st.integers(2, 40), min_size=1, max_size=2), with_max=st.booleans(),
       ratios=st.lists(st.sampled_from([2.0, 3.0, 0.5, 1.0]), max_size=3), flip=st.booleans(), clip=st.booleans(),
       feature=st.tuples(st.integers(1, 7), st.integers(1, 7)), image=st.tuples(st.integers(20, 90), st.integers(20, 90)),
       step=st.sampled_from([0.0, 4.0, 9.5]), offset=st.sampled_from([0.5, 0.0, 0.25]),
       img_size=st.sampled_from([0, 64]), fractional=st.booleans())
def test_prior_box_equals_caffe(mins, with_max, ratios, flip, clip, feature, image, step, offset, img_size,
                                fractional):
    """The graph's PriorBox against a NumPy transcription of Caffe's prior_box_layer.cpp, which truncates
    min and max sizes to integers."""
    mins = [m + (0.7 if fractional else 0.0) for m in mins]
    maxs = [m * 1.6 + 1 for m in mins] if with_max else []
    proto = caffe_pb2.PriorBoxParameter(min_size=mins, max_size=maxs, aspect_ratio=ratios, flip=flip, clip=clip,
                                        offset=offset, variance=[0.1, 0.1, 0.2, 0.2])
    if step:
        proto.step = step
    if img_size:
        proto.img_size = img_size
    expected = caffe_priors(proto, feature, image)
    params = dict(PRIOR, min_sizes=mins, max_sizes=maxs, aspect_ratios=ratios, flip=flip, clip=clip, offset=offset,
                  step_h=step, step_w=step, img_h=img_size, img_w=img_size)
    feat, img = mx.nd.zeros((1, 2) + feature), mx.nd.zeros((1, 3) + image)
    block = PriorBox(params)
    block.initialize()
    out = block(feat, img).asnumpy()
    assert out.shape == (1, 2, expected.size)
    np.testing.assert_allclose(out[0, 0], expected.reshape(-1), atol=2e-6)
    np.testing.assert_allclose(out[0, 1], np.tile([0.1, 0.1, 0.2, 0.2], len(expected)), atol=1e-7)
    assert len(prior_sizes(params)) * feature[0] * feature[1] == len(expected)
    block.hybridize()  # the symbolic graph computes the same
    np.testing.assert_allclose(block(feat, img).asnumpy(), out, atol=1e-7)


# ---------------------------------------------------------------------- layouts
@pytest.mark.parametrize("change,message", [
    (lambda l: l.update(format="other"), "not a Caffe graph layout"),
    (lambda l: l.update(version=7), "version 7"),
    (lambda l: l["layers"][1].update(type="LRN"), "'r1' (LRN): unsupported layer type 'LRN'"),
    (lambda l: l["layers"][2].update(bottom=["nowhere"]), "'loc' (Convolution): reads blob 'nowhere'"),
    (lambda l: l.update(class_heads=["ghost"]), "class head 'ghost' is not a layer"),
    (lambda l: l["outputs"].update(conf="missing"), "conf output blob 'missing'"),
    (lambda l: l["layers"].append(l["layers"][0]), "'c1' (Convolution): a second layer of this name"),
    (lambda l: l.pop("layers"), "malformed Caffe graph layout"),
])
def test_bad_layouts_are_named(change, message):
    layout = copy.deepcopy(tiny_layout())
    change(layout)
    with pytest.raises(GraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_model("caffe", SIDE, 2, layout=layout)


@pytest.mark.parametrize("layer,message", [
    (simple("rs", "Reshape", "r1", dims=[2, -1], axis=0, num_axes=-1), "change the batch axis"),
    (simple("fl", "Flatten", "r1", axis=0, end_axis=-1), "merges the batch axis"),
    (simple("pm", "Permute", "r1", order=[1, 0, 2, 3]), "keeps the batch axis first"),
    (simple("el", "Eltwise", ["r1", "data"], operation="sum", coeff=[]), "inputs of one shape"),
    (simple("sl", "Slice", "r1", ["a", "b", "c"], axis=1, slice_points=[]), "do not split into 3 equal"),
])
def test_shapes_that_do_not_fit_are_named(layer, message):
    layout = tiny_layout()
    if layer["type"] == "Slice":
        layer["top"] = ["a", "b", "c"]
    layout["layers"].insert(2, layer)
    with pytest.raises(GraphError, match=message):
        infer_shapes(parse_layout(layout), SIDE)


def test_graph_network_modes_and_classes():
    net = get_model("caffe", SIDE, 2, layout=tiny_layout(classes=3))
    x = mx.nd.random.uniform(0, 255, (2, 3, SIDE, SIDE))
    with autograd.train_mode():
        cls_preds, box_preds, anchors = net(x)
    n = 24 * 24 * 4
    assert cls_preds.shape == (2, n, 3) and box_preds.shape == (2, n * 4) and anchors.shape == (1, n, 4)
    assert net.num_priors == n and net.variances == (0.1, 0.1, 0.2, 0.2)
    with autograd.predict_mode():
        imperative = net(x).asnumpy()
    net.hybridize(static_alloc=True, static_shape=True)
    with autograd.predict_mode():
        hybrid = net(x).asnumpy()
    np.testing.assert_allclose(hybrid, imperative, atol=1e-5)
    # Another class count resizes the class heads only.
    other = get_model("caffe", SIDE, 5, layout=tiny_layout(classes=3))
    assert other.block_of("conf").weight.shape[0] == 4 * 6 and other.block_of("loc").weight.shape[0] == 16
    assert other.class_head_prefixes == ("layers.conf.",)


def test_checkpoint_round_trip(tmp_path):
    net = get_model("caffe", SIDE, 2, layout=tiny_layout(), nms_mode="caffe", thresh=0.2)
    save_checkpoint(net, tmp_path / "g", 0, ["a", "b"])
    config = read_config(tmp_path / "g")
    assert config.network == "caffe" and config.layout == tiny_layout() and config.version == 2
    loaded, _ = load_checkpoint(tmp_path / "g", 0)
    x = mx.nd.random.uniform(0, 255, (1, 3, SIDE, SIDE))
    with autograd.predict_mode():
        np.testing.assert_array_equal(loaded(x).asnumpy(), net(x).asnumpy())
    with pytest.raises(ValueError, match="pass its layout"):
        get_model("caffe", SIDE, 2)
