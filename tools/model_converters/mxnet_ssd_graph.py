"""The detector an mxnet-ssd symbol describes: sources, extra layers, priors, heads, decoding.

mxnet-ssd's ``multibox_layer`` gives every source layer a class and a box
convolution (transposed to NHWC and flattened) and a ``MultiBoxPrior``; the
three are concatenated in source order, the class predictions reshaped to
``(batch, priors, classes + 1)`` and transposed, and the deploy graph ends in
a channel softmax and ``MultiBoxDetection`` (the training graph in
``SoftmaxOutput``, whose output feeds the same ``MultiBoxDetection``).
:func:`read_detector` walks exactly that structure back from the
``MultiBoxDetection`` node and refuses anything else, so that a converted
model computes what the symbol computes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

from symbol.detection import VARIANCES
from symbol.presets import ExtraLayer, Preprocessing, Preset

from .symbol_json import (Node, SymbolGraph, parse_bool, parse_float, parse_floats, parse_int, parse_ints,
                          single)

__all__ = ["DetectorGraph", "ExtraConvs", "Prior", "SourceLayer", "decoding_settings", "extra_layers",
           "layout_preset", "read_detector"]

logger = logging.getLogger(__name__)

#: mxnet-ssd's initial L2-normalization scale (the trained value is a parameter).
NORM_SCALE = 20.0


@dataclass(frozen=True)
class Prior:
    """A ``MultiBoxPrior`` node's arguments (normalized to the input)."""

    sizes: tuple[float, ...]
    ratios: tuple[float, ...]
    steps: tuple[float, float]
    offsets: tuple[float, float]
    clip: bool

    @property
    def num_anchors(self) -> int:
        return len(self.sizes) + len(self.ratios) - 1

    def kwargs(self) -> dict:
        """The operator's keyword arguments."""
        return dict(sizes=self.sizes, ratios=self.ratios, steps=self.steps, offsets=self.offsets, clip=self.clip)


@dataclass(frozen=True)
class SourceLayer:
    """One source of the detector.

    Attributes
    ----------
    feature : Node
        The feature map (before any normalization).
    norm_scale : str or None
        The variable scaling its L2 normalization, if any.
    prior : Prior
    cls_conv, loc_conv : Node
        The class and box prediction convolutions.
    """

    feature: Node
    norm_scale: Optional[str]
    prior: Prior
    cls_conv: Node
    loc_conv: Node


@dataclass(frozen=True)
class ExtraConvs:
    """An extra layer: the 1x1 ``reduce`` conv and the strided ``conv`` (both + ReLU)."""

    reduce: Node
    conv: Node
    layer: ExtraLayer


@dataclass(frozen=True)
class DetectorGraph:
    """What :func:`read_detector` found.

    Attributes
    ----------
    graph : SymbolGraph
    sources : tuple of SourceLayer
        In the order of the concatenated predictions.
    num_classes : int
        Foreground classes.
    detection : Node
        The ``MultiBoxDetection`` node.
    head_kernel : int
        Kernel of every prediction convolution (padding ``kernel // 2``).
    predictions : tuple of Node
        The class logits (before the softmax), box offsets and priors: the
        network is what these depend on (a training graph's targets and
        losses are left out).
    """

    graph: SymbolGraph
    sources: tuple[SourceLayer, ...]
    num_classes: int
    detection: Node
    head_kernel: int
    predictions: tuple[Node, Node, Node]

    def prediction_nodes(self) -> list[Node]:
        """:attr:`predictions` as a list."""
        return list(self.predictions)


class _Walk:
    """Checks on one graph, each failure a ValueError naming the file."""

    def __init__(self, graph: SymbolGraph) -> None:
        self.graph = graph

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.graph.path}: {message}")

    def expect(self, node: Node, *ops: str) -> Node:
        if node.op not in ops:
            raise self.fail(f"unexpected {node.op} node {node.name!r} where mxnet-ssd's detector has "
                            f"{' or '.join(ops)}: not an mxnet-ssd SSD graph this converter knows")
        return node

    def input(self, node: Node, i: int = 0, *ops: str) -> Node:
        found = self.graph.input(node, i)
        return self.expect(found, *ops) if ops else found

    def axes(self, node: Node, axes: tuple[int, ...]) -> None:
        if parse_ints(node, "axes", ()) != axes:
            raise self.fail(f"transpose node {node.name!r} has axes {node.attrs.get('axes')}, expected {axes}")

    def concat_inputs(self, node: Node) -> list[Node]:
        self.expect(node, "Concat", "concat")
        if parse_int(node, "dim", 1) != 1:
            raise self.fail(f"Concat node {node.name!r} joins along dim {node.attrs.get('dim')}, expected 1")
        return self.graph.inputs(node)

    def head_conv(self, flat: Node) -> Node:
        """Flatten <- transpose(0, 2, 3, 1) <- Convolution."""
        self.expect(flat, "Flatten", "flatten")
        t = self.input(flat, 0, "transpose")
        self.axes(t, (0, 2, 3, 1))
        return self.input(t, 0, "Convolution")


