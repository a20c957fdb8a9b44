"""mxnet-ssd's parameter files: which network they hold, and their names in this project.

mxnet-ssd saved ``PREFIX-EPOCH.params`` with ``mx.model.save_checkpoint``: an
NDArray dict with keys ``arg:NAME`` (weights) and ``aux:NAME`` (BatchNorm
statistics). :func:`recognise` tells its four released networks apart by a
few characteristic parameters; :func:`parameter_map` maps every structural
parameter name of this project's SSD (``net._collect_params_with_prefix()``,
what ``save_parameters`` writes) onto one of those keys:

- the backbones by a rule per network (below), since this project's blocks
  are named after mxnet-ssd's layers;
- the extra layers, the L2-normalization scale and the prediction heads by
  position, from the variables the symbol's nodes read.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import AbstractSet as Set, Callable, Mapping, Optional, Sequence

import mxnet as mx
import numpy as np

from common.fileio import PathLike

from .mxnet_ssd_graph import DetectorGraph, ExtraConvs
from .symbol_json import Node, SymbolGraph

__all__ = ["NETWORKS", "Signature", "apply_weights", "check_conv_shapes", "expected_keys", "load_params",
           "parameter_map", "recognise"]

logger = logging.getLogger(__name__)

Shapes = Mapping[str, Optional[tuple[int, ...]]]


@dataclass(frozen=True)
class Signature:
    """How one of mxnet-ssd's networks is recognised.

    Attributes
    ----------
    network : str
        This project's network name.
    title : str
        For messages.
    required : mapping
        ``arg:`` keys the network's parameters include, with their shapes.
    absent : tuple of str
        Keys of deeper variants that must not be there.
    sources : tuple of str
        Per backbone source, the node it is or reads (mxnet-ssd's names; the
        residual sums' own names ``_plusN`` depend on how many symbols were
        built before, so the ResNet sources are known by their last conv).
    source_names : tuple of str
        The preset's names of those sources.
    """

    network: str
    title: str
    required: Mapping[str, tuple[int, ...]]
    absent: tuple[str, ...]
    sources: tuple[str, ...]
    source_names: tuple[str, ...]


SIGNATURES = (
    Signature("vgg16_reduced", "VGG16-reduced SSD",
              {"arg:conv1_1_weight": (64, 3, 3, 3), "arg:conv6_weight": (1024, 512, 3, 3),
               "arg:conv7_weight": (1024, 1024, 1, 1)}, (),
              ("relu4_3", "relu7"), ("conv4_3", "fc7")),
    Signature("resnet50_v2", "ResNet-50 SSD",
              {"arg:conv0_weight": (64, 3, 7, 7), "arg:bn_data_beta": (3,),
               "arg:stage4_unit3_conv3_weight": (2048, 512, 1, 1)},
              ("arg:stage3_unit7_conv1_weight", "arg:stage4_unit4_conv1_weight", "arg:stage2_unit5_conv1_weight"),
              ("stage3_unit6_conv3", "stage4_unit3_conv3"), ("stage3", "stage4")),
    Signature("inceptionv3", "Inception-v3 SSD",
              {"arg:conv_conv2d_weight": (32, 3, 3, 3), "arg:mixed_10_tower_2_conv_conv2d_weight": (192, 2048, 1, 1)},
              (), ("ch_concat_mixed_7_chconcat", "ch_concat_mixed_10_chconcat"), ("mixed_7", "mixed_10")),
)
NETWORKS = tuple(s.network for s in SIGNATURES)


def recognise(shapes: Shapes, source: str) -> Signature:
    """The network whose characteristic parameters ``shapes`` has.

    Parameters
    ----------
    shapes : mapping
        ``arg:``/``aux:`` keys -> shapes (None where unknown, as in a symbol file).
    source : str
        The file, for messages.

    Raises
    ------
    ValueError
        None of the networks, or one of them with other shapes (another
        variant or another model).
    """
    for sig in SIGNATURES:
        if all(k in shapes for k in sig.required):
            wrong = {k: shapes[k] for k, v in sig.required.items() if shapes[k] is not None and shapes[k] != v}
            if wrong:
                raise ValueError(f"{source} looks like mxnet-ssd's {sig.title} but its "
                                 f"{', '.join(f'{k} has shape {v}' for k, v in wrong.items())} (expected "
                                 f"{', '.join(str(sig.required[k]) for k in wrong)}): another model")
            deeper = [k for k in sig.absent if k in shapes]
            if deeper:
                raise ValueError(f"{source} holds a deeper variant of mxnet-ssd's {sig.title} ({deeper[0]}): only "
                                 f"the released networks are supported")
            return sig
    arg_names = sorted(k for k in shapes if k.startswith("arg:"))
    raise ValueError(f"{source} holds an unknown network: not one of mxnet-ssd's released models "
                     f"({', '.join(s.title for s in SIGNATURES)}); its parameters start "
                     f"{', '.join(arg_names[:4]) or '(none)'}")


def load_params(path: PathLike) -> dict[str, mx.nd.NDArray]:
    """Read ``arg:``/``aux:`` keyed NDArrays.

    Raises
    ------
    ValueError
        Unreadable or not such a file.
    """
    from tools.model_converters.conversion import load_named_params

    name = os.fspath(path)
    loaded = load_named_params(path, "an mxnet-ssd params file")
    bad = [k for k in loaded if not k.startswith(("arg:", "aux:"))]
    if bad:
        raise ValueError(f"{name} is not an mxnet-ssd params file (mx.model.save_checkpoint): key {bad[0]!r} has "
                         f"no arg: or aux: prefix")
    return loaded


def expected_keys(graph: SymbolGraph, nodes: Sequence[Node]) -> dict[str, Node]:
    """The ``arg:``/``aux:`` keys of the parameters ``nodes`` depend on -> the node reading
    each (BatchNorm statistics are ``aux:``; the input ``data`` is no parameter)."""
    keys: dict[str, Node] = {}
    for i in sorted(graph.ancestors(nodes)):
        node = graph.nodes[i]
        if node.op == "null":
            continue
        for position, var in enumerate(graph.inputs(node)):
            if var.op != "null" or var.name == "data":
                continue
            aux = node.op == "BatchNorm" and position >= 3
            keys[("aux:" if aux else "arg:") + var.name] = node
    return keys


def check_conv_shapes(graph: SymbolGraph, nodes: Sequence[Node], arrays: Mapping[str, mx.nd.NDArray],
                      source: str) -> None:
    """Every convolution weight in ``arrays`` has the filters and kernel its node in the symbol
    declares (checked before any network is built for the symbol).

    Raises
    ------
    ValueError
        The params file holds another model (the first three differences named).
    """
    from .symbol_json import parse_int, parse_ints

    wrong = []
    for i in sorted(graph.ancestors(nodes)):
        node = graph.nodes[i]
        if node.op != "Convolution" or len(node.inputs) < 2:
            continue
        key = f"arg:{graph.input(node, 1).name}"
        if key not in arrays:
            continue
        shape, filters, kernel = tuple(arrays[key].shape), parse_int(node, "num_filter"), parse_ints(node, "kernel")
        if len(shape) != 2 + len(kernel) or shape[0] != filters or shape[2:] != kernel:
            wrong.append(f"{key} has shape {shape} but {graph.path}'s {node.name} has {filters} filters of {kernel}")
    if wrong:
        raise ValueError(f"{source} does not hold this model: {'; '.join(wrong[:3])}"
                         f"{f' (and {len(wrong) - 3} more)' if len(wrong) > 3 else ''}")


# ---------------------------------------------------------------------- names
_BN = {"gamma": "arg:{}_gamma", "beta": "arg:{}_beta", "running_mean": "aux:{}_moving_mean",
       "running_var": "aux:{}_moving_var"}


def _layer_param(layer: str, param: str) -> Optional[str]:
    """mxnet-ssd's key of ``param`` of ``layer``: a conv's ``weight``/``bias``, a BN's four."""
    if param in ("weight", "bias"):
        return f"arg:{layer}_{param}"
    return _BN[param].format(layer) if param in _BN else None


