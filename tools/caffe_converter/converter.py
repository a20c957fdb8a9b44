"""Map a Caffe SSD (deploy prototxt + caffemodel) onto this project's Gluon SSD.

The prototxt is analysed as a graph: the DetectionOutput layer's inputs lead
back through Concat / Flatten / Permute to the loc and conf head convolutions
and the PriorBox layers, in source order; every other convolution belongs to
the backbone and the extra layers, in file order. Each is checked against the
Gluon layer it maps to (kernel, stride, pad, dilation, groups, widths), the
priors Caffe would compute are checked against the network's anchors, and the
DetectionOutput settings become the checkpoint's decoding settings (Caffe's
per-class NMS). Any mismatch is a :class:`ConversionError` naming the file and
the layer; nothing is guessed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import nn

from symbol import get_model
from symbol.boxes import VARIANCES
from symbol.layers import L2Normalization
from symbol.presets import Preprocessing, find_preset
from symbol.ssd import SSD
from tools.model_converters.classes import class_names_for

from .blobs import (ConversionError, array, batch_norm_affine, batch_norm_stats, fold_affine, layer_blobs,
                    scale_params)
from .priors import caffe_aspect_ratios, caffe_priors, conv_output, pool_output
from .reader import CaffeLayer, CaffeNet, blob_array

__all__ = ["CaffeGraph", "ConversionError", "Conversion", "NETWORKS", "SUPPORTED_TYPES", "convert_base",
           "convert_ssd", "detect_network"]

logger = logging.getLogger(__name__)

NETWORKS = ("vgg16_reduced", "mobilenet")
#: Layer types the converter understands; anything else is refused by name.
SUPPORTED_TYPES = frozenset({"Input", "Convolution", "DepthwiseConvolution", "ReLU", "Pooling", "Normalize",
                             "BatchNorm", "Scale", "Permute", "Flatten", "Concat", "Reshape", "Softmax",
                             "PriorBox", "DetectionOutput", "Dropout", "Split", "Silence"})
_CONV_TYPES = ("Convolution", "DepthwiseConvolution")
_PASS_THROUGH = ("ReLU", "BatchNorm", "Scale", "Normalize", "Dropout", "Split")


@dataclass
class Conversion:
    """What a conversion did, for the summary."""

    net: object
    network: str
    data_shape: int
    class_names: list[str]
    layers_mapped: list[str] = field(default_factory=list)
    blobs_mapped: int = 0
    unset_params: list[str] = field(default_factory=list)
    skipped_layers: list[str] = field(default_factory=list)
    priors_checked: int = 0
    prior_max_diff: float = 0.0
    nms: dict = field(default_factory=dict)

    def summary(self) -> list[str]:
        if self.class_names:
            head = f"network {self.network} at {self.data_shape}, {len(self.class_names)} classes"
        else:  # convert_base: a backbone, no input size or classes of its own
            head = f"{self.network} base network (the backbone of train.py --network {self.network}; no classes)"
        lines = [head,
                 f"mapped {len(self.layers_mapped)} layers, {self.blobs_mapped} blobs"]
        if self.priors_checked:
            lines.append(f"priors: {self.priors_checked} equal to Caffe's PriorBox "
                         f"(max difference {self.prior_max_diff:.2e})")
        if self.nms:
            lines.append("decoding: " + ", ".join(f"{k}={v}" for k, v in self.nms.items()))
        if self.skipped_layers:
            lines.append(f"not converted: {', '.join(self.skipped_layers)}")
        lines.append(f"parameters left unset: {', '.join(self.unset_params) if self.unset_params else 'none'}")
        return lines


# ---------------------------------------------------------------------- layer parameters
@dataclass(frozen=True)
class ConvSpec:
    num_output: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    dilation: tuple[int, int]
    group: int
    bias_term: bool


def _pair(values: Sequence[int], h: int, w: int, default: int) -> tuple[int, int]:
    if h or w:
        return int(h), int(w)
    if len(values) == 0:
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    return int(values[0]), int(values[1])


def conv_spec(layer: CaffeLayer) -> ConvSpec:
    p = layer.param.convolution_param
    kernel = _pair(p.kernel_size, p.kernel_h, p.kernel_w, 0)
    group = int(p.group)
    if layer.type == "DepthwiseConvolution":
        group = int(p.num_output)
    return ConvSpec(int(p.num_output), kernel, _pair(p.stride, p.stride_h, p.stride_w, 1),
                    _pair(p.pad, p.pad_h, p.pad_w, 0), _pair(p.dilation, 0, 0, 1), group, bool(p.bias_term))


def gluon_conv_spec(conv: nn.Conv2D) -> ConvSpec:
    k = conv._kwargs
    return ConvSpec(int(k["num_filter"]), tuple(k["kernel"]), tuple(k["stride"]), tuple(k["pad"]),
                    tuple(k["dilate"]), int(k["num_group"]), not k["no_bias"])


def _describe(spec: ConvSpec) -> str:
    return (f"{spec.num_output} outputs, kernel {spec.kernel}, stride {spec.stride}, pad {spec.pad}, "
            f"dilation {spec.dilation}, group {spec.group}")


# ---------------------------------------------------------------------- graph analysis
@dataclass
class BodyConv:
    """A backbone/extra convolution with its folded BatchNorm / Scale layers."""

    conv: CaffeLayer
    batch_norm: Optional[CaffeLayer] = None
    scale: Optional[CaffeLayer] = None
    blobs: set = field(default_factory=set)  # names its output has (in-place layers keep it)
    relu: bool = False  # a ReLU follows


@dataclass
class SSDGraph:
    body: list[BodyConv]
    pools: list[CaffeLayer]
    loc_heads: list[CaffeLayer]
    conf_heads: list[CaffeLayer]
    prior_boxes: list[CaffeLayer]
    sources: list[str]
    norms: dict[str, CaffeLayer]
    detection: Optional[CaffeLayer]


class CaffeGraph:
    """A deploy net as a graph: every layer type checked, each blob's producer known."""

    def __init__(self, net: CaffeNet) -> None:
        self.net = net
        self.where = str(net.path)
        for layer in net.layers:
            if layer.type not in SUPPORTED_TYPES:
                raise ConversionError(f"{self.where}: layer {layer.name!r} has the unsupported type "
                                      f"{layer.type!r}")
        self.producer: dict[str, CaffeLayer] = {}
        for layer in net.layers:
            for top in layer.top:
                if top not in layer.bottom:  # in-place layers do not hide the producer
                    self.producer[top] = layer

    def error(self, layer: Optional[CaffeLayer], message: str) -> ConversionError:
        where = f"{self.where}: layer {layer.name!r}" if layer is not None else self.where
        return ConversionError(f"{where}: {message}")

    def trace(self, blob: str, stop: tuple[str, ...]) -> CaffeLayer:
        """Walk back through Flatten / Permute / Reshape / Softmax to a layer of a ``stop`` type."""
        layer = self.producer.get(blob)
        while layer is not None and layer.type not in stop:
            if layer.type == "Permute" and tuple(layer.param.permute_param.order) != (0, 2, 3, 1):
                raise self.error(layer, f"permute order {list(layer.param.permute_param.order)} is not "
                                        f"[0, 2, 3, 1]; only Caffe SSD's head layout is supported")
            if layer.type not in ("Flatten", "Permute", "Reshape", "Softmax") or len(layer.bottom) != 1:
                raise self.error(layer, f"unexpected {layer.type} layer between a head and DetectionOutput")
            layer = self.producer.get(layer.bottom[0])
        if layer is None:
            raise ConversionError(f"{self.where}: blob {blob!r} is not produced by any {'/'.join(stop)} layer")
        return layer

    def heads(self, blob: str, stop: tuple[str, ...]) -> list[CaffeLayer]:
        concat = self.trace(blob, ("Concat",) + stop)
        if concat.type != "Concat":
            return [concat]
        return [self.trace(b, stop) for b in concat.bottom]

    def analyse(self) -> SSDGraph:
        detections = [l for l in self.net.layers if l.type == "DetectionOutput"]
        if len(detections) != 1:
            raise ConversionError(f"{self.where}: expected one DetectionOutput layer, found {len(detections)} "
                                  f"(is it an SSD deploy prototxt? use --base for an ImageNet base network)")
        det = detections[0]
        if len(det.bottom) != 3:
            raise self.error(det, f"expected 3 bottoms (loc, conf, priors), got {len(det.bottom)}")
        loc = self.heads(det.bottom[0], _CONV_TYPES)
        conf = self.heads(det.bottom[1], _CONV_TYPES)
        priors = self.heads(det.bottom[2], ("PriorBox",))
        if not len(loc) == len(conf) == len(priors):
            raise self.error(det, f"{len(loc)} loc heads, {len(conf)} conf heads and {len(priors)} PriorBox "
                                  f"layers: they must come in threes, one per source")
        sources = []
        for l, c, p in zip(loc, conf, priors):
            if l.type not in _CONV_TYPES or c.type not in _CONV_TYPES:
                raise self.error(l if l.type not in _CONV_TYPES else c, "a head must be a convolution")
            if not (l.bottom[0] == c.bottom[0] == p.bottom[0]):
                raise self.error(p, f"loc head {l.name!r}, conf head {c.name!r} and PriorBox {p.name!r} "
                                    f"look at different blobs")
            sources.append(l.bottom[0])
        norms = {l.top[0]: l for l in self.net.layers if l.type == "Normalize"}
        head_names = {l.name for l in loc + conf}
        body, pools = self.body(head_names)
        return SSDGraph(body, pools, loc, conf, priors, sources, norms, det)

    def body(self, exclude: set) -> tuple[list[BodyConv], list[CaffeLayer]]:
        """Convolutions (with their BN / Scale) and pools outside the heads, in file order."""
        body: list[BodyConv] = []
        pools: list[CaffeLayer] = []
        owner: dict[str, BodyConv] = {}  # blob name -> the conv whose output it is
        for layer in self.net.layers:
            if layer.type in _CONV_TYPES and layer.name not in exclude:
                bc = BodyConv(layer, blobs={layer.top[0]})
                body.append(bc)
                owner[layer.top[0]] = bc
            elif layer.type == "Pooling":
                pools.append(layer)
            elif layer.type in ("BatchNorm", "Scale"):
                bc = owner.get(layer.bottom[0])
                if bc is None:
                    raise self.error(layer, f"{layer.type} must follow a convolution (it is folded into it)")
                slot = "batch_norm" if layer.type == "BatchNorm" else "scale"
                if getattr(bc, slot) is not None or (slot == "batch_norm" and bc.scale is not None):
                    raise self.error(layer, f"a second {layer.type} after convolution {bc.conv.name!r}")
                setattr(bc, slot, layer)
                bc.blobs.add(layer.top[0])
                owner[layer.top[0]] = bc
            elif layer.type == "ReLU":
                if layer.param.relu_param.negative_slope != 0:
                    raise self.error(layer, "leaky ReLU (negative_slope) is not supported")
                bc = owner.get(layer.bottom[0])
                if bc is not None:
                    bc.relu = True
        return body, pools


