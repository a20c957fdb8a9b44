"""The whole detector as one ONNX file: preprocessing, backbone, heads, priors, decoding, NMS.

>>> net, config = load_checkpoint("model/ssd_300", 0)                        # doctest: +SKIP
>>> export_onnx(net, "ssd_300.onnx", class_names=config.class_names)        # doctest: +SKIP

The file has one input and one output, and runs in ONNX Runtime without this
project or MXNet:

- ``data``: ``(B, 3, S, S)`` float32 RGB pixel values in 0..255, NCHW, exactly
  what the MXNet model takes (``S`` is the network's ``data_shape``; ``B`` is 1,
  or free with ``dynamic_batch``);
- ``detections``: ``(B, keep_topk, 6)`` float32 rows ``[class_id, score, xmin,
  ymin, xmax, ymax]``, normalized corners clipped to [0, 1], by descending
  score, empty rows all -1: the MXNet model's output.

How it is built: the network's raw predictions (``SSDBase._predict`` from the
normalized input to the class logits and box offsets, traced as a symbol) go
through MXNet's own exporter (``mx.onnx.export_model``); the model's
preprocessing, the priors (computed once at ``S``, stored as constants) and
the decoding come from :mod:`symbol.onnx_graph`. Three of the exporter's
translations are corrected on the way: BatchNorm's ``fix_gamma`` (which it
ignores; the stored gamma becomes 1, as MXNet uses it), L2Normalization
(which it writes as ``LpNormalization``, without MXNet's ``eps``: written out
here as ``x / sqrt(sum(x^2) + eps)``) and PReLU (whose per-channel slope it
leaves shaped ``(C,)``, which ONNX broadcasts along the width, not the
channels). MXNet 1.9.1's exporter writes opset-13
operators under whatever opset the installed ``onnx`` declares; the model
declares 13, and :func:`onnx_model` converts it to a later opset on request.

A layer the exporter cannot translate raises :class:`OnnxExportError` naming
the layer and its operator.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import mxnet as mx
import numpy as np
import onnx
import onnx.numpy_helper
import onnx.version_converter
from mxnet import autograd
from mxnet import onnx as mx_onnx
from onnx import TensorProto, helper

from common.fileio import PathLike, atomic_path

from .onnx_graph import OPSET, GraphBuilder, add_decoding, add_preprocessing
from .ssd import SSDBase

__all__ = ["INPUT", "OUTPUT", "OnnxExportError", "export_onnx", "max_opset", "onnx_model"]

logger = logging.getLogger(__name__)

#: The names of the model's input and output.
INPUT, OUTPUT = "data", "detections"
_PRODUCER = "mxnet-ssd-gluon"


class OnnxExportError(ValueError):
    """A model, or a setting, that cannot be exported (the message says which layer or why)."""


def max_opset() -> int:
    """The newest opset :func:`onnx_model` can write (the installed ``onnx``'s)."""
    return int(onnx.defs.onnx_opset_version())


class _RawInput:
    """A view of a network whose preprocessing is the identity: the network's own
    ``_predict`` run on this view maps the normalized input to the raw predictions."""

    def __init__(self, net: SSDBase) -> None:
        self._net = net

    def __getattr__(self, name: str) -> Any:
        return getattr(self._net, name)

    @staticmethod
    def preprocess(x):
        return x


def _raw_symbol(net: SSDBase) -> mx.sym.Symbol:
    """The symbol ``data -> (cls_preds (B, N, C + 1), box_preds (B, N * 4))``, ``data`` normalized."""
    cls_preds, box_preds, _ = type(net)._predict(_RawInput(net), mx.sym, mx.sym.var(INPUT))
    return mx.sym.Group([cls_preds, box_preds])


def _symbol_params(net: SSDBase, sym: mx.sym.Symbol) -> dict[str, mx.nd.NDArray]:
    """The weights ``sym`` reads, by name, with the gamma of every ``fix_gamma`` BatchNorm set to
    1 (MXNet ignores the stored value there; the exporter would use it)."""
    names = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
    params = {p.name: p.data().copyto(mx.cpu()) for p in net.collect_params().values() if p.name in names}
    nodes = json.loads(sym.tojson())["nodes"]
    for node in nodes:
        attrs = node.get("attrs", {})
        if node["op"] == "BatchNorm" and attrs.get("fix_gamma", "True").lower() in ("true", "1"):
            gamma = nodes[node["inputs"][1][0]]["name"]
            if gamma in params:
                params[gamma] = mx.nd.ones_like(params[gamma])
    return params


def _failed_layer(err: BaseException) -> Optional[tuple[str, str]]:
    """(name, operator) of the MXNet node whose translation raised ``err``, read from the
    exporter's ``convert_layer`` frame in the traceback (None when it is not there)."""
    found = None
    tb = err.__traceback__
    while tb is not None:
        node = tb.tb_frame.f_locals.get("node") if tb.tb_frame.f_code.co_name == "convert_layer" else None
        if isinstance(node, dict) and "op" in node:
            found = (str(node.get("name")), str(node["op"]))
        tb = tb.tb_next
    return found


def _mxnet_export(sym: mx.sym.Symbol, params: dict, side: int) -> onnx.ModelProto:
    """MXNet's exporter on the raw-prediction symbol, batch dimension free."""
    with tempfile.TemporaryDirectory(prefix="ssd_onnx_") as tmp:
        path = os.path.join(tmp, "raw.onnx")
        try:
            mx_onnx.export_model(sym, params, in_shapes=[(1, 3, side, side)], in_types=[np.float32],
                                   onnx_file_path=path, dynamic=True,
                                   dynamic_input_shapes=[(None, 3, side, side)])
        except Exception as err:  # the exporter raises many kinds; each becomes one line
            detail = " ".join(str(err).split()) or type(err).__name__
            layer = _failed_layer(err)
            if layer is not None:
                raise OnnxExportError(f"cannot export layer {layer[0]!r} (MXNet operator {layer[1]}): "
                                      f"MXNet's ONNX exporter says: {detail}") from None
            raise OnnxExportError(f"MXNet's ONNX exporter failed: {detail}") from None
        return onnx.load(path)


def _l2_normalizations(sym: mx.sym.Symbol) -> dict[str, float]:
    """``eps`` of every L2Normalization node of ``sym``, by node name."""
    return {n["name"]: float(n.get("attrs", {}).get("eps", 1e-10))
            for n in json.loads(sym.tojson())["nodes"] if n["op"] == "L2Normalization"}


def _backbone_nodes(raw: onnx.ModelProto, source: str,
                    eps: dict[str, float]) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The exporter's nodes, reading ``source`` instead of its input, corrected where its
    translation is not MXNet's operator; and the constants those corrections need.

    - ``LpNormalization`` (L2Normalization without MXNet's ``eps``) becomes
      ``x / sqrt(sum(x^2, axis=1) + eps)``;
    - ``PRelu`` gets its per-channel slope as (C, 1, 1), which broadcasts over the
      channel axis as MXNet's does (ONNX aligns a (C,) slope with the last axis).
    """
    g = GraphBuilder("ssd/fix/")
    weights = {t.name: t for t in raw.graph.initializer}
    out = []
    for node in raw.graph.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        for i, name in enumerate(node.input):
            if name == INPUT:
                node.input[i] = source
        if node.op_type == "PRelu" and node.input[1] in weights:
            slope = onnx.numpy_helper.to_array(weights[node.input[1]])
            if slope.ndim == 1 and slope.size > 1:
                node.input[1] = g.const(slope.reshape(-1, 1, 1), slope.dtype, hint="prelu_slope")
        if node.op_type != "LpNormalization":
            out.append(node)
            continue
        key = node.name if node.name in eps else node.name.split("_", 2)[-1]  # the exporter's idx_K_ renames
        if key not in eps:
            raise OnnxExportError(f"layer {node.name!r}: an LpNormalization node that is no L2Normalization")
        x = node.input[0]
        total = g.op("ReduceSumSquare", x, axes=[1], keepdims=1)
        norm = g.op("Sqrt", g.op("Add", total, g.const(eps[key])))
        out.extend(g.nodes)
        g.nodes.clear()
        out.append(helper.make_node("Div", [x, norm], [node.output[0]], name=node.name))
    return out, g.initializers


def _priors(net: SSDBase, side: int, levels: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The (N, 4) priors at input size ``side`` (and every prior's feature level)."""
    x = mx.nd.zeros((1, 3, side, side), ctx=net._param_ctx())
    with autograd.predict_mode():
        out = net._predict(mx.nd, x, levels=True) if levels else net._predict(mx.nd, x)
    anchors = out[2].asnumpy().reshape(-1, 4).astype(np.float32)
    return anchors, (out[3].asnumpy().reshape(-1).astype(np.int64) if levels else None)


def onnx_model(net: SSDBase, *, dynamic_batch: bool = False, opset: int = OPSET,
               class_names: Optional[Sequence[str]] = None) -> onnx.ModelProto:
    """The detector ``net`` (its current decoding, at ``net.data_shape``) as an ONNX model.

    Parameters
    ----------
    net : SSDBase
        Any network of the project (a preset, a converted Caffe graph, ...).
    dynamic_batch : bool
        Leave the batch dimension free (``'batch'``); else it is 1.
    opset : int
        ONNX opset, from 13 (the operators' own) to :func:`max_opset`.
    class_names : sequence of str, optional
        Recorded in the model's metadata (``class_names``, a JSON list).

    Returns
    -------
    onnx.ModelProto
        Checked by ``onnx.checker``; input ``data`` (B, 3, S, S) RGB 0..255, output
        ``detections`` (B, keep_topk, 6) (see the module docstring).

    Raises
    ------
    OnnxExportError
        A layer MXNet's exporter cannot translate (named), or an opset out of range.
    """
    if not isinstance(opset, int) or not OPSET <= opset <= max_opset():
        raise OnnxExportError(f"opset {opset} is not supported: choose one from {OPSET} to {max_opset()}")
    if class_names is not None and len(class_names) != net.num_classes:
        raise OnnxExportError(f"{len(class_names)} class names for a network of {net.num_classes} classes")
    side, decoding = int(net.data_shape), net.decoding
    sym = _raw_symbol(net)
    raw = _mxnet_export(sym, _symbol_params(net, sym), side)
    cls_preds, box_preds = (o.name for o in raw.graph.output)
    anchors, levels = _priors(net, side, levels=decoding.nms_mode == "mmdet")

    pre = GraphBuilder("ssd/preprocess/")
    spec = net.preprocess.spec
    source = add_preprocessing(pre, INPUT, spec.mean, spec.std, spec.bgr)
    backbone, norm_consts = _backbone_nodes(raw, source, _l2_normalizations(sym))
    dec = GraphBuilder("ssd/decode/")
    try:
        dets = add_decoding(dec, cls_preds, box_preds, anchors, net.num_classes, decoding, net.variances, levels)
    except ValueError as err:
        raise OnnxExportError(f"cannot export nms_mode {decoding.nms_mode!r}: {err}") from None
    dec.nodes.append(helper.make_node("Identity", [dets], [OUTPUT], name=OUTPUT))

    nodes = pre.nodes + backbone + dec.nodes
    used = {name for node in nodes for name in node.input}
    weights = [t for t in pre.initializers + list(raw.graph.initializer) + norm_consts + dec.initializers
               if t.name in used]
    batch: Any = "batch" if dynamic_batch else 1
    graph = helper.make_graph(
        nodes, "ssd",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, 3, side, side])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, decoding.keep_topk, 6])],
        initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=_PRODUCER,
                              doc_string=_doc(net, side, decoding.keep_topk))
    meta = {"data_shape": str(side), "decoding": json.dumps(decoding.to_dict()),
            "variances": json.dumps(list(net.variances)), "num_classes": str(net.num_classes),
            "preprocess": json.dumps(spec.to_dict())}
    if class_names is not None:
        meta["class_names"] = json.dumps(list(class_names))
    helper.set_model_props(model, meta)
    if opset != OPSET:
        try:
            model = onnx.version_converter.convert_version(model, opset)
        except Exception as err:  # the converter raises its own C++ error types
            raise OnnxExportError(f"cannot convert the model to opset {opset}: {' '.join(str(err).split())}; "
                                  f"export with --opset {OPSET}") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:  # a translation this module does not know to correct
        raise OnnxExportError(f"the ONNX model is invalid: {' '.join(str(err).split())}") from None
    logger.info("ONNX model of %s: %d nodes, opset %d, input (%s, 3, %d, %d), %s decoding", type(net).__name__,
                len(model.graph.node), opset, batch, side, side, decoding.nms_mode)
    return model