def _vgg(key: str) -> Optional[str]:
    """``stages.I.J.0.*`` is conv{I+1}_{J+1}; ``fc6``/``fc7`` are mxnet-ssd's conv6/conv7."""
    m = re.fullmatch(r"stages\.(\d)\.(\d)\.0\.(weight|bias)", key)
    if m:
        return f"arg:conv{int(m[1]) + 1}_{int(m[2]) + 1}_{m[3]}"
    m = re.fullmatch(r"fc([67])\.0\.(weight|bias)", key)
    return f"arg:conv{m[1]}_{m[2]}" if m else None


def _resnet(key: str) -> Optional[str]:
    """``bn_data.*``, ``conv0.*``, ``bn0.*`` and ``stageS_unitU.LAYER.*``, named as mxnet-ssd's layers."""
    m = re.fullmatch(r"(bn_data|conv0|bn0)\.(\w+)", key) or \
        re.fullmatch(r"(stage\d_unit\d+)\.(bn[123]|conv[123]|sc)\.(\w+)", key)
    if not m:
        return None
    layer = "_".join(m.groups()[:-1])
    return _layer_param(layer, m.groups()[-1])


def _inception(key: str) -> Optional[str]:
    """``UNIT.0.weight`` is ``UNIT_conv2d_weight`` and ``UNIT.1.*`` ``UNIT_batchnorm_*``, where
    a unit is a stem conv (``conv_1``) or a block's (``mixed_7.tower_1_conv_2`` ->
    ``mixed_7_tower_1_conv_2``)."""
    m = re.fullmatch(r"((?:mixed(?:_\d+)?\.)?\w+)\.([01])\.(\w+)", key)
    if not m:
        return None
    unit = m[1].replace(".", "_")
    return _layer_param(f"{unit}_conv2d", m[3]) if m[2] == "0" else _layer_param(f"{unit}_batchnorm", m[3])