# ---------------------------------------------------------------------- weights
def _fold(bc: BodyConv, blobs: dict, where: str, spec: ConvSpec, in_per_group: int) -> tuple[np.ndarray, np.ndarray]:
    """The convolution's weight and bias with its BatchNorm and Scale folded in."""
    count = 2 if spec.bias_term else 1
    weight = array(blobs, bc.conv, 0, (spec.num_output, in_per_group) + spec.kernel, "weights", where, count)
    bias = array(blobs, bc.conv, 1, (spec.num_output,), "bias", where, count) if spec.bias_term else \
        np.zeros(spec.num_output)
    mul, add = np.ones(spec.num_output), np.zeros(spec.num_output)
    if bc.batch_norm is not None:
        mean, var = batch_norm_stats(blobs, bc.batch_norm, spec.num_output, where)
        mul, add = batch_norm_affine(mean, var, bc.batch_norm.param.batch_norm_param.eps)
    if bc.scale is not None:
        gamma, beta = scale_params(blobs, bc.scale, spec.num_output, where)
        mul, add = mul * gamma, add * gamma + beta
    return fold_affine(weight, bias, mul, add)


class _Setter:
    """Sets Gluon parameters and remembers which ones."""

    def __init__(self, net) -> None:
        self.params = {id(p): name for name, p in net._collect_params_with_prefix().items()}
        self.done: set = set()
        self.blobs = 0

    def set(self, param, value: np.ndarray, where: str) -> None:
        if tuple(param.shape) != value.shape:
            raise ConversionError(f"{where}: shape {list(value.shape)} does not fit the Gluon parameter "
                                  f"{self.params.get(id(param), param.name)} {list(param.shape)}")
        param.set_data(mx.nd.array(value, dtype="float32"))
        self.done.add(id(param))

    def unset(self) -> list[str]:
        return sorted(name for pid, name in self.params.items() if pid not in self.done)