def read_detector(graph: SymbolGraph) -> DetectorGraph:
    """Find the SSD in ``graph`` (a deploy or training symbol of mxnet-ssd).

    Raises
    ------
    ValueError
        The graph is not a detector (no ``MultiBoxDetection``), or its heads,
        priors or decoding are laid out otherwise than mxnet-ssd's
        ``multibox_layer`` lays them out; the message names the file and the
        node.
    """
    walk = _Walk(graph)
    found = graph.find("MultiBoxDetection")
    if len(found) != 1:
        raise walk.fail("not an SSD detector: it has no MultiBoxDetection node" if not found else
                        f"{len(found)} MultiBoxDetection nodes, expected one")
    detection = found[0]
    if len(detection.inputs) != 3:
        raise walk.fail(f"MultiBoxDetection node {detection.name!r} has {len(detection.inputs)} inputs, expected 3")
    prob, loc, anchors = graph.inputs(detection)

    # Class probabilities: softmax over the class axis of (batch, classes + 1, priors).
    walk.expect(prob, "SoftmaxActivation", "SoftmaxOutput", "softmax")
    if prob.op == "SoftmaxActivation":
        channel = prob.attrs.get("mode") == "channel"
    elif prob.op == "SoftmaxOutput":  # a training graph
        channel = parse_bool(prob, "multi_output", False)
    else:
        channel = parse_int(prob, "axis", -1) == 1
    if not channel:
        raise walk.fail(f"{prob.op} node {prob.name!r} is not a softmax over the classes (channel axis)")
    t = walk.input(prob, 0, "transpose")
    walk.axes(t, (0, 2, 1))
    reshape = walk.input(t, 0, "Reshape", "reshape")
    shape = parse_ints(reshape, "shape")
    if len(shape) != 3 or shape[:2] != (0, -1) or shape[2] < 2:
        raise walk.fail(f"Reshape node {reshape.name!r} has shape {shape}, expected (0, -1, classes + 1)")
    num_classes = shape[2] - 1
    cls_convs = [walk.head_conv(n) for n in walk.concat_inputs(walk.input(reshape, 0))]
    loc_convs = [walk.head_conv(n) for n in walk.concat_inputs(loc)]

    # Priors: Reshape(0, -1, 4) <- Concat <- Flatten <- MultiBoxPrior, per source.
    walk.expect(anchors, "Reshape", "reshape")
    if parse_ints(anchors, "shape") != (0, -1, 4):
        raise walk.fail(f"Reshape node {anchors.name!r} has shape {anchors.attrs.get('shape')}, expected (0, -1, 4)")
    prior_nodes = [walk.input(walk.expect(n, "Flatten", "flatten"), 0, "MultiBoxPrior")
                   for n in walk.concat_inputs(walk.input(anchors, 0))]
    if not len(cls_convs) == len(loc_convs) == len(prior_nodes):
        raise walk.fail(f"{len(cls_convs)} class heads, {len(loc_convs)} box heads and {len(prior_nodes)} "
                        f"prior layers: expected one of each per source")

    sources, kernels = [], set()
    for cls_conv, loc_conv, prior_node in zip(cls_convs, loc_convs, prior_nodes):
        for node in (prior_node, cls_conv, loc_conv):
            walk.input(node, 0)  # it has one
        fed = prior_node.inputs[0]
        if cls_conv.inputs[0] != fed or loc_conv.inputs[0] != fed:
            raise walk.fail(f"the heads {cls_conv.name!r} and {loc_conv.name!r} and the priors "
                            f"{prior_node.name!r} do not read the same feature map")
        feature, scale = _unnormalized(walk, graph.nodes[fed[0]])
        prior = _prior(walk, prior_node)
        for conv, per_anchor in ((cls_conv, num_classes + 1), (loc_conv, 4)):
            kernels.add(_head_kernel(walk, conv))
            if parse_int(conv, "num_filter") != prior.num_anchors * per_anchor:
                raise walk.fail(f"head {conv.name!r} has {conv.attrs.get('num_filter')} filters, expected "
                                f"{prior.num_anchors} priors x {per_anchor} = {prior.num_anchors * per_anchor}")
        sources.append(SourceLayer(feature, scale, prior, cls_conv, loc_conv))
    if len(kernels) != 1:
        raise walk.fail(f"prediction convolutions of different kernels {sorted(kernels)}")
    return DetectorGraph(graph, tuple(sources), num_classes, detection, kernels.pop(), (t, loc, anchors))


