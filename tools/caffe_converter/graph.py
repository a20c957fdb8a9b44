"""Any Caffe SSD as this project's ``caffe`` network: the deploy graph kept as it is.

:func:`convert_graph` turns a deploy prototxt and its caffemodel into a
:class:`symbol.caffe_graph.CaffeGraphSSD` with the weights loaded:

1. layers of the TEST phase only; Input, Silence and data layers dropped; any
   type the graph cannot run is an error naming the layer;
2. blobs renamed so each is written once (Caffe's in-place layers reuse names);
3. DetectionOutput's inputs traced back: its box offsets, the class logits
   (what Caffe feeds through Reshape, Softmax and Flatten: the project's
   decoding applies the softmax) and the priors; layers that feed none of
   them are dropped; the convolutions that compute the class logits are the
   class heads;
4. BatchNorm folded into the convolution before it, with its Scale, when that
   convolution feeds nothing else (``fold_batch_norm``); any other BatchNorm is
   kept, its Scale merged into it;
5. every layer's parameters written out with Caffe's defaults resolved, the
   weights checked against the shapes Caffe would infer.

DetectionOutput's settings become the decoding settings (Caffe mode).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import mxnet as mx
import numpy as np

from symbol.caffe_graph import (GRAPH_FORMAT, WEIGHTED_TYPES, CaffeGraphSSD, GraphError, infer_shapes,
                                parse_layout)
from symbol.factory import CAFFE_GRAPH, get_model
from symbol.presets import Preprocessing

from .blobs import ConversionError, array, batch_norm_affine, batch_norm_stats, fold_affine, scale_params
from tools.model_converters.classes import class_names_for

from .converter import Conversion, conv_spec, input_side, nms_settings
from .reader import CaffeLayer, CaffeNet

__all__ = ["GraphConversion", "convert_graph", "graph_layout", "head_layers", "preprocess_from_prototxt"]

logger = logging.getLogger(__name__)

#: Types that only feed data in (their tops are the network input) or do nothing at inference.
_SKIPPED = frozenset({"Input", "Silence", "Data", "AnnotatedData", "ImageData", "DummyData", "MemoryData"})
#: What may stand between the class logits and DetectionOutput.
_CONF_CHAIN = ("Reshape", "Softmax", "Flatten", "Permute")
_POOL = {0: "max", 1: "avg"}
_ELTWISE = {0: "prod", 1: "sum", 2: "max"}


@dataclass
class _Node:
    """A layer on its way into the layout: SSA blob names, resolved parameters,
    and the Caffe layers whose weights it carries (a convolution with its folded
    BatchNorm and Scale, a BatchNorm with its Scale)."""

    layer: CaffeLayer
    type: str
    bottom: list[str]
    top: list[str]
    params: dict
    batch_norm: Optional[CaffeLayer] = None
    scale: Optional[CaffeLayer] = None

    def to_dict(self) -> dict:
        return {"name": self.layer.name, "type": self.type, "bottom": list(self.bottom), "top": list(self.top),
                "params": self.params}


@dataclass
class GraphConversion(Conversion):
    """What :func:`convert_graph` did (the summary printed by ``convert_model.py``)."""

    layers_kept: int = 0
    batch_norms_folded: int = 0
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        lines = [f"network {CAFFE_GRAPH} (the Caffe graph as it is) at {self.data_shape}, "
                 f"{len(self.class_names)} classes",
                 f"{self.layers_kept} layers ({len(self.layers_mapped)} Caffe layers with weights, "
                 f"{self.blobs_mapped} blobs; {self.batch_norms_folded} BatchNorm folded into convolutions)",
                 f"priors: {self.priors_checked} from {self.data_shape}x{self.data_shape}"]
        if self.dropped:
            lines.append(f"not needed for the detections: {', '.join(self.dropped)}")
        if self.nms:
            lines.append("decoding: " + ", ".join(f"{k}={v}" for k, v in self.nms.items()))
        lines.append(f"parameters left unset: {', '.join(self.unset_params) if self.unset_params else 'none'}")
        return lines


# ---------------------------------------------------------------------- parameters
def _in_test_phase(layer: CaffeLayer) -> bool:
    """Caffe's NetStateRule for the TEST phase (phase 1): no include rule names
    another phase, no exclude rule names TEST."""
    includes = list(getattr(layer.param, "include", []))
    excludes = list(getattr(layer.param, "exclude", []))
    if includes and not any(not r.HasField("phase") or r.phase == 1 for r in includes):
        return False
    return not any(r.HasField("phase") and r.phase == 1 for r in excludes)


def _pair(values: Sequence[int], h: int, w: int, default: int) -> list[int]:
    if h or w:
        return [int(h), int(w)]
    values = list(values)
    if not values:
        return [default, default]
    return [int(values[0]), int(values[-1])]


def _params(layer: CaffeLayer, where: str) -> tuple[str, dict]:
    """The layout type and resolved parameters of one Caffe layer."""
    t, p = layer.type, layer.param

    def error(message: str) -> ConversionError:
        return ConversionError(f"{where}: layer {layer.name!r} ({t}): {message}")

    if t in ("Convolution", "DepthwiseConvolution", "Deconvolution"):
        s = conv_spec(layer)
        if p.convolution_param.axis != 1:
            raise error("convolution over an axis other than the channels is not supported")
        return ("Deconvolution" if t == "Deconvolution" else "Convolution",
                dict(num_output=s.num_output, kernel=list(s.kernel), stride=list(s.stride), pad=list(s.pad),
                     dilation=list(s.dilation), group=s.group, bias=s.bias_term))
    if t == "Pooling":
        q = p.pooling_param
        if q.pool not in _POOL:
            raise error("stochastic pooling is not supported")
        kernel = _pair([q.kernel_size] if q.kernel_size else [], q.kernel_h, q.kernel_w, 0)
        if not q.global_pooling and min(kernel) < 1:
            raise error("no kernel size")
        return t, dict(pool=_POOL[q.pool], kernel=kernel, stride=_pair([q.stride], q.stride_h, q.stride_w, 1),
                       pad=_pair([q.pad], q.pad_h, q.pad_w, 0), **{"global": bool(q.global_pooling)})
    if t == "BatchNorm":
        q = p.batch_norm_param
        return t, dict(eps=float(q.eps), momentum=float(q.moving_average_fraction), scale=False, bias=False)
    if t == "Scale":
        q = p.scale_param
        if q.axis != 1 or q.num_axes != 1:
            raise error(f"axis {q.axis} / num_axes {q.num_axes}: only a scale per channel is supported")
        return t, dict(bias=bool(q.bias_term))
    if t == "ReLU":
        return t, dict(negative_slope=float(p.relu_param.negative_slope))
    if t == "PReLU":
        return t, dict(channel_shared=bool(p.prelu_param.channel_shared))
    if t == "Clip":
        q = p.clip_param
        if not (q.HasField("min") and q.HasField("max")) or q.min > q.max:
            raise error("clip_param needs min <= max")
        return t, dict(min=float(q.min), max=float(q.max))
    if t in ("ReLU6", "Sigmoid", "TanH", "Split"):
        return t, {}
    if t == "Eltwise":
        q = p.eltwise_param
        coeff = [float(c) for c in q.coeff]
        if coeff and q.operation != 1:
            raise error("coefficients apply to SUM only")
        return t, dict(operation=_ELTWISE[q.operation], coeff=coeff)
    if t == "Concat":
        q = p.concat_param
        return t, dict(axis=int(q.axis) if q.HasField("axis") or not q.HasField("concat_dim") else int(q.concat_dim))
    if t == "Slice":
        q = p.slice_param
        return t, dict(axis=int(q.axis) if q.HasField("axis") or not q.HasField("slice_dim") else int(q.slice_dim),
                       slice_points=[int(v) for v in q.slice_point])
    if t == "Dropout":
        return t, dict(ratio=float(p.dropout_param.dropout_ratio))
    if t == "Normalize":
        q = p.norm_param
        return t, dict(across_spatial=bool(q.across_spatial), channel_shared=bool(q.channel_shared), eps=float(q.eps))
    if t == "Power":
        q = p.power_param
        return t, dict(power=float(q.power), scale=float(q.scale), shift=float(q.shift))
    if t == "Permute":
        return t, dict(order=[int(o) for o in p.permute_param.order])
    if t == "Flatten":
        q = p.flatten_param
        return t, dict(axis=int(q.axis), end_axis=int(q.end_axis))
    if t == "Reshape":
        q = p.reshape_param
        return t, dict(dims=[int(d) for d in q.shape.dim], axis=int(q.axis), num_axes=int(q.num_axes))
    if t == "Softmax":
        return t, dict(axis=int(p.softmax_param.axis))
    if t == "PriorBox":
        q = p.prior_box_param
        if not q.min_size or min(q.min_size) <= 0:
            raise error("needs positive min_size values")
        if q.max_size and len(q.max_size) != len(q.min_size):
            raise error(f"{len(q.max_size)} max_size values for {len(q.min_size)} min_size values")
        if any(int(mx_) <= int(mn) for mn, mx_ in zip(q.min_size, q.max_size)):
            raise error("every max_size must be larger than its min_size")
        variances = [float(v) for v in q.variance] or [0.1]
        if len(variances) not in (1, 4) or min(variances) <= 0:
            raise error(f"variance must be one or four positive values, got {variances}")
        img_h, img_w = (q.img_h, q.img_w) if (q.img_h or q.img_w) else (q.img_size, q.img_size)
        step_h, step_w = (q.step_h, q.step_w) if (q.step_h or q.step_w) else (q.step, q.step)
        return t, dict(min_sizes=[float(v) for v in q.min_size], max_sizes=[float(v) for v in q.max_size],
                       aspect_ratios=[float(r) for r in q.aspect_ratio], flip=bool(q.flip), clip=bool(q.clip),
                       variances=variances, img_h=int(img_h), img_w=int(img_w), step_h=float(step_h),
                       step_w=float(step_w), offset=float(q.offset))
    raise ConversionError(f"{where}: layer {layer.name!r} has the unsupported type {t!r}")


# ---------------------------------------------------------------------- the graph
def _nodes(net: CaffeNet) -> tuple[str, list[_Node], Optional[CaffeLayer], dict[str, str]]:
    """(input blob, nodes in SSA form, the DetectionOutput layer, SSA name of its bottoms' versions)."""
    where = str(net.path)
    layers = [l for l in net.layers if _in_test_phase(l)]
    inputs = [l for l in layers if l.type in _SKIPPED and l.type != "Silence"]
    if inputs:
        data = inputs[0].top[0]
    else:
        data = net.input_names[0] if net.input_names else "data"
    version: dict[str, str] = {data: data}
    written: dict[str, int] = {data: 1}
    nodes, detection, det_inputs = [], [], {}
    for layer in layers:
        if layer.type in _SKIPPED:
            continue
        missing = [b for b in layer.bottom if b not in version]
        if missing:
            raise ConversionError(f"{where}: layer {layer.name!r} reads blob {missing[0]!r}, which no earlier "
                                  f"layer writes")
        bottom = [version[b] for b in layer.bottom]
        if layer.type == "DetectionOutput":
            detection.append(layer)
            det_inputs = {"loc": bottom[0], "conf": bottom[1], "priors": bottom[2]} if len(bottom) == 3 else {}
            continue
        kind, params = _params(layer, where)
        top = []
        for t in layer.top:
            n = written.get(t, 0)
            written[t] = n + 1
            version[t] = t if n == 0 else f"{t}@{n}"
            top.append(version[t])
        nodes.append(_Node(layer, kind, bottom, top, params))
    if not detection:
        raise ConversionError(f"{where}: not an SSD deploy graph: it has no DetectionOutput layer (for the "
                              f"ImageNet base network of SSD use --base)")
    if len(detection) > 1:
        raise ConversionError(f"{where}: {len(detection)} DetectionOutput layers; an SSD has one")
    if not det_inputs:
        raise ConversionError(f"{where}: layer {detection[0].name!r}: expected 3 bottoms (loc, conf, priors), got "
                              f"{len(detection[0].bottom)}")
    return data, nodes, detection[0], det_inputs


def _producers(nodes: list[_Node]) -> dict[str, _Node]:
    return {t: n for n in nodes for t in n.top}


def _conf_logits(where: str, blob: str, producers: dict[str, _Node], classes: int) -> tuple[str, list[_Node]]:
    """Walk back from DetectionOutput's conf input over Caffe's Reshape / Softmax /
    Flatten to the class logits; the softmax must run over the class axis."""
    chain = []
    node = producers.get(blob)
    while node is not None and node.type in _CONF_CHAIN:
        chain.append(node)
        node = producers.get(node.bottom[0])
    softmax = [n for n in chain if n.type == "Softmax"]
    if len(softmax) != 1:
        raise ConversionError(f"{where}: the class scores must reach DetectionOutput through one Softmax (Caffe's "
                              f"mbox_conf -> Reshape -> Softmax -> Flatten), found "
                              f"{[n.layer.name + ' (' + n.type + ')' for n in chain] or 'none'}")
    reshape = [n for n in chain if n.type == "Reshape" and chain.index(n) > chain.index(softmax[0])]
    dims = reshape[0].params["dims"] if reshape else []
    axis = softmax[0].params["axis"]
    if len(reshape) != 1 or not dims or dims[-1] != classes or axis not in (len(dims) - 1, -1):
        raise ConversionError(f"{where}: layer {softmax[0].layer.name!r}: the softmax must run over the "
                              f"{classes} classes of a Reshape to [..., {classes}] (got reshape {dims}, axis "
                              f"{axis})")
    return reshape[0].bottom[0], chain


def _head_convs(where: str, blob: str, producers: dict[str, _Node]) -> list[_Node]:
    """The convolutions whose outputs, permuted, flattened and concatenated, are ``blob``."""
    node = producers.get(blob)
    if node is None:
        raise ConversionError(f"{where}: the predictions {blob!r} come straight from the input")
    if node.type == "Concat":
        return [h for b in node.bottom for h in _head_convs(where, b, producers)]
    if node.type in ("Flatten", "Permute", "Reshape"):
        return _head_convs(where, node.bottom[0], producers)
    if node.type != "Convolution":
        raise ConversionError(f"{where}: layer {node.layer.name!r} ({node.type}) computes predictions; the "
                              f"heads must be convolutions")
    return [node]


def head_layers(net: CaffeNet) -> tuple[list[CaffeLayer], list[CaffeLayer]]:
    """The box-offset and the class-score head convolutions of an SSD deploy net,
    in source order (as DetectionOutput's inputs concatenate them)."""
    where = str(net.path)
    _, nodes, detection, det = _nodes(net)
    producers = _producers(nodes)
    logits, _ = _conf_logits(where, det["conf"], producers, int(detection.param.detection_output_param.num_classes))
    return ([n.layer for n in _head_convs(where, det["loc"], producers)],
            [n.layer for n in _head_convs(where, logits, producers)])


def _needed(nodes: list[_Node], outputs: Sequence[str]) -> list[_Node]:
    """The nodes the outputs depend on, in order."""
    want = set(outputs)
    keep = []
    for node in reversed(nodes):
        if want & set(node.top):
            keep.append(node)
            want.update(node.bottom)
    return keep[::-1]


def _absorbs(src: _Node, node: _Node, fold_batch_norm: bool) -> bool:
    """Whether ``node`` (a BatchNorm or Scale reading only ``src``'s output) merges into ``src``."""
    if src.type == "BatchNorm":  # a kept BatchNorm takes its Scale
        return node.type == "Scale" and src.scale is None
    if src.type != "Convolution" or not fold_batch_norm or src.scale is not None:
        return False
    return node.type == "Scale" or src.batch_norm is None


def _fold(nodes: list[_Node], protected: set, fold_batch_norm: bool) -> tuple[list[_Node], int]:
    """Fold each BatchNorm (and its Scale) into the convolution before it when that
    convolution's output feeds nothing else; merge a remaining BatchNorm's Scale
    into it. ``protected`` blobs (the outputs) are kept. Returns the nodes left
    and the number of BatchNorm layers folded."""
    consumers: dict[str, list[_Node]] = {}
    for n in nodes:
        for b in n.bottom:
            consumers.setdefault(b, []).append(n)
    producers = _producers(nodes)
    out: list[_Node] = []
    folded = 0
    for n in nodes:
        src = producers.get(n.bottom[0]) if n.type in ("BatchNorm", "Scale") and len(n.bottom) == 1 else None
        if (src is not None and consumers[n.bottom[0]] == [n] and n.bottom[0] not in protected
                and _absorbs(src, n, fold_batch_norm)):
            if n.type == "BatchNorm":
                src.batch_norm = n.layer
                src.params["bias"] = True
                folded += 1
            else:
                src.scale = n.layer
                if src.type == "BatchNorm":
                    src.params.update(scale=True, bias=bool(n.params["bias"]))
                else:
                    src.params["bias"] = True
            src.top = n.top
            producers[n.top[0]] = src
            continue
        out.append(n)
    return out, folded


def graph_layout(net: CaffeNet, fold_batch_norm: bool = True) -> tuple[dict, list[_Node], CaffeLayer, int]:
    """The layout of ``net`` (see :mod:`symbol.caffe_graph`), its nodes (with the Caffe
    layers that hold their weights), the DetectionOutput layer and the number of
    BatchNorm layers folded.

    Raises
    ------
    ConversionError
        Not an SSD deploy graph, or a layer the graph cannot run (named).
    """
    where = str(net.path)
    data, nodes, detection, det = _nodes(net)
    classes = int(detection.param.detection_output_param.num_classes)
    producers = _producers(nodes)
    logits, _ = _conf_logits(where, det["conf"], producers, classes)
    heads = _head_convs(where, logits, producers)
    nodes = _needed(nodes, [det["loc"], logits, det["priors"]])
    nodes, folded = _fold(nodes, {det["loc"], logits, det["priors"]}, fold_batch_norm)
    layout = {"format": GRAPH_FORMAT, "version": 1, "input": data, "layers": [n.to_dict() for n in nodes],
              "outputs": {"loc": det["loc"], "conf": logits, "priors": det["priors"]},
              "class_heads": [h.layer.name for h in heads], "num_classes": classes}
    return layout, nodes, detection, folded


# ---------------------------------------------------------------------- weights
def _weights(node: _Node, in_shape: tuple, out_shape: tuple, blobs: dict, where: str) -> dict[str, np.ndarray]:
    """The Gluon parameters of one node from the caffemodel."""
    layer, p, t = node.layer, node.params, node.type
    cin, cout = in_shape[1], out_shape[1]
    if t in ("Convolution", "Deconvolution"):
        k = tuple(p["kernel"])
        spec = conv_spec(layer)
        shape = (cout, cin // p["group"]) + k if t == "Convolution" else (cin, cout // p["group"]) + k
        count = 2 if spec.bias_term else 1
        weight = array(blobs, layer, 0, shape, "weights", where, count)
        bias = array(blobs, layer, 1, (cout,), "bias", where, count) if spec.bias_term else np.zeros(cout)
        mul, add = np.ones(cout), np.zeros(cout)
        if node.batch_norm is not None:
            mean, var = batch_norm_stats(blobs, node.batch_norm, cout, where)
            mul, add = batch_norm_affine(mean, var, node.batch_norm.param.batch_norm_param.eps)
        if node.scale is not None:
            gamma, beta = scale_params(blobs, node.scale, cout, where)
            mul, add = mul * gamma, add * gamma + beta
        weight, bias = fold_affine(weight, bias, mul, add)
        return {"weight": weight, "bias": bias} if p["bias"] else {"weight": weight}
    if t == "BatchNorm":
        mean, var = batch_norm_stats(blobs, layer, cin, where)
        out = {"running_mean": mean, "running_var": var}
        gamma, beta = (scale_params(blobs, node.scale, cin, where) if node.scale is not None
                       else (np.ones(cin), np.zeros(cin)))
        out.update(gamma=gamma, beta=beta)
        return out
    if t == "Scale":
        gamma, beta = scale_params(blobs, layer, cin, where)
        return {"gamma": gamma, "beta": beta} if p["bias"] else {"gamma": gamma}
    if t == "PReLU":
        return {"alpha": array(blobs, layer, 0, (1 if p["channel_shared"] else cin,), "slopes", where)}
    if t == "Normalize":
        return {"scale": array(blobs, layer, 0, (1 if p["channel_shared"] else cin,), "scale", where)}
    raise ConversionError(f"{where}: layer {layer.name!r} has no weights")  # pragma: no cover


def _blob_count(node: _Node, blobs: dict) -> int:
    return sum(len(blobs.get(l.name, [])) for l in (node.layer, node.batch_norm, node.scale) if l is not None)


def preprocess_from_prototxt(net: CaffeNet) -> Optional[Preprocessing]:
    """Caffe's input transform when the deploy net states it (``transform_param``
    of its input layer): BGR minus ``mean_value``, times ``scale``."""
    for layer in net.layers:
        if layer.type not in _SKIPPED or not layer.param.HasField("transform_param"):
            continue
        t = layer.param.transform_param
        if t.mean_file:
            raise ConversionError(f"{net.path}: layer {layer.name!r}: a mean_file cannot be read; pass --mean "
                                  f"B,G,R instead")
        mean = [float(v) for v in t.mean_value] or [0.0]
        if len(mean) not in (1, 3):
            raise ConversionError(f"{net.path}: layer {layer.name!r}: {len(mean)} mean values, expected 1 or 3")
        mean = mean * 3 if len(mean) == 1 else mean
        return Preprocessing(mean=tuple(mean), std=(1.0 / float(t.scale),) * 3, bgr=True)
    return None


def convert_graph(net_def: CaffeNet, blobs: dict, data_shape: Optional[int] = None,
                  class_names: Optional[Sequence[str]] = None, preprocess: Optional[Preprocessing] = None,
                  fold_batch_norm: bool = True) -> GraphConversion:
    """Convert any Caffe SSD into a :class:`~symbol.caffe_graph.CaffeGraphSSD` with its weights.

    Parameters
    ----------
    net_def : CaffeNet
        The deploy prototxt.
    blobs : dict
        Layer name -> BlobProto list (the caffemodel).
    data_shape : int, optional
        Input side (default: the prototxt's, which must be square).
    class_names : sequence of str, optional
        Default: VOC's 20 for a 21-way model; required otherwise.
    preprocess : Preprocessing, optional
        Default: the prototxt's ``transform_param``, else BGR minus (104, 117, 123).
    fold_batch_norm : bool
        Fold BatchNorm / Scale into the convolutions they follow.

    Raises
    ------
    ConversionError
        Anything the graph cannot run, misshapen or missing weights (named).
    """
    where = str(net_def.path)
    layout, nodes, detection, folded = graph_layout(net_def, fold_batch_norm)
    side = input_side(net_def, data_shape)
    classes = layout["num_classes"] - 1
    try:
        class_names = class_names_for(classes, class_names, where)
    except ValueError as err:
        raise ConversionError(str(err)) from None
    try:
        shapes = infer_shapes(parse_layout(layout), side)
    except GraphError as err:
        raise ConversionError(f"{where}: {err}") from None
    num_priors = shapes[layout["outputs"]["priors"]][2] // 4
    preprocess = preprocess or preprocess_from_prototxt(net_def) or Preprocessing((104.0, 117.0, 123.0), bgr=True)
    nms = nms_settings(where, detection, classes, num_priors)
    try:
        net = get_model(CAFFE_GRAPH, side, classes, layout=layout, preprocess=preprocess, ctx=mx.cpu(), **nms)
    except GraphError as err:
        raise ConversionError(f"{where}: {err}") from None
    assert isinstance(net, CaffeGraphSSD)
    conversion = GraphConversion(net, CAFFE_GRAPH, side, list(class_names), layers_kept=len(nodes),
                                 batch_norms_folded=folded, nms=nms, priors_checked=num_priors)
    done = set()
    for node in nodes:
        if node.type not in WEIGHTED_TYPES:
            continue
        block = net.block_of(node.layer.name)
        values = _weights(node, shapes[node.bottom[0]], shapes[node.top[0]], blobs, where)
        for name, value in values.items():
            param = getattr(block, name)
            if tuple(param.shape) != value.shape:
                raise ConversionError(f"{where}: layer {node.layer.name!r}: {name} of shape {list(value.shape)} "
                                      f"does not fit {list(param.shape)}")
            param.set_data(mx.nd.array(value, dtype="float32"))
            done.add(id(param))
        conversion.blobs_mapped += _blob_count(node, blobs)
        conversion.layers_mapped += [l.name for l in (node.layer, node.batch_norm, node.scale) if l is not None]
    # Fixed parameters (a BatchNorm's unit gamma / zero beta without a Scale) are set above too;
    # constants (the priors' sizes) come from the layout.
    conversion.unset_params = sorted(name for name, p in net._collect_params_with_prefix().items()
                                     if id(p) not in done and not isinstance(p, mx.gluon.Constant))
    if conversion.unset_params:
        raise ConversionError(f"{where}: no Caffe weights for {', '.join(conversion.unset_params)}")
    used = {n.layer.name for n in nodes} | {l.name for n in nodes for l in (n.batch_norm, n.scale) if l is not None}
    conversion.dropped = [l.name for l in net_def.layers if l.name not in used and l.type not in _SKIPPED
                          and l.type != "DetectionOutput" and _in_test_phase(l)
                          and l.type not in _CONF_CHAIN]
    return conversion