def _gluon_convs(block) -> list[nn.Conv2D]:
    """Conv2D layers under ``block`` in registration (= forward, for our backbones) order."""
    if isinstance(block, nn.Conv2D):
        return [block]
    out = []
    for child in block._children.values():
        out.extend(_gluon_convs(child))
    return out


def _gluon_pools(block) -> list:
    if isinstance(block, nn.MaxPool2D) or isinstance(block, nn.AvgPool2D):
        return [block]
    out = []
    for child in block._children.values():
        out.extend(_gluon_pools(child))
    return out


def _map_convs(setter: _Setter, pairs, blobs: dict, where: str, check_geometry: bool = True,
               relu: bool = True) -> list[str]:
    """Set each Gluon conv from its Caffe layer; ``relu``: the Caffe layer must be followed by a ReLU."""
    mapped = []
    for bc, conv in pairs:
        if relu and not bc.relu:
            raise ConversionError(f"{where}: layer {bc.conv.name!r}: no ReLU follows this convolution, but "
                                  f"the Gluon layer it maps to has one")
        caffe, gluon = conv_spec(bc.conv), gluon_conv_spec(conv)
        geometry = lambda s: (s.num_output, s.kernel, s.stride, s.pad, s.dilation, s.group)  # noqa: E731
        if check_geometry and geometry(caffe) != geometry(gluon):
            raise ConversionError(f"{where}: layer {bc.conv.name!r}: {_describe(caffe)}, but the Gluon layer "
                                  f"it maps to has {_describe(gluon)}")
        if caffe.num_output != gluon.num_output or caffe.kernel != gluon.kernel or caffe.group != gluon.group:
            raise ConversionError(f"{where}: layer {bc.conv.name!r}: {_describe(caffe)} does not fit the "
                                  f"Gluon layer ({_describe(gluon)})")
        in_per_group = conv.weight.shape[1]
        weight, bias = _fold(bc, blobs, where, caffe, in_per_group)
        setter.set(conv.weight, weight, f"{where}: layer {bc.conv.name!r} weights")
        if conv.bias is not None:
            setter.set(conv.bias, bias, f"{where}: layer {bc.conv.name!r} bias")
        elif bc.batch_norm is not None or bc.scale is not None or caffe.bias_term:
            raise ConversionError(f"{where}: layer {bc.conv.name!r} has a bias (or a folded BatchNorm/Scale) "
                                  f"but its Gluon layer has none")
        setter.blobs += (2 if caffe.bias_term else 1) + (3 if bc.batch_norm is not None else 0) + \
            (0 if bc.scale is None else (2 if bc.scale.param.scale_param.bias_term else 1))
        mapped.extend(l.name for l in (bc.conv, bc.batch_norm, bc.scale) if l is not None)
    return mapped