def _doc(net: SSDBase, side: int, keep_topk: int) -> str:
    spec = net.preprocess.spec
    return (f"SSD detector ({type(net).__name__}, {net.num_classes} classes). Input 'data': float32 (B, 3, "
            f"{side}, {side}) RGB pixel values 0..255, NCHW (the model normalizes: "
            f"{'BGR, ' if spec.bgr else ''}minus {list(spec.mean)}, divided by {list(spec.std)}). Output "
            f"'detections': float32 (B, {keep_topk}, 6) rows [class_id, score, xmin, ymin, xmax, ymax], "
            f"corners normalized to [0, 1], by descending score; empty rows are all -1.")


def export_onnx(net: SSDBase, path: PathLike, *, dynamic_batch: bool = False, opset: int = OPSET,
                class_names: Optional[Sequence[str]] = None) -> Path:
    """Write :func:`onnx_model` of ``net`` to ``path`` atomically (the file is complete or absent).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OnnxExportError
        See :func:`onnx_model`.
    OSError
        ``path`` cannot be written.
    """
    model = onnx_model(net, dynamic_batch=dynamic_batch, opset=opset, class_names=class_names)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save_model(model, os.fspath(tmp))
    logger.info("wrote %s (%.1f MB)", path, path.stat().st_size / 2 ** 20)
    return path
