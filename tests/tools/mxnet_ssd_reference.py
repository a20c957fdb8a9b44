"""mxnet-ssd's released detectors rebuilt with MXNet's own symbol API, the reference of the
converter tests.

The builders reproduce the deploy graphs of mxnet-ssd's four released VOC
models (zhreshold/mxnet-ssd: VGG16-reduced SSD300 and SSD512, ResNet-50 and
Inception-v3 SSD512, and the early SSD512 whose conv10_2 and conv11_2 keep
their size): the same node and parameter names, shapes and operator
arguments, ending in a channel softmax and MultiBoxDetection. They are written
from the published graphs' description, with none of this project's code, so
MXNet's executor running them is an independent reference.

Weights are random; :func:`calibrate_heads` rescales the prediction heads on a
photo so that scores spread out and only a few priors beat the background.
Files are written with ``mx.model.save_checkpoint``, as mxnet-ssd did.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import cv2
import mxnet as mx
import numpy as np

sym = mx.sym

#: mxnet-ssd's input: RGB minus this mean.
MEAN_RGB = (123.0, 117.0, 104.0)
VOC_CLASSES = 20
_R1 = [1, 2, .5]
_R2 = [1, 2, .5, 3, 1. / 3]


# ---------------------------------------------------------------------- layers
def _bias(name: str):
    """mxnet-ssd's explicit bias variable (zero init, double learning rate)."""
    return sym.Variable(name, init=mx.init.Constant(0.0), attr={"__lr_mult__": "2.0"})


def _conv_relu(x, conv_name: str, relu_name: str, bias_name: str, filters: int, kernel: int, stride: int = 1,
               pad: int = 0):
    conv = sym.Convolution(x, bias=_bias(bias_name), kernel=(kernel, kernel), pad=(pad, pad), stride=(stride, stride),
                           num_filter=filters, name=conv_name)
    return sym.Activation(conv, act_type="relu", name=relu_name)


def _mxnet_ssd_scales(min_scale: float, max_scale: float, n: int) -> list[list]:
    """Caffe's per-layer scale rule with mxnet-ssd's single-precision square roots."""
    lo, hi = int(min_scale * 100), int(max_scale * 100)
    step = (hi - lo) // (n - 2)
    mins = [int(100 * min_scale / 2.0) / 100.0] + [r / 100.0 for r in range(lo, hi + 1, step)]
    maxs = [min_scale] + [(r + step) / 100.0 for r in range(lo, hi + 1, step)]
    return [[a, np.single(np.sqrt(a * b))] for a, b in zip(mins[:n], maxs[:n])]