_BACKBONES: dict[str, Callable[[str], Optional[str]]] = {
    "vgg16_reduced": _vgg, "resnet50_v2": _resnet, "inceptionv3": _inception}


def _variable(graph: SymbolGraph, conv: Node, param: str) -> str:
    """The key of a conv node's ``weight`` (input 1) or ``bias`` (input 2) variable."""
    var = graph.input(conv, 1 if param == "weight" else 2)
    return f"arg:{var.name}"


def parameter_map(network: str, keys: Sequence[str], detector: DetectorGraph,
                  extras: Sequence[ExtraConvs]) -> dict[str, str]:
    """This project's structural parameter names -> mxnet-ssd's keys.

    Parameters
    ----------
    network : str
        One of :data:`NETWORKS`.
    keys : sequence of str
        The structural names (``net._collect_params_with_prefix()``).
    detector : DetectorGraph
        Gives the variables of the heads, extras and normalization.
    extras : sequence of ExtraConvs
        The extra layers, in order.

    Raises
    ------
    ValueError
        A parameter no rule covers (the network does not have mxnet-ssd's layout).
    """
    graph = detector.graph
    mapping, unmapped = {}, []
    for key in keys:
        part, _, rest = key.partition(".")
        name = None
        if part == "backbone":
            name = _BACKBONES[network](rest)
        elif part == "extras":
            m = re.fullmatch(r"(\d+)\.([01])\.0\.(weight|bias)", rest)
            if m and int(m[1]) < len(extras):
                e = extras[int(m[1])]
                name = _variable(graph, e.reduce if m[2] == "0" else e.conv, m[3])
        elif part == "norms":
            m = re.fullmatch(r"(\d+)\.scale", rest)
            if m and int(m[1]) < len(detector.sources) and detector.sources[int(m[1])].norm_scale:
                name = f"arg:{detector.sources[int(m[1])].norm_scale}"
        elif part in ("class_heads", "box_heads"):
            m = re.fullmatch(r"(\d+)\.(weight|bias)", rest)
            if m and int(m[1]) < len(detector.sources):
                source = detector.sources[int(m[1])]
                name = _variable(graph, source.cls_conv if part == "class_heads" else source.loc_conv, m[2])
        if name is None:
            unmapped.append(key)
        mapping[key] = name
    if unmapped:
        raise ValueError(f"{graph.path}: no mxnet-ssd parameter for the network's {', '.join(unmapped[:3])}"
                         f"{f' and {len(unmapped) - 3} more' if len(unmapped) > 3 else ''}")
    return mapping


def apply_weights(params: Mapping[str, mx.gluon.Parameter], mapping: Mapping[str, str],
                  weights: Mapping[str, mx.nd.NDArray], source: str, fixed_gammas: Set[str] = frozenset()) -> None:
    """Check every mapped array's presence and shape, then copy them in.

    The gammas of fixed-gamma BatchNorms (``fixed_gammas``, structural names),
    which MXNet ignores whatever their stored value, are set to 1.

    Raises
    ------
    ValueError
        Missing keys or other shapes (all of them named; nothing is copied).
    """
    missing = sorted({v for v in mapping.values() if v not in weights})
    if missing:
        raise ValueError(f"{source} is missing {len(missing)} parameter(s) the network needs: "
                         f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    wrong = [f"{v} has shape {tuple(weights[v].shape)}, the network needs {params[k].shape}"
             for k, v in mapping.items() if tuple(weights[v].shape) != tuple(params[k].shape)]
    if wrong:
        raise ValueError(f"{source} does not hold this model: {'; '.join(wrong[:3])}"
                         f"{f' (and {len(wrong) - 3} more)' if len(wrong) > 3 else ''}")
    for key, name in mapping.items():
        p = params[key]
        if key in fixed_gammas:
            p.set_data(mx.nd.ones(p.shape, dtype=p.dtype))
        else:
            p.set_data(weights[name].astype(np.float32))