# ---------------------------------------------------------------------- network recognition
def detect_network(net: CaffeNet) -> str:
    """``mobilenet`` (grouped convolutions) or ``vgg16_reduced`` (conv5_3 / fc7), else an error."""
    names = {l.name for l in net.layers}
    if any(l.type == "DepthwiseConvolution" or (l.type == "Convolution" and l.param.convolution_param.group > 1)
           for l in net.layers):
        return "mobilenet"
    if {"conv5_3", "fc7"} & names:
        return "vgg16_reduced"
    raise ConversionError(f"{net.path}: cannot recognise the network (neither VGG16 nor MobileNet layer "
                          f"names); pass --network {'|'.join(NETWORKS)}")


def input_side(net: CaffeNet, data_shape: Optional[int] = None) -> int:
    """``data_shape``, else the prototxt's square input size (an error names the file)."""
    if data_shape:
        return int(data_shape)
    shape = net.input_shape
    if shape is None or len(shape) != 4:
        raise ConversionError(f"{net.path}: no 4-D input shape in the prototxt; pass --data-shape")
    if shape[2] != shape[3]:
        raise ConversionError(f"{net.path}: input {shape[2]}x{shape[3]} is not square; SSD presets need a "
                              f"square input (pass --data-shape to override)")
    return int(shape[2])