def _unnormalized(walk: _Walk, node: Node) -> tuple[Node, Optional[str]]:
    """``broadcast_mul(scale, L2Normalization(x))`` -> (x, scale's name); any other node -> (node, None)."""
    if node.op != "broadcast_mul":
        return node, None
    inputs = walk.graph.inputs(node)
    if len(inputs) != 2:
        raise walk.fail(f"broadcast_mul node {node.name!r} has {len(inputs)} inputs")
    a, b = inputs
    scale, norm = (a, b) if a.op == "null" else (b, a)
    if scale.op != "null" or norm.op != "L2Normalization":
        raise walk.fail(f"broadcast_mul node {node.name!r} is not a scaled L2 normalization")
    if norm.attrs.get("mode", "instance") != "channel":
        raise walk.fail(f"L2Normalization node {norm.name!r} has mode {norm.attrs.get('mode', 'instance')!r}, "
                        f"expected 'channel'")
    if single(parse_float(norm, "eps", 1e-10)) != single(1e-10):
        raise walk.fail(f"L2Normalization node {norm.name!r} has eps {norm.attrs['eps']}, expected 1e-10")
    return walk.graph.input(norm, 0), scale.name


def _prior(walk: _Walk, node: Node) -> Prior:
    prior = Prior(sizes=parse_floats(node, "sizes", (1.0,)), ratios=parse_floats(node, "ratios", (1.0,)),
                  steps=parse_floats(node, "steps", (-1.0, -1.0)), offsets=parse_floats(node, "offsets", (0.5, 0.5)),
                  clip=parse_bool(node, "clip", False))
    if len(prior.steps) != 2 or len(prior.offsets) != 2:
        raise walk.fail(f"MultiBoxPrior node {node.name!r} needs two steps and two offsets")
    return prior


