"""Does the network built for an mxnet-ssd symbol compute what the symbol computes?

Every check compares the symbol file's own arguments with this project's
network, layer by layer where parameters name the layers:

- every Convolution (kernel, stride, pad, dilation, filters, groups, bias) and
  BatchNorm (epsilon, fixed gamma) against the block its weights map onto;
- the wiring: which layers (convolutions and BatchNorms) feed each layer, in
  input order, and through which operators (activations, sums,
  concatenations, poolings, normalizations), in the symbol and in the
  network's own graph;
- every operator before the heads is one the network reproduces, every
  activation a ReLU;
- the poolings (type, window, padding, and their input and output sizes) as
  a multiset, and the size of every source map, at the converted input size;
- the priors: MultiBoxPrior with the symbol's arguments against the
  network's anchor generators, at 1e-6.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Mapping, Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, nn

from symbol.ssd import SSD

from .mxnet_ssd_graph import DetectorGraph
from .mxnet_ssd_weights import expected_keys
from .symbol_json import (Node, SymbolGraph, parse_bool, parse_float, parse_int, parse_ints, parse_symbol, single,
                          spatial_sizes)

__all__ = ["check_network", "fixed_gammas", "source_sizes"]

logger = logging.getLogger(__name__)

#: Operators an mxnet-ssd detector may have before its MultiBoxDetection.
_KNOWN_OPS = frozenset({"null", "Convolution", "BatchNorm", "Activation", "Pooling", "Concat", "concat",
                        "elemwise_add", "_Plus", "_plus", "identity", "_copy", "Dropout", "L2Normalization",
                        "broadcast_mul", "Flatten", "flatten", "transpose", "Reshape", "reshape", "MultiBoxPrior"})
PRIOR_TOL = 1e-6


def _block(net: HybridBlock, path: str) -> HybridBlock:
    block = net
    for part in path.split("."):
        block = block._children[part]
    return block


def fixed_gammas(net: HybridBlock, prefix: str = "") -> set[str]:
    """Structural names of the gammas of fixed-gamma BatchNorms (``scale=False``)."""
    found = set()
    if isinstance(net, nn.BatchNorm) and net._kwargs.get("fix_gamma"):
        found.add(prefix + "gamma")
    for name, child in net._children.items():
        found |= fixed_gammas(child, f"{prefix}{name}.")
    return found


def _conv_args(node: Node) -> dict:
    k = parse_ints(node, "kernel")
    n = len(k)
    return {"kernel": k, "stride": parse_ints(node, "stride", (1,) * n), "pad": parse_ints(node, "pad", (0,) * n),
            "dilate": parse_ints(node, "dilate", (1,) * n), "num_filter": parse_int(node, "num_filter"),
            "num_group": parse_int(node, "num_group", 1), "no_bias": parse_bool(node, "no_bias", False)}


def _check_layers(graph: SymbolGraph, nodes: Sequence[Node], net: HybridBlock, inverse: Mapping[str, str]) -> int:
    """Convolutions, BatchNorms, activations and operators; returns the convolutions checked."""
    checked = 0
    for i in sorted(graph.ancestors(nodes)):
        node = graph.nodes[i]
        where = f"{graph.path}: {node.op} node {node.name!r}"
        if node.op not in _KNOWN_OPS:
            raise ValueError(f"{where}: operator {node.op} is not part of the networks this converter knows")
        if node.op == "Activation" and node.attrs.get("act_type") != "relu":
            raise ValueError(f"{where} is {node.attrs.get('act_type')}, expected relu")
        if node.op not in ("Convolution", "BatchNorm"):
            continue
        key = inverse.get(f"arg:{graph.input(node, 1).name}")
        if key is None:
            raise ValueError(f"{where} has weights the network does not use")
        block = _block(net, key.rsplit(".", 1)[0])
        if node.op == "Convolution":
            want = _conv_args(node)
            have = {k: (tuple(v) if isinstance(v, (tuple, list)) else v) for k, v in block._kwargs.items()
                    if k in want}
            if want != have:
                diff = {k: (want[k], have[k]) for k in want if want[k] != have[k]}
                raise ValueError(f"{where} differs from the network's {key.rsplit('.', 1)[0]}: "
                                 f"{', '.join(f'{k} {a} here, {b} there' for k, (a, b) in diff.items())}")
            checked += 1
        else:
            eps, fix = parse_float(node, "eps", 1e-3), parse_bool(node, "fix_gamma", True)
            if (single(eps) != single(block._kwargs["eps"]) or fix != bool(block._kwargs["fix_gamma"])
                    or parse_int(node, "axis", 1) != 1):
                raise ValueError(f"{where} (eps {eps}, fix_gamma {fix}) differs from the network's "
                                 f"{key.rsplit('.', 1)[0]} (eps {block._kwargs['eps']}, fix_gamma "
                                 f"{block._kwargs['fix_gamma']})")
    return checked


def _poolings(graph: SymbolGraph, nodes: Sequence[Node], side: int) -> Counter:
    """(type, kernel, stride, pad, global, counts padding, input size, output size) of each pooling."""
    sizes = spatial_sizes(graph, side, nodes=nodes)
    found: Counter = Counter()
    for i in sorted(graph.ancestors(nodes)):
        node = graph.nodes[i]
        if node.op != "Pooling":
            continue
        kind = node.attrs.get("pool_type", "max")
        k = parse_ints(node, "kernel", (1, 1))
        found[(kind, k, parse_ints(node, "stride", (1,) * len(k)), parse_ints(node, "pad", (0,) * len(k)),
               parse_bool(node, "global_pool", False),
               parse_bool(node, "count_include_pad", True) if kind == "avg" else None,
               sizes.get(node.inputs[0][0]) if node.inputs else None, sizes.get(i))] += 1
    return found


def _label(node: Node) -> Optional[str]:
    """A parameter-free operator as the wiring check compares it (None: a no-op)."""
    if node.op in ("identity", "_copy", "Dropout"):
        return None
    if node.op == "Activation":
        return node.attrs.get("act_type", "?")
    if node.op in ("elemwise_add", "_Plus", "_plus", "broadcast_add", "broadcast_plus"):
        return "add"
    if node.op in ("Concat", "concat"):
        return "concat"
    if node.op == "Pooling":
        kind = node.attrs.get("pool_type", "max")
        if parse_bool(node, "global_pool", False):
            return f"{kind} pool (global)"
        k = parse_ints(node, "kernel")
        return (f"{kind} pool {k} stride {parse_ints(node, 'stride', (1,) * len(k))} "
                f"pad {parse_ints(node, 'pad', (0,) * len(k))}")
    return node.op


def _feeds(graph: SymbolGraph, nodes: Sequence[Node], key) -> dict[str, tuple]:
    """Layer (``key(node)`` of each Convolution / BatchNorm) -> what feeds its data input: the
    layers, in input order, each with the parameter-free operators on the way (``"data"``:
    the input, whatever is done to it before the first layer)."""
    memo: dict[int, tuple] = {}

    def frontier(index: int) -> tuple:
        if index not in memo:
            node = graph.nodes[index]
            if node.op in ("Convolution", "BatchNorm"):
                memo[index] = ((key(node), ()),)
            elif node.op == "null":
                memo[index] = (("data", ()),) if node.name == "data" else ()
            else:
                label = _label(node)
                found = [(k, path + ((label,) if label else ())) for i, _ in node.inputs for k, path in frontier(i)]
                if found and all(k == "data" for k, _ in found):  # preprocessing
                    found = [("data", ())]
                memo[index] = tuple(dict.fromkeys(found))
        return memo[index]

    feeds = {}
    for i in sorted(graph.ancestors(nodes)):  # inputs first: the recursion stays shallow
        node = graph.nodes[i]
        frontier(i)
        if node.op in ("Convolution", "BatchNorm") and node.inputs:
            feeds[key(node)] = frontier(node.inputs[0][0])
    return feeds


def _wiring(feeds: Optional[tuple], most: int = 3) -> str:
    """``feeds`` for a message: the first ``most`` layers and the operators on the way."""
    if feeds is None:
        return "nothing (no such layer)"
    text = [f"{k[4:] if k != 'data' else k}{' via ' + ' > '.join(p) if p else ''}" for k, p in feeds[:most]]
    return "[" + ", ".join(text) + (f", ... {len(feeds) - most} more]" if len(feeds) > most else "]")


def _check_wiring(detector: DetectorGraph, net: SSD, mapping: Mapping[str, str]) -> None:
    graph = detector.graph
    theirs = _feeds(graph, detector.prediction_nodes(), lambda n: f"arg:{graph.input(n, 1).name}")
    by_var = {p.name: mapping[k] for k, p in net._collect_params_with_prefix().items()}
    own = parse_symbol(mx.sym.Group(list(net._predict(mx.sym, mx.sym.var("data")))).tojson(), "the network")
    ours = _feeds(own, [own.nodes[i] for i, _ in own.heads], lambda n: by_var[own.input(n, 1).name])
    for layer in list(theirs) + [layer for layer in ours if layer not in theirs]:  # inputs first
        if theirs.get(layer) != ours.get(layer):
            raise ValueError(f"{graph.path}: layer {layer[4:]} reads {_wiring(theirs.get(layer))} in the symbol but "
                             f"{_wiring(ours.get(layer))} in the network: another wiring")


def _own_graph(net: SSD) -> tuple[SymbolGraph, list[Node]]:
    """The network's backbone and extras as a symbol graph, and its source nodes."""
    feats = list(net.backbone(mx.sym.var("data")))
    for extra in net.extras:
        feats.append(extra(feats[-1]))
    graph = parse_symbol(mx.sym.Group(feats).tojson(), "the converted network")
    return graph, [graph.nodes[i] for i, _ in graph.heads]