def _backbone_kwargs(network: str, graph: SSDGraph) -> dict:
    if network != "mobilenet":
        return {}
    first = conv_spec(graph.body[0].conv).num_output
    kwargs: dict = {"batch_norm": False}
    if first != 32:
        kwargs["multiplier"] = first / 32.0
    return kwargs


# ---------------------------------------------------------------------- blob shapes and priors
def _blob_shapes(net: CaffeNet, side: int) -> dict[str, tuple[int, int]]:
    """Spatial size of every 4-D blob up to the heads, as Caffe infers it."""
    shapes: dict[str, tuple[int, int]] = {}
    inputs = [l for l in net.layers if l.type == "Input"]
    data = inputs[0].top[0] if inputs else "data"
    shapes[data] = (side, side)
    for layer in net.layers:
        if not layer.bottom or layer.bottom[0] not in shapes:
            continue
        h, w = shapes[layer.bottom[0]]
        if layer.type in _CONV_TYPES:
            s = conv_spec(layer)
            out = (conv_output(h, s.kernel[0], s.stride[0], s.pad[0], s.dilation[0]),
                   conv_output(w, s.kernel[1], s.stride[1], s.pad[1], s.dilation[1]))
        elif layer.type == "Pooling":
            p = layer.param.pooling_param
            if p.global_pooling:
                out = (1, 1)
            else:
                k = _pair([p.kernel_size] if p.kernel_size else [], p.kernel_h, p.kernel_w, 0)
                st = _pair([p.stride], p.stride_h, p.stride_w, 1)
                pd = _pair([p.pad], p.pad_h, p.pad_w, 0)
                out = (pool_output(h, k[0], st[0], pd[0]), pool_output(w, k[1], st[1], pd[1]))
        elif layer.type in _PASS_THROUGH:
            out = (h, w)
        else:
            continue
        for top in layer.top:
            shapes[top] = out
    return shapes


def _check_prior_params(graph: CaffeGraph, layer: CaffeLayer, side: int) -> None:
    p = layer.param.prior_box_param
    if len(p.min_size) != 1:
        raise graph.error(layer, f"{len(p.min_size)} min_size values; the Gluon priors take exactly one per layer")
    if len(p.max_size) > 1:
        raise graph.error(layer, f"{len(p.max_size)} max_size values; at most one is supported")
    if p.clip:
        raise graph.error(layer, "clip: true, but the Gluon priors are not clipped")
    variances = list(p.variance) or [0.1]
    if len(variances) != 4 or not np.allclose(variances, VARIANCES, atol=1e-6):
        raise graph.error(layer, f"variances {variances}, the Gluon decoding uses {list(VARIANCES)}")
    if (p.step_h or p.step_w) and abs(p.step_h - p.step_w) > 1e-6:
        raise graph.error(layer, f"step_h {p.step_h} != step_w {p.step_w}")
    for name in ("img_size", "img_h", "img_w"):
        value = getattr(p, name)
        if value and value != side:
            raise graph.error(layer, f"{name} {value} differs from the input size {side}")