def multibox_deploy(sources: Sequence, num_classes: int, sizes, ratios, normalization, steps=(),
                    nms_threshold: float = 0.5, force_suppress: bool = False, nms_topk: int = 400,
                    train: bool = False, scale_wd_mult: bool = True):
    """Heads, priors and decoding over ``sources`` as mxnet-ssd's ``multibox_layer`` and
    deploy graph build them (``train``: its training graph, with targets and losses;
    ``scale_wd_mult``: the L2 scale's weight decay multiplier, which v0.5-beta lacked)."""
    locs, clss, anchors = [], [], []
    for k, x in enumerate(sources):
        name = x.name
        if normalization[k] > 0:
            norm = sym.L2Normalization(x, mode="channel", name=f"{name}_norm")
            scale = sym.Variable(f"{name}_scale", shape=(1, 512, 1, 1), init=mx.init.Constant(normalization[k]),
                                 attr={"__wd_mult__": "0.1"} if scale_wd_mult else None)
            x = sym.broadcast_mul(lhs=scale, rhs=norm)
        per_location = len(sizes[k]) - 1 + len(ratios[k])
        for kind, per_anchor, out in (("loc", 4, locs), ("cls", num_classes + 1, clss)):
            conv = sym.Convolution(x, bias=_bias(f"{name}_{kind}_pred_conv_bias"), kernel=(3, 3), stride=(1, 1),
                                   pad=(1, 1), num_filter=per_location * per_anchor, name=f"{name}_{kind}_pred_conv")
            out.append(sym.Flatten(sym.transpose(conv, axes=(0, 2, 3, 1))))
        step = (steps[k], steps[k]) if steps else "(-1.0, -1.0)"
        anchors.append(sym.Flatten(sym.contrib.MultiBoxPrior(
            x, sizes="(" + ",".join(str(s) for s in sizes[k]) + ")",
            ratios="(" + ",".join(str(r) for r in ratios[k]) + ")", clip=False, name=f"{name}_anchors", steps=step)))
    loc = sym.Concat(*locs, num_args=len(locs), dim=1, name="multibox_loc_pred")
    cls = sym.Concat(*clss, num_args=len(clss), dim=1)
    cls = sym.transpose(sym.Reshape(cls, shape=(0, -1, num_classes + 1)), axes=(0, 2, 1), name="multibox_cls_pred")
    priors = sym.Reshape(sym.Concat(*anchors, num_args=len(anchors), dim=1), shape=(0, -1, 4),
                         name="multibox_anchors")
    decoding = dict(name="detection", nms_threshold=nms_threshold, force_suppress=force_suppress,
                    variances=(0.1, 0.1, 0.2, 0.2), nms_topk=nms_topk)
    if not train:
        prob = sym.SoftmaxActivation(cls, mode="channel", name="cls_prob")
        return sym.contrib.MultiBoxDetection(prob, loc, priors, **decoding)
    loc_target, loc_mask, cls_target = sym.contrib.MultiBoxTarget(
        priors, sym.Variable("label"), cls, overlap_threshold=.5, ignore_label=-1, negative_mining_ratio=3,
        minimum_negative_samples=0, negative_mining_thresh=.5, variances=(0.1, 0.1, 0.2, 0.2), name="multibox_target")
    prob = sym.SoftmaxOutput(cls, label=cls_target, ignore_label=-1, use_ignore=True, grad_scale=1.,
                             multi_output=True, normalization="valid", name="cls_prob")
    loc_loss = sym.MakeLoss(sym.smooth_l1(loc_mask * (loc - loc_target), scalar=1.0, name="loc_loss_"),
                            grad_scale=1., normalization="valid", name="loc_loss")
    cls_label = sym.MakeLoss(cls_target, grad_scale=0, name="cls_label")
    det = sym.MakeLoss(sym.contrib.MultiBoxDetection(prob, loc, priors, **decoding), grad_scale=0, name="det_out")
    return sym.Group([prob, loc_loss, cls_label, det])


def _extras(x, specs, names):
    """Extra layers (1x1 + ReLU, then k x k + ReLU), each a further source."""
    out = []
    for (mid, filters, kernel, stride, pad), (c1, r1, b1, c2, r2, b2) in zip(specs, names):
        x = _conv_relu(x, c1, r1, b1, mid, 1)
        x = _conv_relu(x, c2, r2, b2, filters, kernel, stride, pad)
        out.append(x)
    return out


# ---------------------------------------------------------------------- VGG16
def vgg16_ssd(side: int = 300, early: bool = False, num_classes: int = VOC_CLASSES, **decoding):
    """mxnet-ssd's ``legacy_vgg16_ssd_300`` / ``_512`` (``early``: v0.5-beta's SSD512, whose
    conv10_2 and conv11_2 are 3x3 convolutions without padding or stride)."""
    x = sym.Variable("data")
    for group, (n, filters) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)), start=1):
        for i in range(1, n + 1):
            x = sym.Activation(sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_filter=filters,
                                               name=f"conv{group}_{i}"), act_type="relu", name=f"relu{group}_{i}")
        if group == 4:
            relu4_3 = x
        if group == 5:
            x = sym.Pooling(x, pool_type="max", kernel=(3, 3), stride=(1, 1), pad=(1, 1), name="pool5")
        elif group == 3:
            x = sym.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), pooling_convention="full",
                            name="pool3")
        else:
            x = sym.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), name=f"pool{group}")
    x = sym.Activation(sym.Convolution(x, kernel=(3, 3), pad=(6, 6), dilate=(6, 6), num_filter=1024, name="conv6"),
                       act_type="relu", name="relu6")
    relu7 = sym.Activation(sym.Convolution(x, kernel=(1, 1), pad=(0, 0), num_filter=1024, name="conv7"),
                           act_type="relu", name="relu7")
    if side == 300:
        specs = [(256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 1, 0), (128, 256, 3, 1, 0)]
        sizes = [[.1, .141], [.2, .272], [.37, .447], [.54, .619], [.71, .79], [.88, .961]]
        ratios = [_R1, _R2, _R2, _R2, _R1, _R1]
        steps = [x / 300.0 for x in [8, 16, 32, 64, 100, 300]]
    else:
        late = (3, 1, 0) if early else (3, 2, 1)
        specs = [(256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, *late), (128, 256, *late), (128, 256, 4, 1, 1)]
        sizes = [[.07, .1025], [.15, .2121], [.3, .3674], [.45, .5196], [.6, .6708], [.75, .8216], [.9, .9721]]
        ratios = [_R1, _R2, _R2, _R2, _R2, _R1, _R1]
        steps = [x / 512.0 for x in [8, 16, 32, 64, 128, 256, 512]]
    names = [(f"conv{n}_1", f"relu{n}_1", f"conv{n}_1_bias", f"conv{n}_2", f"relu{n}_2", f"conv{n}_2_bias")
             for n in range(8, 8 + len(specs))]
    sources = [relu4_3, relu7] + _extras(relu7, specs, names)
    return multibox_deploy(sources, num_classes, sizes, ratios, [20] + [-1] * (len(sources) - 1), steps,
                           scale_wd_mult=not early, **decoding)