def source_sizes(detector: DetectorGraph, side: int) -> list[tuple[int, int]]:
    """Size of each source map of the symbol at a ``side`` x ``side`` input.

    Raises
    ------
    ValueError
        A map shrinks to nothing, or the sizes of a source cannot be derived.
    """
    features = [s.feature for s in detector.sources]
    sizes = spatial_sizes(detector.graph, side, nodes=features)
    missing = [f.name for f in features if f.index not in sizes]
    if missing:
        raise ValueError(f"{detector.graph.path}: cannot follow the map sizes to {missing[0]!r}")
    return [sizes[f.index] for f in features]


def check_network(detector: DetectorGraph, net: SSD, mapping: Mapping[str, str], side: int,
                  backbone_sources: int) -> list[str]:
    """Run every check (see the module docstring); returns summary lines.

    Parameters
    ----------
    detector : DetectorGraph
    net : SSD
        The network built for it.
    mapping : mapping
        Structural parameter name -> mxnet-ssd key (:func:`parameter_map`).
    side : int
        The converted input size.
    backbone_sources : int
        How many sources the backbone gives (the rest are extra layers).

    Raises
    ------
    ValueError
        The first difference found, naming the file and the node.
    """
    graph = detector.graph
    inverse = {v: k for k, v in mapping.items()}
    needed = expected_keys(graph, detector.prediction_nodes())
    for names, what in ((set(needed) - set(inverse), f"{graph.path} has parameters the network does not have"),
                        (set(inverse) - set(needed), f"{graph.path} does not use parameters the network has")):
        if names:
            raise ValueError(f"{what}: {', '.join(sorted(names)[:4])}{' ...' if len(names) > 4 else ''}")
    convs = _check_layers(graph, detector.prediction_nodes(), net, inverse)
    _check_wiring(detector, net, mapping)

    own_graph, own_sources = _own_graph(net)
    ours = _poolings(own_graph, own_sources[:backbone_sources], side)
    theirs = _poolings(graph, [s.feature for s in detector.sources[:backbone_sources]], side)
    if ours != theirs:
        which, (kind, k, s, p, _, _, before, after) = (
            ("symbol", sorted((theirs - ours).elements(), key=str)[0]) if theirs - ours else
            ("network", sorted((ours - theirs).elements(), key=str)[0]))
        rounding = Counter(x[:6] for x in ours.elements()) == Counter(x[:6] for x in theirs.elements())
        hint = ("; the two round pooled sizes differently at this input size: convert at the model's own data "
                "shape" if rounding else "")
        raise ValueError(f"{graph.path}: at input size {side} the {which} has a {kind} pooling (kernel {k}, stride "
                         f"{s}, pad {p}) of a {before} map into {after} that the "
                         f"{'network' if which == 'symbol' else 'symbol'} has not{hint}")
    sizes = source_sizes(detector, side)
    own_sizes = spatial_sizes(own_graph, side, nodes=own_sources)
    got = [own_sizes[n.index] for n in own_sources]
    if got != sizes:
        raise ValueError(f"{graph.path}: at input size {side} the source maps are {sizes}, the network's {got}")

    worst = 0.0
    for i, (source, (h, w)) in enumerate(zip(detector.sources, sizes)):
        feature = mx.nd.zeros((1, 1, h, w))
        want = mx.nd.contrib.MultiBoxPrior(feature, **source.prior.kwargs()).asnumpy()
        have = net.anchor_generators[i](feature).asnumpy()
        if want.shape != have.shape:
            raise ValueError(f"{graph.path}: source {source.feature.name!r} has {want.shape[1]} priors, the "
                             f"network {have.shape[1]}")
        worst = max(worst, float(np.abs(want - have).max()))
        if worst > PRIOR_TOL:
            raise ValueError(f"{graph.path}: the priors of {source.feature.name!r} differ from the network's by "
                             f"{worst:.2e}")
    priors = sum(h * w * s.prior.num_anchors for s, (h, w) in zip(detector.sources, sizes))
    return [f"checked: {convs} convolutions and their wiring, {sum(theirs.values())} poolings, "
            f"source maps {', '.join(f'{h}x{w}' for h, w in sizes)}",
            f"priors: {priors}, equal to MultiBoxPrior's to {worst:.1e}"]