def _check_priors(graph: CaffeGraph, ssd: SSDGraph, net: SSD, side: int) -> tuple[int, float]:
    shapes = _blob_shapes(graph.net, side)
    with autograd.predict_mode():
        _, _, anchors = net.raw_predictions(mx.nd.zeros((1, 3, side, side)))
    ours = anchors[0].asnumpy()
    start, worst = 0, 0.0
    for i, (layer, spec) in enumerate(zip(ssd.prior_boxes, net.anchor_specs)):
        _check_prior_params(graph, layer, side)
        p = layer.param.prior_box_param
        count = len(caffe_aspect_ratios(p)) + len(p.max_size)
        if count != spec.num_anchors:
            raise graph.error(layer, f"{count} priors per location, the preset's source {i} has "
                                     f"{spec.num_anchors} (check aspect_ratio, flip and max_size)")
        if layer.bottom[0] not in shapes:
            raise graph.error(layer, f"cannot infer the size of its input blob {layer.bottom[0]!r}")
        caffe = caffe_priors(p, shapes[layer.bottom[0]], (side, side))
        mine = ours[start:start + len(caffe)]
        if mine.shape != caffe.shape:
            raise graph.error(layer, f"{len(caffe)} priors but the Gluon network has {len(mine)} here: the "
                                     f"feature map sizes differ")
        diff = float(np.abs(mine - caffe).max())
        if diff > 1e-5:
            raise graph.error(layer, f"priors differ from the preset's by up to {diff:.3g} (min/max size, "
                                     f"step, offset or ratios); the preset cannot reproduce this layer")
        worst = max(worst, diff)
        start += len(caffe)
    if start != len(ours):
        raise ConversionError(f"{graph.where}: the prototxt has {start} priors, the Gluon network {len(ours)}")
    return start, worst


def nms_settings(where: str, layer: CaffeLayer, num_classes: int, num_priors: int) -> dict:
    """A DetectionOutput layer's settings as the decoding settings (Caffe mode);
    refuses what the decoding cannot reproduce (``where`` names the file)."""
    def error(message: str) -> ConversionError:
        return ConversionError(f"{where}: layer {layer.name!r}: {message}")

    p = layer.param.detection_output_param
    if p.num_classes != num_classes + 1:
        raise error(f"num_classes {p.num_classes}, but the conf heads predict {num_classes + 1}")
    if not p.share_location:
        raise error("share_location: false is not supported")
    if p.background_label_id != 0:
        raise error(f"background_label_id {p.background_label_id}; only 0 is supported")
    if p.code_type != 2:  # CENTER_SIZE
        raise error("only code_type CENTER_SIZE is supported")
    if p.variance_encoded_in_target:
        raise error("variance_encoded_in_target: true is not supported")
    if p.nms_param.eta != 1.0:
        raise error(f"adaptive NMS (eta {p.nms_param.eta}) is not supported")
    top_k = int(p.nms_param.top_k) if p.nms_param.HasField("top_k") else -1
    keep = int(p.keep_top_k) if p.keep_top_k > 0 else num_priors * num_classes
    thresh = float(p.confidence_threshold) if p.HasField("confidence_threshold") else 0.0
    return dict(nms_thresh=round(float(p.nms_param.nms_threshold), 6), nms_topk=top_k, keep_topk=keep,
                thresh=round(max(thresh, 0.0), 6), force_suppress=False, nms_mode="caffe")