def _multi_feat(x, filters: Sequence[int]):
    """mxnet-ssd's ``multi_layer_feature`` extras after two backbone sources (strides 2, pads 1)."""
    names = [(f"multi_feat_{k}_conv_1x1_conv", f"multi_feat_{k}_conv_1x1_relu", f"multi_feat_{k}_conv_1x1_conv_bias",
              f"multi_feat_{k}_conv_3x3_conv", f"multi_feat_{k}_conv_3x3_relu", f"multi_feat_{k}_conv_3x3_conv_bias")
             for k in range(2, 2 + len(filters))]
    return _extras(x, [(max(128, f // 2), f, 3, 2, 1) for f in filters], names)


def _released_512_head(sources, num_classes: int, **decoding):
    sources = list(sources)
    sources += _multi_feat(sources[-1], [512, 256, 256, 128])
    return multibox_deploy(sources, num_classes, _mxnet_ssd_scales(0.2, 0.9, 6), [_R1, _R2, _R2, _R2, _R1, _R1],
                           [-1] * 6, **decoding)


# ---------------------------------------------------------------------- ResNet-50
def _bn(x, name: str, fix_gamma: bool = False):
    return sym.BatchNorm(x, fix_gamma=fix_gamma, eps=2e-5, momentum=0.9, name=name)


def _residual(x, filters: int, stride: int, shortcut: bool, name: str, index: int):
    act1 = sym.Activation(_bn(x, f"{name}_bn1"), act_type="relu", name=f"{name}_relu1")
    y = sym.Convolution(act1, num_filter=filters // 4, kernel=(1, 1), stride=(1, 1), pad=(0, 0), no_bias=True,
                        workspace=256, name=f"{name}_conv1")
    y = sym.Activation(_bn(y, f"{name}_bn2"), act_type="relu", name=f"{name}_relu2")
    y = sym.Convolution(y, num_filter=filters // 4, kernel=(3, 3), stride=(stride, stride), pad=(1, 1),
                        no_bias=True, workspace=256, name=f"{name}_conv2")
    y = sym.Activation(_bn(y, f"{name}_bn3"), act_type="relu", name=f"{name}_relu3")
    y = sym.Convolution(y, num_filter=filters, kernel=(1, 1), stride=(1, 1), pad=(0, 0), no_bias=True,
                        workspace=256, name=f"{name}_conv3")
    sc = x if not shortcut else sym.Convolution(act1, num_filter=filters, kernel=(1, 1), stride=(stride, stride),
                                                no_bias=True, workspace=256, name=f"{name}_sc")
    return sym.elemwise_add(y, sc, name=f"_plus{index}")


def resnet50_ssd(num_classes: int = VOC_CLASSES, **decoding):
    """mxnet-ssd's ``symbol_factory.get_symbol('resnet50', 512)``: tornadomeet's ResNet-50 v2,
    sources ``_plus12`` and ``_plus15``."""
    x = sym.identity(sym.Variable("data"), name="id")
    x = _bn(x, "bn_data", fix_gamma=True)
    x = sym.Convolution(x, num_filter=64, kernel=(7, 7), stride=(2, 2), pad=(3, 3), no_bias=True, workspace=256,
                        name="conv0")
    x = sym.Activation(_bn(x, "bn0"), act_type="relu", name="relu0")
    x = sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max", name="pooling0")
    sources, index = [], 0
    for stage, (units, filters) in enumerate(zip((3, 4, 6, 3), (256, 512, 1024, 2048)), start=1):
        for unit in range(1, units + 1):
            stride = 2 if stage > 1 and unit == 1 else 1
            x = _residual(x, filters, stride, unit == 1, f"stage{stage}_unit{unit}", index)
            index += 1
        if stage >= 3:
            sources.append(x)
    return _released_512_head(sources, num_classes, **decoding)


# ---------------------------------------------------------------------- Inception-v3
def _unit(x, filters: int, kernel=(1, 1), stride=(1, 1), pad=(0, 0), name: str = ""):
    conv = sym.Convolution(x, num_filter=filters, kernel=kernel, stride=stride, pad=pad, no_bias=True,
                           name=f"{name}_conv2d")
    bn = sym.BatchNorm(conv, fix_gamma=True, name=f"{name}_batchnorm")
    return sym.Activation(bn, act_type="relu", name=f"{name}_relu")


def _pool(x, kind: str, name: str, stride: int = 1, pad: Optional[int] = 1):
    """A 3x3 pooling (``pad`` None: no pad argument, as in mixed_8)."""
    kw = {"pad": (pad, pad)} if pad is not None else {}
    return sym.Pooling(x, kernel=(3, 3), stride=(stride, stride), pool_type=kind, name=name, **kw)


def _mixed_a(x, proj: int, n: str):
    return sym.Concat(_unit(x, 64, name=f"{n}_conv"),
                      _unit(_unit(x, 48, name=f"{n}_tower_conv"), 64, (5, 5), pad=(2, 2), name=f"{n}_tower_conv_1"),
                      _unit(_unit(_unit(x, 64, name=f"{n}_tower_1_conv"), 96, (3, 3), pad=(1, 1),
                                  name=f"{n}_tower_1_conv_1"), 96, (3, 3), pad=(1, 1), name=f"{n}_tower_1_conv_2"),
                      _unit(_pool(x, "avg", f"avg_pool_{n}_pool"), proj, name=f"{n}_tower_2_conv"),
                      name=f"ch_concat_{n}_chconcat")


def _mixed_c(x, c7: int, n: str):
    d7 = _unit(x, c7, name=f"{n}_tower_conv")
    d7 = _unit(d7, c7, (1, 7), pad=(0, 3), name=f"{n}_tower_conv_1")
    d7 = _unit(d7, 192, (7, 1), pad=(3, 0), name=f"{n}_tower_conv_2")
    q7 = _unit(x, c7, name=f"{n}_tower_1_conv")
    for i, (k, p, f) in enumerate((((7, 1), (3, 0), c7), ((1, 7), (0, 3), c7), ((7, 1), (3, 0), c7),
                                   ((1, 7), (0, 3), 192)), start=1):
        q7 = _unit(q7, f, k, pad=p, name=f"{n}_tower_1_conv_{i}")
    proj = _unit(_pool(x, "avg", f"avg_pool_{n}_pool"), 192, name=f"{n}_tower_2_conv")
    return sym.Concat(_unit(x, 192, name=f"{n}_conv"), d7, q7, proj, name=f"ch_concat_{n}_chconcat")


def _mixed_e(x, pool: str, n: str):
    d3 = _unit(x, 384, name=f"{n}_tower_conv")
    t3 = _unit(_unit(x, 448, name=f"{n}_tower_1_conv"), 384, (3, 3), pad=(1, 1), name=f"{n}_tower_1_conv_1")
    return sym.Concat(_unit(x, 320, name=f"{n}_conv"),
                      _unit(d3, 384, (1, 3), pad=(0, 1), name=f"{n}_tower_mixed_conv"),
                      _unit(d3, 384, (3, 1), pad=(1, 0), name=f"{n}_tower_mixed_conv_1"),
                      _unit(t3, 384, (1, 3), pad=(0, 1), name=f"{n}_tower_1_mixed_conv"),
                      _unit(t3, 384, (3, 1), pad=(1, 0), name=f"{n}_tower_1_mixed_conv_1"),
                      _unit(_pool(x, pool, f"{pool}_pool_{n}_pool"), 192, name=f"{n}_tower_2_conv"),
                      name=f"ch_concat_{n}_chconcat")


def inceptionv3_ssd(num_classes: int = VOC_CLASSES, **decoding):
    """mxnet-ssd's ``symbol_factory.get_symbol('inceptionv3', 512)``: sources the
    concatenations of mixed_7 and mixed_10."""
    x = _unit(sym.Variable("data"), 32, (3, 3), (2, 2), name="conv")
    x = _unit(x, 32, (3, 3), name="conv_1")
    x = _unit(x, 64, (3, 3), pad=(1, 1), name="conv_2")
    x = sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool")
    x = _unit(_unit(x, 80, name="conv_3"), 192, (3, 3), name="conv_4")
    x = sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool1")
    for proj, n in ((32, "mixed"), (64, "mixed_1"), (64, "mixed_2")):
        x = _mixed_a(x, proj, n)
    x = sym.Concat(_unit(x, 384, (3, 3), (2, 2), name="mixed_3_conv"),
                   _unit(_unit(_unit(x, 64, name="mixed_3_tower_conv"), 96, (3, 3), pad=(1, 1),
                               name="mixed_3_tower_conv_1"), 96, (3, 3), (2, 2), name="mixed_3_tower_conv_2"),
                   _pool(x, "max", "max_pool_mixed_3_pool", 2, 0), name="ch_concat_mixed_3_chconcat")
    for c7, n in ((128, "mixed_4"), (160, "mixed_5"), (160, "mixed_6"), (192, "mixed_7")):
        x = _mixed_c(x, c7, n)
    mixed_7 = x
    d7 = _unit(x, 192, name="mixed_8_tower_1_conv")
    d7 = _unit(d7, 192, (1, 7), pad=(0, 3), name="mixed_8_tower_1_conv_1")
    d7 = _unit(d7, 192, (7, 1), pad=(3, 0), name="mixed_8_tower_1_conv_2")
    x = sym.Concat(_unit(_unit(x, 192, name="mixed_8_tower_conv"), 320, (3, 3), (2, 2), name="mixed_8_tower_conv_1"),
                   _unit(d7, 192, (3, 3), (2, 2), name="mixed_8_tower_1_conv_3"),
                   _pool(x, "max", "max_pool_mixed_8_pool", 2, None), name="ch_concat_mixed_8_chconcat")
    x = _mixed_e(_mixed_e(x, "avg", "mixed_9"), "max", "mixed_10")
    return _released_512_head([mixed_7, x], num_classes, **decoding)


def tiny_ssd(num_classes: int = VOC_CLASSES):
    """A small SSD of no released network (two conv layers and the standard head)."""
    x = _conv_relu(sym.Variable("data"), "features1", "features1_relu", "features1_bias", 16, 3, 2, 1)
    x = _conv_relu(x, "features2", "features2_relu", "features2_bias", 32, 3, 2, 1)
    sources = [x] + _multi_feat(x, [32])
    return multibox_deploy(sources, num_classes, [[.2, .3], [.5, .6]], [_R1, _R1], [-1, -1])


BUILDERS = {"vgg16_300": (lambda: vgg16_ssd(300), 300), "vgg16_512": (lambda: vgg16_ssd(512), 512),
            "vgg16_512_early": (lambda: vgg16_ssd(512, early=True), 512), "resnet50": (resnet50_ssd, 512),
            "inceptionv3": (inceptionv3_ssd, 512)}


# ---------------------------------------------------------------------- weights and runs
def random_params(net, side: int, seed: int = 0) -> tuple[dict, dict]:
    """He-initialized convolutions, small biases, BatchNorms near identity with random
    statistics (fixed gammas random too: MXNet must ignore them), L2 scales around 20."""
    rng = np.random.default_rng(seed)
    arg_shapes, _, aux_shapes = net.infer_shape(data=(1, 3, side, side))
    args, auxs = {}, {}
    for name, shape in zip(net.list_arguments(), arg_shapes):
        if name == "data":
            continue
        if name.endswith("_weight"):
            value = rng.normal(0, math.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif name.endswith("_gamma"):
            value = rng.uniform(0.8, 1.2, shape)
        elif name.endswith("_scale"):
            value = rng.uniform(10, 30, shape)
        else:  # biases, betas
            value = rng.uniform(-0.1, 0.1, shape)
        args[name] = mx.nd.array(value, dtype="float32")
    for name, shape in zip(net.list_auxiliary_states(), aux_shapes):
        value = rng.uniform(-0.1, 0.1, shape) if name.endswith("_mean") else rng.uniform(0.5, 1.5, shape)
        auxs[name] = mx.nd.array(value, dtype="float32")
    return args, auxs


def heads(net) -> tuple[list[str], list[str]]:
    """Names of the class and box prediction convolutions, in source order."""
    names = [n for n in net.get_internals().list_outputs() if n.endswith("_pred_conv_output")]
    return ([n[:-len("_output")] for n in names if "_cls_pred_conv" in n],
            [n[:-len("_output")] for n in names if "_loc_pred_conv" in n])


def _forward(outputs, args: dict, auxs: dict, batch: np.ndarray) -> list[np.ndarray]:
    exe = outputs.bind(mx.cpu(), {**args, "data": mx.nd.array(batch)}, aux_states=auxs, grad_req="null")
    return [o.asnumpy() for o in exe.forward(is_train=False)]


def calibrate_heads(net, args: dict, auxs: dict, batch: np.ndarray, num_classes: int = VOC_CLASSES,
                    logit_std: float = 2.0, box_std: float = 1.0, candidates: int = 40) -> None:
    """Rescale the random heads in place: class logits of standard deviation ``logit_std``
    and box offsets of ``box_std`` on ``batch``, and a background bias such that at least
    ``candidates`` priors of every image score 0.3 or more for some class."""
    cls_names, loc_names = heads(net)
    internals = net.get_internals()
    outs = _forward(sym.Group([internals[n + "_output"] for n in cls_names + loc_names]), args, auxs, batch)
    logits = []
    for name, out in zip(cls_names + loc_names, outs):
        alpha = (logit_std if name in cls_names else box_std) / float(out.std())
        args[name + "_weight"] *= alpha
        args[name + "_bias"] *= alpha
        if name in cls_names:
            k = num_classes + 1
            logits.append((out * alpha).transpose(0, 2, 3, 1).reshape(len(batch), -1, k))
    logits = np.concatenate(logits, axis=1)

    def count(offset: float) -> float:
        z = logits.copy()
        z[..., 0] += offset
        z = np.exp(z - z.max(-1, keepdims=True))
        p = z / z.sum(-1, keepdims=True)
        return float((p[..., 1:].max(-1) >= 0.3).sum(axis=1).min())

    lo, hi = -20.0, 40.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(mid) > candidates else (lo, mid)
    for name in cls_names:
        bias = args[name + "_bias"].asnumpy()
        bias[0::num_classes + 1] += hi
        args[name + "_bias"] = mx.nd.array(bias)


def load_images(paths: Sequence[Path], side: int) -> np.ndarray:
    """Photos as mxnet-ssd fed them: RGB, resized to ``side`` (bilinear), minus the mean, NCHW."""
    batch = []
    for path in paths:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        resized = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        batch.append((resized - np.array(MEAN_RGB, np.float32)).transpose(2, 0, 1))
    return np.stack(batch)


def run(net, args: dict, auxs: dict, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MXNet's executor: (detections (B, N, 6), priors (1, N, 4))."""
    return tuple(_forward(sym.Group([net, net.get_internals()["multibox_anchors_output"]]), args, auxs, batch))


class Reference(NamedTuple):
    """A saved model and what MXNet's executor makes of the photos."""

    prefix: Path
    net: object
    args: dict
    auxs: dict
    side: int
    images: list
    detections: list  # per photo, rows [class, score, x1, y1, x2, y2] with class >= 0
    priors: np.ndarray


def build(kind: str, images: Sequence[Path], out: Path, seed: int = 0, calibrate: bool = True,
          params: Optional[tuple[dict, dict]] = None) -> Reference:
    """Build ``kind`` (a key of :data:`BUILDERS`), give it random (or ``params``) weights,
    calibrate its heads on the photos, save ``out-symbol.json`` + ``out-0000.params``
    and run it on ``images``."""
    make, side = BUILDERS[kind]
    net = make()
    args, auxs = params if params is not None else random_params(net, side, seed)
    batch = load_images(images, side) if len(images) else None
    if calibrate and batch is not None:
        calibrate_heads(net, args, auxs, batch)
    mx.model.save_checkpoint(str(out), 0, net, args, auxs)
    dets, priors = run(net, args, auxs, batch) if batch is not None else (np.zeros((0, 0, 6)), None)
    return Reference(out, net, args, auxs, side, list(images), [d[d[:, 0] >= 0] for d in dets], priors)
