"""An SSD that executes a Caffe deploy graph layer by layer, as one HybridBlock.

Caffe SSDs that map onto no preset (OpenCV's ResNet-10 face detector, SSDs of
other backbones) are converted into this network (``get_model('caffe', ...)``).
Its *layout* (recorded in the checkpoint config) is the Caffe graph in plain
JSON, with every default resolved::

    {"format": "caffe-graph", "version": 1, "input": "data",
     "layers": [{"name": "conv1", "type": "Convolution", "bottom": ["data"],
                 "top": ["conv1"], "params": {"num_output": 32, "kernel": [7, 7], ...}}, ...],
     "outputs": {"loc": "mbox_loc", "conf": "mbox_conf", "priors": "mbox_priorbox"},
     "class_heads": ["conv4_3_norm_mbox_conf", ...], "num_classes": 2}

The layers run in order, each reading and writing named blobs, from the
preprocessed input (:class:`symbol.layers.Preprocess`: Caffe's mean, scale and
BGR order) to three blobs: ``loc`` (``(B, N * 4)`` box offsets), ``conf``
(``(B, N * num_classes)`` class logits, before Caffe's Reshape / Softmax) and
``priors`` (PriorBox's ``(1, 2, N * 4)``: corners, then variances). What
follows them in Caffe (the softmax and DetectionOutput) is the project's
decoding (:class:`symbol.detection.DetectionOutput`, usually in Caffe mode).
``class_heads`` are the convolutions whose outputs are the class scores: their
width follows the number of classes, so the graph serves any class count
(fine-tuning) and their weights are what fine-tuning re-initializes.

Layer types (Caffe's, parameters as in ``caffe.proto`` with defaults resolved):
Convolution (groups, dilation, bias or not), Deconvolution, BatchNorm (with
its Scale merged, or alone), Scale, ReLU (``negative_slope``), PReLU, ReLU6,
Clip, Sigmoid, TanH, Pooling (max / ave, global, Caffe's rounding), Eltwise
(sum with coefficients, prod, max), Concat, Slice, Split, Dropout, Normalize,
Power, Permute, Flatten, Reshape, Softmax, PriorBox. Spatial sizes follow
Caffe's arithmetic at the network's ``data_shape`` (pooling rounds up, as
Caffe does); priors are computed in the graph from the feature maps, exactly as
Caffe's ``prior_box_layer.cpp`` (which truncates ``min_size`` and
``max_size`` to integers).
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from mxnet import init
from mxnet.gluon import HybridBlock, nn

from .presets import Preprocessing
from .ssd import SSDBase

__all__ = ["CaffeGraphSSD", "GRAPH_FORMAT", "GraphError", "GraphLayer", "LAYER_TYPES", "PriorBox", "WEIGHTED_TYPES",
           "conv_output", "infer_shapes", "parse_layout", "pool_output", "prior_sizes"]

logger = logging.getLogger(__name__)

GRAPH_FORMAT = "caffe-graph"
_GRAPH_VERSION = 1

#: Layer types the graph executes; anything else is refused by name.
LAYER_TYPES = frozenset({
    "Convolution", "Deconvolution", "BatchNorm", "Scale", "ReLU", "PReLU", "ReLU6", "Clip", "Sigmoid", "TanH",
    "Pooling", "Eltwise", "Concat", "Slice", "Split", "Dropout", "Normalize", "Power", "Permute", "Flatten",
    "Reshape", "Softmax", "PriorBox"})
#: Types whose output has the shape of their (first) input.
_SAME_SHAPE = frozenset({"BatchNorm", "Scale", "ReLU", "PReLU", "ReLU6", "Clip", "Sigmoid", "TanH", "Dropout",
                         "Normalize", "Power", "Softmax"})


class GraphError(ValueError):
    """A layout that is not a valid Caffe graph (the message names the layer)."""


@dataclass(frozen=True)
class GraphLayer:
    """One layer of the layout."""

    name: str
    type: str
    bottom: tuple[str, ...]
    top: tuple[str, ...]
    params: Mapping[str, Any]

    def error(self, message: str) -> GraphError:
        return GraphError(f"layer {self.name!r} ({self.type}): {message}")


@dataclass(frozen=True)
class GraphLayout:
    """A parsed layout (see the module docstring)."""

    input: str
    layers: tuple[GraphLayer, ...]
    loc: str
    conf: str
    priors: str
    class_heads: tuple[str, ...]
    num_classes: int  # class-score width (with background) the class heads were written for


# ---------------------------------------------------------------------- Caffe's arithmetic
def conv_output(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Caffe's (and MXNet's) convolution output size: floor."""
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def pool_output(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's pooling output size: ceil, and the last window must start inside
    the input or its left padding."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def prior_sizes(params: Mapping[str, Any]) -> list[tuple[float, float]]:
    """``(width, height)`` in pixels of each prior at one location, in Caffe's order.

    Per ``min_size`` (truncated to an integer, as Caffe's ``int min_size_``):
    the square ``min``, the square ``sqrt(min * max)`` (max truncated too) when
    there are max sizes, then ``min * sqrt(r)`` by ``min / sqrt(r)`` for every
    aspect ratio but 1 (``aspect_ratios`` as Caffe expands them: 1, then each
    new ratio and, with ``flip``, its inverse).
    """
    ratios = [1.0]
    for r in params["aspect_ratios"]:
        if any(abs(r - a) < 1e-6 for a in ratios):
            continue
        ratios.append(float(r))
        if params["flip"]:
            ratios.append(1.0 / r)
    sizes = []
    for s, min_size in enumerate(params["min_sizes"]):
        mn = int(min_size)
        sizes.append((float(mn), float(mn)))
        if params["max_sizes"]:
            both = math.sqrt(mn * int(params["max_sizes"][s]))
            sizes.append((both, both))
        for r in ratios[1:]:
            sizes.append((mn * math.sqrt(r), mn / math.sqrt(r)))
    return sizes


# ---------------------------------------------------------------------- layout parsing
def _pair(params: Mapping[str, Any], key: str, layer: GraphLayer) -> tuple[int, int]:
    value = params.get(key)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise layer.error(f"parameter {key!r} must be two integers, got {value!r}")
    return int(value[0]), int(value[1])


def parse_layout(layout: Mapping[str, Any]) -> GraphLayout:
    """Validate a layout's structure (not yet its shapes: see :func:`infer_shapes`).

    Raises
    ------
    GraphError
        A malformed layout, an unknown layer type, or a blob that is read
        before any layer writes it (the message names the layer).
    """
    if not isinstance(layout, Mapping) or layout.get("format") != GRAPH_FORMAT:
        raise GraphError(f"not a Caffe graph layout (format {layout.get('format') if isinstance(layout, Mapping) else None!r}, "
                         f"expected {GRAPH_FORMAT!r})")
    if layout.get("version") != _GRAPH_VERSION:
        raise GraphError(f"Caffe graph layout version {layout.get('version')!r} is not {_GRAPH_VERSION}; "
                         f"update the project or convert the model again")
    try:
        layers = []
        for d in layout["layers"]:
            layer = GraphLayer(str(d["name"]), str(d["type"]), tuple(str(b) for b in d["bottom"]),
                               tuple(str(t) for t in d["top"]), dict(d.get("params", {})))
            layers.append(layer)
        outputs = layout["outputs"]
        parsed = GraphLayout(str(layout["input"]), tuple(layers), str(outputs["loc"]), str(outputs["conf"]),
                             str(outputs["priors"]), tuple(str(n) for n in layout["class_heads"]),
                             int(layout["num_classes"]))
    except (KeyError, TypeError, ValueError) as err:
        raise GraphError(f"malformed Caffe graph layout ({type(err).__name__}: {err})") from None
    known = {parsed.input}
    names = set()
    for layer in parsed.layers:
        if layer.type not in LAYER_TYPES:
            raise layer.error(f"unsupported layer type {layer.type!r}")
        if layer.name in names:
            raise layer.error("a second layer of this name")
        names.add(layer.name)
        if not layer.top:
            raise layer.error("no top blob")
        for b in layer.bottom:
            if b not in known:
                raise layer.error(f"reads blob {b!r} before any layer writes it")
        known.update(layer.top)
    for role in ("loc", "conf", "priors"):
        if getattr(parsed, role) not in known:
            raise GraphError(f"the {role} output blob {getattr(parsed, role)!r} is written by no layer")
    for name in parsed.class_heads:
        if name not in names:
            raise GraphError(f"class head {name!r} is not a layer of the graph")
    if parsed.num_classes < 2:
        raise GraphError(f"num_classes {parsed.num_classes} must count the background too (at least 2)")
    return parsed


# ---------------------------------------------------------------------- shapes
def _conv_shape(layer: GraphLayer, shape: tuple[int, ...], num_output: int) -> tuple[int, ...]:
    p = layer.params
    if len(shape) != 4:
        raise layer.error(f"needs a 4-D input, got shape {shape}")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_pair(p, k, layer) for k in ("kernel", "stride", "pad", "dilation"))
    group = int(p["group"])
    if group < 1 or shape[1] % group or num_output % group:
        raise layer.error(f"group {group} does not divide {shape[1]} input and {num_output} output channels")
    if layer.type == "Deconvolution":
        h = sh * (shape[2] - 1) + dh * (kh - 1) + 1 - 2 * ph
        w = sw * (shape[3] - 1) + dw * (kw - 1) + 1 - 2 * pw
    else:
        h, w = conv_output(shape[2], kh, sh, ph, dh), conv_output(shape[3], kw, sw, pw, dw)
    if h < 1 or w < 1:
        raise layer.error(f"the output of input {shape} would be empty ({h}x{w})")
    return (shape[0], num_output, h, w)