# ---------------------------------------------------------------------- conversions
def convert_ssd(net_def: CaffeNet, blobs: dict, network: str = "auto", data_shape: Optional[int] = None,
                class_names: Optional[Sequence[str]] = None,
                preprocess: Optional[Preprocessing] = None) -> Conversion:
    """Build the Gluon SSD that ``net_def`` describes and load the caffemodel's ``blobs``.

    Parameters
    ----------
    net_def : CaffeNet
        The deploy prototxt (:func:`reader.read_prototxt`).
    blobs : dict
        Layer name -> BlobProto list (:func:`reader.read_caffemodel`).
    network : str
        ``vgg16_reduced``, ``mobilenet`` or ``auto``.
    data_shape : int, optional
        Input size (default: the prototxt's).
    class_names : sequence of str, optional
        Default: VOC's 20 names for a 21-way model.
    preprocess : Preprocessing, optional
        Default: the preset's (Caffe's BGR mean 104, 117, 123; MobileNet-SSD's
        ``(x - 127.5) * 0.007843``).

    Raises
    ------
    ConversionError
        Any mismatch, naming the file and the layer.
    """
    graph = CaffeGraph(net_def)
    ssd = graph.analyse()
    if network == "auto":
        network = detect_network(net_def)
    if network not in NETWORKS:
        raise ConversionError(f"unknown --network {network!r}; valid: auto, {', '.join(NETWORKS)}")
    side = input_side(net_def, data_shape)
    preset = find_preset(network, side)
    if preset.data_shape != side:
        raise ConversionError(f"{graph.where}: input size {side} has no {network} preset (presets: "
                              f"{preset.data_shape}); Caffe's priors are only reproduced at a preset's size")
    # Classes from the first conf head: A * (C + 1) channels.
    conf0, loc0 = conv_spec(ssd.conf_heads[0]), conv_spec(ssd.loc_heads[0])
    anchors0 = loc0.num_output // 4
    if anchors0 == 0 or conf0.num_output % anchors0:
        raise graph.error(ssd.conf_heads[0], f"{conf0.num_output} channels do not divide into "
                                             f"{anchors0} priors per location")
    num_classes = conf0.num_output // anchors0 - 1
    try:
        class_names = class_names_for(num_classes, class_names, graph.where)
    except ValueError as err:
        raise ConversionError(str(err)) from None
    kwargs = _backbone_kwargs(network, ssd)
    net = get_model(network, side, num_classes, preprocess=preprocess or preset.preprocess, **kwargs)
    conversion = Conversion(net, network, side, list(class_names))

    # Structure: sources, pools, convolutions.
    if len(ssd.sources) != len(net.anchor_specs):
        raise graph.error(ssd.detection, f"{len(ssd.sources)} source layers, {network} at {side} has "
                                         f"{len(net.anchor_specs)}")
    _check_pools(graph, ssd.pools, _gluon_pools(net.backbone))
    gluon_body = _gluon_convs(net.backbone) + _gluon_convs(net.extras)
    if len(ssd.body) != len(gluon_body):
        raise ConversionError(f"{graph.where}: {len(ssd.body)} convolutions outside the heads, but {network} "
                              f"at {side} has {len(gluon_body)}; is --network right?")
    setter = _Setter(net)
    conversion.layers_mapped += _map_convs(setter, zip(ssd.body, gluon_body), blobs, graph.where)
    for i, (source, norm) in enumerate(zip(ssd.sources, net.norms)):
        layer = ssd.norms.get(source)
        if isinstance(norm, L2Normalization) != (layer is not None):
            raise ConversionError(f"{graph.where}: source {i} ({source!r}) is {'' if layer else 'not '}"
                                  f"L2-normalized in the prototxt but {'not ' if layer else ''}in {network}")
        if layer is not None:
            np_ = layer.param.norm_param
            if np_.across_spatial:
                raise graph.error(layer, "across_spatial: true is not supported")
            channels = norm.scale.shape[1]
            shape = (1,) if np_.channel_shared else (channels,)
            scale = blob_array(layer_blobs(blobs, layer, 1, graph.where)[0], shape,
                               f"{graph.where}: layer {layer.name!r} blob 0 (scale)")
            setter.set(norm.scale, np.broadcast_to(scale, (channels,)).reshape(1, channels, 1, 1).copy(),
                       f"{graph.where}: layer {layer.name!r}")
            setter.blobs += 1
            conversion.layers_mapped.append(layer.name)
    heads = [(BodyConv(l), g) for l, g in zip(ssd.loc_heads, net.box_heads)]
    heads += [(BodyConv(c), g) for c, g in zip(ssd.conf_heads, net.class_heads)]
    conversion.layers_mapped += _map_convs(setter, heads, blobs, graph.where, relu=False)

    conversion.priors_checked, conversion.prior_max_diff = _check_priors(graph, ssd, net, side)
    conversion.nms = nms_settings(graph.where, ssd.detection, num_classes, conversion.priors_checked)
    net.set_nms(**conversion.nms)
    conversion.blobs_mapped = setter.blobs
    conversion.unset_params = setter.unset()
    if conversion.unset_params:
        raise ConversionError(f"{graph.where}: no Caffe weights for the Gluon parameters "
                              f"{', '.join(conversion.unset_params)}")
    return conversion