def _head_kernel(walk: _Walk, conv: Node) -> int:
    k = parse_ints(conv, "kernel")
    if (len(set(k)) != 1 or parse_ints(conv, "pad", (0, 0)) != (k[0] // 2,) * 2
            or parse_ints(conv, "stride", (1, 1)) != (1, 1) or parse_ints(conv, "dilate", (1, 1)) != (1, 1)
            or parse_int(conv, "num_group", 1) != 1 or parse_bool(conv, "no_bias", False)):
        raise walk.fail(f"head {conv.name!r} is not a square, same-size, biased convolution "
                        f"({dict(conv.attrs)})")
    return k[0]


def extra_layers(detector: DetectorGraph, first: int) -> tuple[ExtraConvs, ...]:
    """The extra layers feeding sources ``first``, ``first + 1``, ...: each a 1x1 conv +
    ReLU and a square conv + ReLU on the previous source.

    Raises
    ------
    ValueError
        A source that is not such a layer of the one before.
    """
    walk = _Walk(detector.graph)
    extras = []
    for previous, source in zip(detector.sources[first - 1:], detector.sources[first:]):
        relu2 = walk.expect(source.feature, "Activation")
        conv = walk.input(relu2, 0, "Convolution")
        relu1 = walk.input(conv, 0, "Activation")
        reduce = walk.input(relu1, 0, "Convolution")
        if walk.input(reduce, 0).index != previous.feature.index:
            raise walk.fail(f"extra layer {reduce.name!r} does not read the previous source "
                            f"{previous.feature.name!r}")
        for relu in (relu1, relu2):
            if relu.attrs.get("act_type") != "relu":
                raise walk.fail(f"Activation node {relu.name!r} is {relu.attrs.get('act_type')}, expected relu")
        k, s, p = (parse_ints(conv, key, default) for key, default in (("kernel", None), ("stride", (1, 1)),
                                                                       ("pad", (0, 0))))
        plain = all(parse_ints(c, "dilate", (1, 1)) == (1, 1) and parse_int(c, "num_group", 1) == 1
                    and not parse_bool(c, "no_bias", False) for c in (reduce, conv))
        if (not plain or parse_ints(reduce, "kernel") != (1, 1) or parse_ints(reduce, "stride", (1, 1)) != (1, 1)
                or parse_ints(reduce, "pad", (0, 0)) != (0, 0) or len(set(k)) != 1 or len(set(s)) != 1
                or len(set(p)) != 1):
            raise walk.fail(f"extra layer {reduce.name!r} + {conv.name!r} is not a biased 1x1 conv followed by a "
                            f"square conv")
        layer = ExtraLayer(parse_int(reduce, "num_filter"), parse_int(conv, "num_filter"), k[0], s[0], p[0])
        extras.append(ExtraConvs(reduce, conv, layer))
    return tuple(extras)


def layout_preset(detector: DetectorGraph, sources: Sequence[str], extras: Sequence[ExtraConvs],
                  data_shape: int, preprocess: Preprocessing) -> Preset:
    """The :class:`Preset` of the detector: its priors (sizes as given, steps in
    pixels of ``data_shape``), extra layers, normalization and head kernel.

    Raises
    ------
    ValueError
        Priors this project's anchor generator cannot reproduce (ratios that
        are not 1 followed by pairs r, 1/r; different x and y steps or
        offsets; clipped priors; steps on some sources only).
    """
    walk = _Walk(detector.graph)
    ratios, steps, offsets = [], [], set()
    for source in detector.sources:
        prior = source.prior
        r = prior.ratios
        pairs = r[1:]
        if (single(r[0]) != 1.0 or len(pairs) % 2 or min(r) <= 0
                or any(single(b) != single(1.0 / a) for a, b in zip(pairs[::2], pairs[1::2]))):
            raise walk.fail(f"the priors of {source.feature.name!r} have ratios {r}: only 1 followed by pairs "
                            f"r, 1/r are supported")
        ratios.append(tuple(pairs[::2]))
        if prior.clip:
            raise walk.fail(f"the priors of {source.feature.name!r} are clipped: not supported")
        if prior.steps[0] != prior.steps[1] or prior.offsets[0] != prior.offsets[1]:
            raise walk.fail(f"the priors of {source.feature.name!r} have different x and y steps or offsets "
                            f"({prior.steps}, {prior.offsets}): not supported")
        steps.append(prior.steps[0])
        offsets.add(prior.offsets[0])
    if len(offsets) != 1:
        raise walk.fail(f"the prior layers have different offsets {sorted(offsets)}: not supported")
    if all(s <= 0 for s in steps):
        pixel_steps = None
    elif all(s > 0 for s in steps):
        pixel_steps = tuple(_pixels(s, data_shape) for s in steps)
    else:
        raise walk.fail(f"prior steps {steps} are given for some sources only: not supported")
    try:
        return Preset(data_shape=data_shape, sources=tuple(sources), extras=tuple(e.layer for e in extras),
                      ratios=tuple(ratios), steps=pixel_steps,
                      normalization=tuple(NORM_SCALE if s.norm_scale else None for s in detector.sources),
                      preprocess=preprocess, sizes=tuple(s.prior.sizes for s in detector.sources),
                      head_kernel=detector.head_kernel, offset=offsets.pop())
    except ValueError as err:
        raise walk.fail(f"unsupported priors or layers: {err}") from None


def _pixels(step: float, side: int) -> float:
    """``step * side``, as the shortest decimal whose step (``/ side``) is the same in
    single precision (``8``, not ``8.000000000000002``)."""
    exact = step * side
    for digits in range(0, 12):
        value = round(exact, digits)
        if single(value / side) == single(step):
            return value
    return exact


def decoding_settings(detector: DetectorGraph, num_priors: int) -> dict:
    """The ``MultiBoxDetection`` node's settings as ``SSD.set_nms`` arguments.

    ``keep_topk`` is ``nms_topk`` when positive, else ``num_priors``: every
    detection MultiBoxDetection returns is kept.

    Raises
    ------
    ValueError
        Settings this project's decoding does not reproduce (unclipped boxes, a
        background other than class 0, other variances).
    """
    walk = _Walk(detector.graph)
    node = detector.detection
    if not parse_bool(node, "clip", True):
        raise walk.fail(f"MultiBoxDetection node {node.name!r} does not clip boxes: not supported")
    if parse_int(node, "background_id", 0) != 0:
        raise walk.fail(f"MultiBoxDetection node {node.name!r} has background_id {node.attrs['background_id']}, "
                        f"expected 0")
    variances = parse_floats(node, "variances", VARIANCES)
    if tuple(map(single, variances)) != tuple(map(single, VARIANCES)):
        raise walk.fail(f"MultiBoxDetection node {node.name!r} has variances {variances}; only {VARIANCES} "
                        f"are supported")
    nms_topk = parse_int(node, "nms_topk", -1)
    return dict(nms_thresh=parse_float(node, "nms_threshold", 0.5), nms_topk=nms_topk if nms_topk > 0 else -1,
                keep_topk=nms_topk if nms_topk > 0 else num_priors, thresh=parse_float(node, "threshold", 0.01),
                force_suppress=parse_bool(node, "force_suppress", False), nms_mode="multibox")