def _pool_shape(layer: GraphLayer, shape: tuple[int, ...]) -> tuple[int, ...]:
    p = layer.params
    if len(shape) != 4:
        raise layer.error(f"needs a 4-D input, got shape {shape}")
    if p["global"]:
        return (shape[0], shape[1], 1, 1)
    (kh, kw), (sh, sw), (ph, pw) = (_pair(p, k, layer) for k in ("kernel", "stride", "pad"))
    if ph >= kh or pw >= kw:
        raise layer.error(f"pad {ph, pw} must be smaller than the kernel {kh, kw}")
    h, w = pool_output(shape[2], kh, sh, ph), pool_output(shape[3], kw, sw, pw)
    if h < 1 or w < 1:
        raise layer.error(f"the output of input {shape} would be empty")
    return (shape[0], shape[1], h, w)


def _axis(layer: GraphLayer, axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise layer.error(f"axis {axis} is out of range for a {rank}-D input")
    return a


def _reshape_shape(layer: GraphLayer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Caffe's Reshape: ``dims`` replace the input axes ``axis .. axis + num_axes``
    (a negative ``axis`` counts from the end, -1 being after the last axis); a
    0 copies the input axis at that position, one -1 is inferred."""
    p = layer.params
    dims = [int(d) for d in p["dims"]]
    axis, num_axes = int(p["axis"]), int(p["num_axes"])
    start = axis if axis >= 0 else len(shape) + axis + 1
    end = len(shape) if num_axes == -1 else start + num_axes
    if not 0 <= start <= end <= len(shape):
        raise layer.error(f"axis {axis} / num_axes {num_axes} do not fit a {len(shape)}-D input")
    out = []
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= len(shape):
                raise layer.error(f"dim {i} copies an axis the input does not have")
            out.append(shape[start + i])
        else:
            out.append(d)
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise layer.error(f"dims {dims} may hold at most one -1 and no other negative value")
    count = math.prod(shape[start:end])
    if -1 in out:
        rest = math.prod(d for d in out if d != -1)
        if rest == 0 or count % rest:
            raise layer.error(f"dims {dims} do not divide the {count} values of input {shape}")
        out[out.index(-1)] = count // rest
    if math.prod(out) != count:
        raise layer.error(f"dims {dims} hold {math.prod(out)} values, input {shape} has {count}")
    if start == 0 and dims and dims[0] != 0:
        raise layer.error(f"dims {dims} change the batch axis; only later axes can be reshaped")
    return tuple(shape[:start]) + tuple(out) + tuple(shape[end:])


def infer_shapes(graph: GraphLayout, data_shape: int, num_classes: Optional[int] = None
                 ) -> dict[str, tuple[int, ...]]:
    """The shape of every blob for one ``(1, 3, data_shape, data_shape)`` input.

    ``num_classes`` (foreground) sizes the class heads (default: the layout's).

    Raises
    ------
    GraphError
        Shapes that do not fit a layer (the message names it).
    """
    shapes: dict[str, tuple[int, ...]] = {graph.input: (1, 3, data_shape, data_shape)}
    for layer in graph.layers:
        ins = [shapes[b] for b in layer.bottom]
        p, t = layer.params, layer.type
        if not ins:
            raise layer.error("no bottom blob")
        x = ins[0]
        if t in ("Convolution", "Deconvolution"):
            num_output = _head_width(layer, graph, num_classes)
            outs = [_conv_shape(layer, x, num_output)]
        elif t == "Pooling":
            outs = [_pool_shape(layer, x)]
        elif t in _SAME_SHAPE:
            if t in ("BatchNorm", "Scale", "PReLU", "Normalize") and len(x) != 4:
                raise layer.error(f"needs a 4-D input, got shape {x}")
            if t == "Softmax":
                _axis(layer, int(p["axis"]), len(x))
            outs = [x]
        elif t == "Eltwise":
            if len(ins) < 2 or any(s != x for s in ins):
                raise layer.error(f"needs two or more inputs of one shape, got {ins}")
            coeff = p.get("coeff") or []
            if coeff and len(coeff) != len(ins):
                raise layer.error(f"{len(coeff)} coefficients for {len(ins)} inputs")
            outs = [x]
        elif t == "Concat":
            a = _axis(layer, int(p["axis"]), len(x))
            if any(len(s) != len(x) or s[:a] + s[a + 1:] != x[:a] + x[a + 1:] for s in ins):
                raise layer.error(f"inputs {ins} differ outside axis {a}")
            outs = [x[:a] + (sum(s[a] for s in ins),) + x[a + 1:]]
        elif t == "Slice":
            a = _axis(layer, int(p["axis"]), len(x))
            bounds = _slice_bounds(layer, x[a])
            outs = [x[:a] + (e - b,) + x[a + 1:] for b, e in bounds]
        elif t == "Split":
            outs = [x] * len(layer.top)
        elif t == "Permute":
            order = [int(o) for o in p["order"]]
            order += [i for i in range(len(x)) if i not in order]
            if sorted(order) != list(range(len(x))) or order[0] != 0:
                raise layer.error(f"order {p['order']} is not a permutation of a {len(x)}-D input's axes "
                                  f"that keeps the batch axis first")
            outs = [tuple(x[o] for o in order)]
        elif t == "Flatten":
            a = _axis(layer, int(p["axis"]), len(x))
            e = _axis(layer, int(p["end_axis"]), len(x))
            if e < a or a == 0:
                raise layer.error(f"axis {p['axis']} to end_axis {p['end_axis']} is empty or merges the "
                                  f"batch axis")
            outs = [x[:a] + (math.prod(x[a:e + 1]),) + x[e + 1:]]
        elif t == "Reshape":
            outs = [_reshape_shape(layer, x)]
        elif t == "PriorBox":
            if len(ins) != 2 or len(x) != 4 or len(ins[1]) != 4:
                raise layer.error("needs two 4-D inputs (the feature map and the image)")
            outs = [(1, 2, x[2] * x[3] * len(prior_sizes(p)) * 4)]
        else:  # parse_layout refused other types
            raise layer.error(f"unsupported layer type {t!r}")
        if t not in ("Split", "Slice") and len(layer.top) != 1:
            raise layer.error(f"{len(layer.top)} top blobs, expected 1")
        if t == "Slice" and len(layer.top) != len(outs):
            raise layer.error(f"{len(layer.top)} top blobs for {len(outs)} slices")
        if any(d < 1 for s in outs for d in s):
            raise layer.error(f"an output of input {x} would be empty: {outs}")
        for top, shape in zip(layer.top, outs):
            shapes[top] = shape
    return shapes


def _slice_bounds(layer: GraphLayer, size: int) -> list[tuple[int, int]]:
    points = [int(v) for v in layer.params.get("slice_points") or []]
    if points:
        edges = [0] + points + [size]
    else:
        parts = len(layer.top)
        if size % parts:
            raise layer.error(f"{size} channels do not split into {parts} equal slices")
        edges = [i * size // parts for i in range(parts + 1)]
    if any(b >= e for b, e in zip(edges, edges[1:])):
        raise layer.error(f"slice points {points} are not increasing inside (0, {size})")
    return list(zip(edges, edges[1:]))


def _head_width(layer: GraphLayer, graph: GraphLayout, num_classes: Optional[int]) -> int:
    """``num_output``, or for a class head the width for ``num_classes`` + background."""
    num_output = int(layer.params["num_output"])
    if layer.name not in graph.class_heads or num_classes is None:
        return num_output
    if num_output % graph.num_classes:
        raise layer.error(f"class head of {num_output} channels, not a multiple of "
                          f"{graph.num_classes} classes")
    return num_output // graph.num_classes * (num_classes + 1)


# ---------------------------------------------------------------------- layers with weights
class _Scale(HybridBlock):
    """Caffe's Scale over the channel axis: ``x * gamma (+ beta)``."""

    def __init__(self, channels: int, bias: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(channels,), init=init.One())
            self.beta = self.params.get("beta", shape=(channels,), init=init.Zero()) if bias else None

    def hybrid_forward(self, F, x, gamma, beta=None):
        x = F.broadcast_mul(x, F.reshape(gamma, shape=(1, -1, 1, 1)))
        return x if beta is None else F.broadcast_add(x, F.reshape(beta, shape=(1, -1, 1, 1)))


class _Normalize(HybridBlock):
    """Caffe's Normalize: ``x / sqrt(sum x^2 + eps)`` over the channels of each
    location (or over the whole sample with ``across_spatial``), times a
    learnable scale per channel (or one shared)."""

    def __init__(self, channels: int, across_spatial: bool, channel_shared: bool, eps: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self._mode = "instance" if across_spatial else "channel"
        self._eps = float(eps)
        with self.name_scope():
            self.scale = self.params.get("scale", shape=(1 if channel_shared else channels,),
                                         init=init.Constant(20.0))

    def hybrid_forward(self, F, x, scale):
        x = F.L2Normalization(x, mode=self._mode, eps=self._eps)
        return F.broadcast_mul(x, F.reshape(scale, shape=(1, -1, 1, 1)))


def _weighted_block(layer: GraphLayer, in_shape: tuple[int, ...], out_channels: int, prefix: str) -> HybridBlock:
    p, t, channels = layer.params, layer.type, in_shape[1]
    if t in ("Convolution", "Deconvolution"):
        args = dict(kernel_size=_pair(p, "kernel", layer), strides=_pair(p, "stride", layer),
                    padding=_pair(p, "pad", layer), dilation=_pair(p, "dilation", layer),
                    groups=int(p["group"]), use_bias=bool(p["bias"]), in_channels=channels, prefix=prefix)
        if t == "Deconvolution":
            return nn.Conv2DTranspose(out_channels, **args)
        return nn.Conv2D(out_channels, **args)
    if t == "BatchNorm":
        return nn.BatchNorm(epsilon=float(p["eps"]), momentum=float(p["momentum"]), scale=bool(p["scale"]),
                            center=bool(p["bias"]), in_channels=channels, prefix=prefix)
    if t == "Scale":
        return _Scale(channels, bool(p["bias"]), prefix=prefix)
    if t == "PReLU":
        return nn.PReLU(in_channels=1 if p["channel_shared"] else channels, prefix=prefix)
    if t == "Normalize":
        return _Normalize(channels, bool(p["across_spatial"]), bool(p["channel_shared"]), float(p["eps"]),
                          prefix=prefix)
    raise layer.error("has no weights")  # pragma: no cover (callers check WEIGHTED_TYPES)


#: Types with weights, each a child block of the network.
WEIGHTED_TYPES = frozenset({"Convolution", "Deconvolution", "BatchNorm", "Scale", "PReLU", "Normalize"})


class _Layers(HybridBlock):
    """Holds the weighted layers as named children (their parameters save as
    ``layers.NAME.weight`` ...); the network calls them, never this block."""

    def hybrid_forward(self, F, x):  # pragma: no cover
        raise RuntimeError("_Layers only holds the graph's layers")


def _block_name(name: str, taken: set) -> str:
    base = re.sub(r"\W", "_", name) or "layer"
    if base[0].isdigit():
        base = "l" + base
    out, i = base, 1
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


# ---------------------------------------------------------------------- the network
class CaffeGraphSSD(SSDBase):
    """An SSD whose predictions come from a Caffe deploy graph (see the module docstring).

    Parameters
    ----------
    layout : mapping
        The graph (:func:`parse_layout`'s format).
    num_classes : int
        Foreground classes; the class heads are sized for them.
    data_shape : int
        Input side length; spatial sizes and pooling conventions follow
        Caffe's arithmetic at this size.
    preprocess : Preprocessing
        In-graph input normalization (Caffe's mean, scale and BGR order).
    **kwargs
        Decoding defaults (see :class:`SSDBase`); the variances are the
        PriorBox layers'.

    Input / Output
    --------------
    As :class:`symbol.ssd.SSD`.

    Raises
    ------
    GraphError
        A layout that does not describe a valid graph at ``data_shape``.
    """

    def __init__(self, layout: Mapping[str, Any], num_classes: int, data_shape: int,
                 preprocess: Preprocessing, **kwargs) -> None:
        graph = parse_layout(layout)
        shapes = infer_shapes(graph, data_shape, num_classes)
        super().__init__(num_classes, data_shape, preprocess, variances=_variances(graph), **kwargs)
        self.graph = graph
        self.shapes = shapes
        self.num_priors = shapes[graph.priors][2] // 4
        self._pooling = {l.name: _pooling_convention(l, shapes[l.bottom[0]], shapes[l.top[0]])
                         for l in graph.layers if l.type == "Pooling"}
        self._check_outputs(shapes)
        taken: set = set()
        self._blocks: dict[str, str] = {}
        with self.name_scope():
            self.layers = _Layers()
            with self.layers.name_scope():
                for layer in graph.layers:
                    if layer.type not in WEIGHTED_TYPES and layer.type != "PriorBox":
                        continue
                    child = _block_name(layer.name, taken)
                    if layer.type == "PriorBox":
                        block = PriorBox(layer.params, prefix=f"{child}_")
                    else:
                        block = _weighted_block(layer, shapes[layer.bottom[0]], shapes[layer.top[0]][1], f"{child}_")
                    self.layers.register_child(block, child)
                    self._blocks[layer.name] = child
        self.class_head_prefixes = tuple(f"layers.{self._blocks[n]}." for n in graph.class_heads)

    def _check_outputs(self, shapes: dict) -> None:
        g = self.graph
        loc, conf, priors = shapes[g.loc], shapes[g.conf], shapes[g.priors]
        n = self.num_priors
        if priors[:2] != (1, 2) or len(priors) != 3:
            raise GraphError(f"the priors blob {g.priors!r} has shape {priors}, expected (1, 2, N * 4)")
        if len(loc) != 2 or loc[1] != n * 4:
            raise GraphError(f"the loc blob {g.loc!r} has shape {loc}, expected (1, {n * 4}) for {n} priors")
        if len(conf) != 2 or conf[1] != n * (self.num_classes + 1):
            raise GraphError(f"the conf blob {g.conf!r} has shape {conf}, expected "
                             f"(1, {n * (self.num_classes + 1)}) for {n} priors and "
                             f"{self.num_classes + 1} classes")

    def block_of(self, layer_name: str) -> HybridBlock:
        """The child block holding the weights of Caffe layer ``layer_name``."""
        return self.layers._children[self._blocks[layer_name]]

    def _predict(self, F, x, levels: bool = False):
        if levels:
            raise ValueError("a Caffe graph does not give the feature level of its priors (nms_mode 'mmdet')")
        x = self.preprocess(x)
        blobs = {self.graph.input: x}
        for layer in self.graph.layers:
            ins = [blobs[b] for b in layer.bottom]
            if layer.name in self._blocks:
                outs = [self.layers._children[self._blocks[layer.name]](*ins)]
            else:
                outs = self._run(F, layer, ins)
            for top, out in zip(layer.top, outs):
                blobs[top] = out
        cls_preds = F.reshape(blobs[self.graph.conf], shape=(0, -1, self.num_classes + 1))
        box_preds = blobs[self.graph.loc]
        anchors = F.reshape(F.slice_axis(blobs[self.graph.priors], axis=1, begin=0, end=1), shape=(1, -1, 4))
        return cls_preds, box_preds, anchors

    def _run(self, F, layer: GraphLayer, ins: list) -> list:
        """A layer without weights."""
        p, t, x = layer.params, layer.type, ins[0]
        if t == "ReLU":
            slope = float(p["negative_slope"])
            return [F.Activation(x, act_type="relu") if slope == 0 else
                    F.LeakyReLU(x, act_type="leaky", slope=slope)]
        if t == "ReLU6":
            return [F.clip(x, 0.0, 6.0)]
        if t == "Clip":
            return [F.clip(x, float(p["min"]), float(p["max"]))]
        if t == "Sigmoid":
            return [F.Activation(x, act_type="sigmoid")]
        if t == "TanH":
            return [F.Activation(x, act_type="tanh")]
        if t == "Pooling":
            kind = "max" if p["pool"] == "max" else "avg"
            if p["global"]:
                return [F.Pooling(x, kernel=(1, 1), pool_type=kind, global_pool=True)]
            return [F.Pooling(x, kernel=tuple(p["kernel"]), stride=tuple(p["stride"]), pad=tuple(p["pad"]),
                              pool_type=kind, pooling_convention=self._pooling[layer.name],
                              count_include_pad=True)]
        if t == "Eltwise":
            op = p["operation"]
            if op == "prod":
                out = ins[0]
                for y in ins[1:]:
                    out = out * y
                return [out]
            if op == "max":
                out = ins[0]
                for y in ins[1:]:
                    out = F.maximum(out, y)
                return [out]
            coeff = p.get("coeff") or []
            if coeff and any(c != 1 for c in coeff):
                return [F.add_n(*[y * float(c) if c != 1 else y for y, c in zip(ins, coeff)])]
            return [F.add_n(*ins)]
        if t == "Concat":
            axis = _axis(layer, int(p["axis"]), len(self.shapes[layer.bottom[0]]))
            return [F.concat(*ins, dim=axis)]
        if t == "Slice":
            axis = _axis(layer, int(p["axis"]), len(self.shapes[layer.bottom[0]]))
            bounds = _slice_bounds(layer, self.shapes[layer.bottom[0]][axis])
            return [F.slice_axis(x, axis=axis, begin=b, end=e) for b, e in bounds]
        if t == "Split":
            return [x] * len(layer.top)
        if t == "Dropout":
            return [F.Dropout(x, p=float(p["ratio"]))]
        if t == "Power":
            y = x
            if float(p["scale"]) != 1:
                y = y * float(p["scale"])
            if float(p["shift"]) != 0:
                y = y + float(p["shift"])
            return [y if float(p["power"]) == 1 else y ** float(p["power"])]
        if t == "Permute":
            rank = len(self.shapes[layer.bottom[0]])
            order = [int(o) for o in p["order"]]
            order += [i for i in range(rank) if i not in order]
            return [F.transpose(x, axes=tuple(order))]
        if t in ("Flatten", "Reshape"):
            return [F.reshape(x, shape=(0,) + self.shapes[layer.top[0]][1:])]
        if t == "Softmax":
            return [F.softmax(x, axis=int(p["axis"]))]
        raise layer.error(f"unsupported layer type {t!r}")  # pragma: no cover


def _pooling_convention(layer: GraphLayer, in_shape: tuple, out_shape: tuple) -> str:
    """MXNet's pooling convention that gives Caffe's output size at this input."""
    p = layer.params
    if p["global"]:
        return "valid"
    sizes = []
    for i in (0, 1):
        k, s, pad, n = p["kernel"][i], p["stride"][i], p["pad"][i], in_shape[2 + i]
        sizes.append(((n + 2 * pad - k) // s + 1, -(-(n + 2 * pad - k) // s) + 1))
    want = out_shape[2:]
    if all(v == w for (v, _), w in zip(sizes, want)):
        return "valid"
    if all(f == w for (_, f), w in zip(sizes, want)):
        return "full"
    raise layer.error(f"Caffe's output size {want} for input {in_shape[2:]} is neither MXNet's 'valid' nor "
                      f"'full' pooling size")


def _variances(graph: GraphLayout) -> tuple[float, float, float, float]:
    found = set()
    for layer in graph.layers:
        if layer.type == "PriorBox":
            v = [float(x) for x in layer.params["variances"]]
            found.add(tuple(v * 4 if len(v) == 1 else v))
    if len(found) != 1 or len(next(iter(found))) != 4:
        raise GraphError(f"the PriorBox layers must share one set of four variances, found {sorted(found)}")
    return next(iter(found))


class PriorBox(HybridBlock):
    """Caffe's PriorBox: ``(feature, image) -> (1, 2, H * W * A * 4)``, the corners of
    every prior normalized to the image, then their variances.

    Centres are ``(x + offset) * step`` (``step`` defaults to image size /
    feature size, the image size to the input's); each location's priors are
    :func:`prior_sizes` in order. Those sizes are the block's one constant,
    ``(A, 4)`` corner offsets in pixels (they depend on the layer's parameters
    only), so the priors cost a handful of operators per layer at any input size.
    """

    def __init__(self, params: Mapping[str, Any], **kwargs) -> None:
        super().__init__(**kwargs)
        self._p = dict(params)
        v = [float(x) for x in params["variances"]]
        self._variances = v * 4 if len(v) == 1 else v
        half = [(-w / 2.0, -h / 2.0, w / 2.0, h / 2.0) for w, h in prior_sizes(params)]
        with self.name_scope():
            self.corners = self.params.get_constant("corners", [list(c) for c in half])

    def hybrid_forward(self, F, feature, image, corners):
        p = self._p

        def image_size(axis: int, fixed: float):  # (1,): the layer's img_h / img_w, else the input's
            if fixed:
                return F.ones((1,)) * float(fixed)
            return F.max(F.contrib.arange_like(image, axis=axis)) + 1.0

        def centres(axis: int, step: float, size):  # (cells,) centres along an axis, in pixels
            index = F.contrib.arange_like(feature, axis=axis)
            shifted = index + float(p["offset"])
            if step:
                return shifted * float(step)
            return F.broadcast_mul(shifted, F.broadcast_div(size, F.max(index) + 1.0))

        img_w, img_h = image_size(3, p["img_w"]), image_size(2, p["img_h"])
        cx = F.reshape(centres(3, p["step_w"], img_w), shape=(1, -1, 1, 1))  # (1, W, 1, 1)
        cy = F.reshape(centres(2, p["step_h"], img_h), shape=(-1, 1, 1, 1))  # (H, 1, 1, 1)
        cx = F.broadcast_add(cx, F.zeros_like(cy))  # (H, W, 1, 1)
        cy = F.broadcast_add(cy, F.zeros_like(cx))
        centre = F.concat(cx, cy, cx, cy, dim=3)  # (H, W, 1, 4)
        boxes = F.broadcast_add(centre, F.reshape(corners, shape=(1, 1, -1, 4)))  # (H, W, A, 4)
        scale = F.reshape(F.concat(img_w, img_h, img_w, img_h, dim=0), shape=(1, 1, 1, 4))
        boxes = F.broadcast_div(boxes, scale)
        if p["clip"]:
            boxes = F.clip(boxes, 0.0, 1.0)
        ones = F.ones_like(F.slice_axis(boxes, axis=3, begin=0, end=1))
        variances = F.concat(*[ones * v for v in self._variances], dim=3)
        return F.concat(F.reshape(boxes, shape=(1, 1, -1)), F.reshape(variances, shape=(1, 1, -1)), dim=1)