def _check_pools(graph: CaffeGraph, caffe_pools: list[CaffeLayer], gluon_pools: list) -> None:
    if len(caffe_pools) != len(gluon_pools):
        raise ConversionError(f"{graph.where}: {len(caffe_pools)} pooling layers, the Gluon backbone has "
                              f"{len(gluon_pools)}; is --network right?")
    for layer, pool in zip(caffe_pools, gluon_pools):
        p = layer.param.pooling_param
        k = pool._kwargs
        caffe = (("max" if p.pool == 0 else "avg"), _pair([p.kernel_size] if p.kernel_size else [], p.kernel_h,
                                                           p.kernel_w, 0),
                 _pair([p.stride], p.stride_h, p.stride_w, 1), _pair([p.pad], p.pad_h, p.pad_w, 0))
        gluon = (k["pool_type"], tuple(k["kernel"]), tuple(k["stride"]), tuple(k["pad"]))
        if p.global_pooling or caffe != gluon:
            raise graph.error(layer, f"pooling {caffe} differs from the Gluon layer's {gluon}")


def convert_base(net_def: CaffeNet, blobs: dict) -> Conversion:
    """Load the VGG16 fc-reduced ImageNet model into the ``vgg16_reduced`` backbone.

    Convolutions map in order (conv1_1 .. conv5_3, fc6, fc7); the ImageNet
    classifier after fc7 (fc8) is left out. SSD changes pool5 and fc6's
    dilation without changing any weight shape, so only the shapes are
    checked here.
    """
    from symbol.backbones.vgg import VGG16Reduced

    graph = CaffeGraph(net_def)
    body, _ = graph.body(exclude=set())
    backbone = VGG16Reduced()
    backbone.initialize(ctx=mx.cpu())
    backbone(mx.nd.zeros((1, 3, 300, 300)))  # shapes
    convs = _gluon_convs(backbone)
    if len(body) < len(convs):
        raise ConversionError(f"{graph.where}: {len(body)} convolutions, the vgg16_reduced base needs "
                              f"{len(convs)} (conv1_1 .. conv5_3, fc6, fc7)")
    if body[len(convs) - 1].conv.name != "fc7":
        logger.warning("the %d-th convolution is %r, expected fc7", len(convs), body[len(convs) - 1].conv.name)
    setter = _Setter(backbone)
    conversion = Conversion(backbone, "vgg16_reduced", 0, [])
    conversion.layers_mapped += _map_convs(setter, zip(body, convs), blobs, graph.where, check_geometry=False)
    conversion.skipped_layers = [bc.conv.name + " (ImageNet classifier)" for bc in body[len(convs):]]
    conversion.blobs_mapped = setter.blobs
    conversion.unset_params = setter.unset()
    if conversion.unset_params:
        raise ConversionError(f"{graph.where}: no Caffe weights for {', '.join(conversion.unset_params)}")
    return conversion

