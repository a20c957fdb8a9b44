"""Low-precision SSDs for the CPU: calibrated INT8 (oneDNN) and bfloat16.

A low-precision model is the float network's *prediction graph* (input
normalization, backbone, extra layers and heads: everything up to the class
and box predictions ``(cls_preds, box_preds)``) converted by MXNet, the priors
(which depend on the input size only) computed once in float32 and kept as
constants, and the float :class:`~symbol.detection.DetectionOutput` on top.
The decoding stays a block of its own, so :meth:`SSDBase.set_nms` and every
decoding setting work on a low-precision model exactly as on the float one.

- :func:`quantize_ssd`: INT8 through MXNet's ``quantize_net_v2`` and oneDNN's
  fused kernels (convolution + batch norm + activation, requantization folded
  in; the weights stay float32 in the file and the fused convolutions quantize
  them when the graph is built), calibrated on real images: ``naive`` takes
  the observed min/max of every layer's output, ``entropy`` the thresholds
  that minimise the KL divergence between the float and the quantized
  distributions. Everything outside the chain of convolutions stays float32:
  the input normalization before the first convolution, and after the
  prediction heads their reshapes (transpose, flatten, concat) and the
  decoding. Inside the chain, convolutions, poolings, concats and sums run in
  INT8; batch norms that oneDNN cannot fold into a convolution (after a sum,
  on the input) and the operators without an INT8 kernel (Caffe's L2
  normalization of conv4_3) run in float32 between a dequantize and a quantize.
- :func:`to_bfloat16`: MXNet's AMP conversion (``mx.contrib.amp``,
  ``target_dtype='bfloat16'``): convolutions in bfloat16 (oneDNN's AVX-512
  BF16 kernels where the CPU has them), weights stored in bfloat16, the
  operators that take any type (ReLU, pooling, concat) in the type they get,
  the others in float32 (AMP's lists: L2 normalization, the reshapes); the
  predictions are cast back to float32 before the decoding.

Both return a :class:`LowPrecisionSSD`. :func:`symbol.checkpoint.save_checkpoint`
writes it as ``PREFIX-symbol.json`` (the prediction graph: input ``data``,
outputs ``cls_preds`` and ``box_preds``), ``PREFIX-EPOCH.params`` (the graph's
parameters in MXNet's ``arg:``/``aux:`` format, plus the priors as
``const:anchors`` ``(1, N, 4)`` and, for preset networks, their feature levels
as ``const:levels`` ``(1, N)``) and ``PREFIX-config.json`` (whose ``quantized``
section is a :class:`LowPrecisionInfo`); :func:`symbol.checkpoint.load_checkpoint`
loads it back. Fixed on such a model: the input size, the preprocessing and the weights
(they are baked into the graph), the device (CPU), and it cannot be trained;
the class names and all decoding settings can change.
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import HybridBlock, SymbolBlock

from common.errors import mxnet_error_line
from common.fileio import PathLike

from .ssd import SSDBase

__all__ = ["CALIB_MODES", "DTYPES", "LowPrecisionInfo", "LowPrecisionSSD", "PredictionGraph",
           "cpu_has_bf16", "float32_layers", "layer_names", "load_graph", "priors", "quantize_ssd", "save_graph",
           "to_bfloat16"]

logger = logging.getLogger(__name__)

#: ``int8``: calibrated INT8 (:func:`quantize_ssd`); ``bfloat16``: AMP (:func:`to_bfloat16`).
DTYPES = ("int8", "bfloat16")
#: How INT8 thresholds are found from the calibration images.
CALIB_MODES = ("naive", "entropy")
#: The prediction graph's input, and its outputs in order.
INPUT_NAME = "data"
OUTPUTS = ("cls_preds", "box_preds")
#: Keys of the constants in the params file, beside the graph's ``arg:`` and ``aux:`` entries.
ANCHORS_KEY, LEVELS_KEY = "const:anchors", "const:levels"
#: Operators that compute (the chain the INT8 graph keeps in INT8 runs from the first to the last of them).
_COMPUTE_OPS = frozenset({"Convolution", "FullyConnected"})
#: Operators with an INT8 kernel in MXNet 1.9.1's oneDNN build (what an exclusion keeps in float32).
_QUANTIZABLE_OPS = frozenset({"Convolution", "FullyConnected", "Pooling", "Concat", "concat", "Flatten", "flatten",
                              "elemwise_add", "Activation", "BatchNorm", "Embedding", "_sg_mkldnn_conv",
                              "_sg_mkldnn_fully_connected"})
#: Bookkeeping operators of a converted graph (not computations kept in float32).
_CONVERSION_OPS = frozenset({"null", "_contrib_quantize_v2", "_contrib_quantize", "_contrib_dequantize",
                             "_contrib_requantize", "amp_cast", "amp_multicast"})


# ---------------------------------------------------------------------- the record
@dataclass(frozen=True)
class LowPrecisionInfo:
    """What a low-precision model is and how it was made (a checkpoint config's ``quantized``).

    Attributes
    ----------
    dtype : {'int8', 'bfloat16'}
    variances : four floats
        The box coder's variances (the decoding needs them; the graph does not say).
    num_levels : int or None
        Feature levels of the priors when the checkpoint keeps each prior's
        level (preset networks; ``nms_mode='mmdet'`` needs it), else None.
    calibration : mapping or None
        INT8 only: ``mode`` (:data:`CALIB_MODES`), ``num_images``,
        ``quantized_dtype`` (MXNet's: ``auto`` is uint8 after a ReLU, else
        int8) and ``source`` (where the images came from, as the caller
        describes it: a data set kind, root and split, or a folder).
    excluded_layers : tuple of str
        Layers with an INT8 kernel kept in float32: the ones outside the chain
        of convolutions (the input normalization's concat, the heads' flatten
        and concat), batch norms that follow no convolution, and the ones
        asked for.
    float32_ops : mapping of str to int
        How many layers of each operator compute in float32 in the graph
        (conversions between types not counted).
    float_checkpoint : mapping
        The float checkpoint it was made from (``prefix``, ``epoch``), when known.
    mxnet : str
        The MXNet version that made the graph.
    """

    dtype: str
    variances: tuple[float, float, float, float]
    num_levels: Optional[int] = None
    calibration: Optional[Mapping[str, Any]] = None
    excluded_layers: tuple[str, ...] = ()
    float32_ops: Mapping[str, int] = field(default_factory=dict)
    float_checkpoint: Mapping[str, Any] = field(default_factory=dict)
    mxnet: str = mx.__version__

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"quantized.dtype must be one of {DTYPES}, got {self.dtype!r}")
        try:
            v = tuple(float(x) for x in self.variances)
        except (TypeError, ValueError):
            v = ()
        if len(v) != 4 or min(v) <= 0:
            raise ValueError(f"quantized.variances must be 4 positive numbers, got {self.variances!r}")
        object.__setattr__(self, "variances", v)
        if self.num_levels is not None and (not isinstance(self.num_levels, int) or isinstance(self.num_levels, bool)
                                            or self.num_levels < 1):
            raise ValueError(f"quantized.num_levels must be a positive integer or null, got {self.num_levels!r}")
        if self.dtype == "int8":
            if not isinstance(self.calibration, Mapping):
                raise ValueError("an int8 model's config needs quantized.calibration (how it was calibrated)")
            cal = dict(self.calibration)
            if cal.get("mode") not in CALIB_MODES:
                raise ValueError(f"quantized.calibration.mode must be one of {CALIB_MODES}, got {cal.get('mode')!r}")
            n = cal.get("num_images")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"quantized.calibration.num_images must be a positive integer, got {n!r}")
        elif self.calibration is not None:
            raise ValueError(f"a {self.dtype} model has no calibration, got quantized.calibration")
        if isinstance(self.excluded_layers, str) or not all(isinstance(s, str) for s in self.excluded_layers):
            raise ValueError(f"quantized.excluded_layers must be a list of layer names, got {self.excluded_layers!r}")
        if not isinstance(self.float32_ops, Mapping) or not all(
                isinstance(k, str) and isinstance(n, int) for k, n in self.float32_ops.items()):
            raise ValueError(f"quantized.float32_ops must map operator names to counts, got {self.float32_ops!r}")
        if not isinstance(self.float_checkpoint, Mapping):
            raise ValueError(f"quantized.float_checkpoint must be a JSON object, got {self.float_checkpoint!r}")
        try:  # private deep copies, which must be plain JSON
            cal = None if self.calibration is None else json.loads(json.dumps(dict(self.calibration)))
            src = json.loads(json.dumps(dict(self.float_checkpoint)))
        except (TypeError, ValueError) as err:
            raise ValueError(f"quantized: calibration and float_checkpoint must be plain JSON data ({err})") from None
        object.__setattr__(self, "calibration", None if cal is None else MappingProxyType(cal))
        object.__setattr__(self, "float_checkpoint", MappingProxyType(src))
        object.__setattr__(self, "excluded_layers", tuple(self.excluded_layers))
        object.__setattr__(self, "float32_ops", MappingProxyType(dict(self.float32_ops)))
        object.__setattr__(self, "mxnet", str(self.mxnet))

    def describe(self) -> str:
        """One line: the type, and for INT8 how it was calibrated."""
        if self.calibration is None:
            return self.dtype
        c = self.calibration
        return f"int8, {c['mode']} calibration on {c['num_images']} image(s)"

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "variances": list(self.variances), "num_levels": self.num_levels,
                "calibration": None if self.calibration is None else json.loads(json.dumps(dict(self.calibration))),
                "excluded_layers": list(self.excluded_layers), "float32_ops": dict(self.float32_ops),
                "float_checkpoint": json.loads(json.dumps(dict(self.float_checkpoint))), "mxnet": self.mxnet}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LowPrecisionInfo":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming the bad field."""
        if not isinstance(d, Mapping):
            raise ValueError(f"quantized must be a JSON object, got {type(d).__name__}")
        missing = [k for k in ("dtype", "variances") if k not in d]
        if missing:
            raise ValueError(f"quantized is missing {', '.join(missing)}")
        unknown = sorted(set(d) - {"dtype", "variances", "num_levels", "calibration", "excluded_layers",
                                   "float32_ops", "float_checkpoint", "mxnet"})
        if unknown:
            raise ValueError(f"quantized has unknown fields {unknown}")
        return cls(dtype=d["dtype"], variances=d["variances"], num_levels=d.get("num_levels"),
                   calibration=d.get("calibration"), excluded_layers=tuple(d.get("excluded_layers", ())),
                   float32_ops=d.get("float32_ops", {}), float_checkpoint=d.get("float_checkpoint", {}),
                   mxnet=d.get("mxnet", "unknown"))

    def replace(self, **changes: Any) -> "LowPrecisionInfo":
        fields = {**self.__dict__, **changes}
        return LowPrecisionInfo(**fields)


# ---------------------------------------------------------------------- the graph
class PredictionGraph(HybridBlock):
    """A float SSD up to its class and box predictions ``(cls_preds, box_preds)``: what
    gets converted (the priors are constants, see :func:`priors`).

    The wrapped network is a child: its parameters are this block's, under their own names.
    """

    def __init__(self, net: SSDBase, **kwargs) -> None:
        kwargs.setdefault("prefix", "predictions_")  # stable layer names, whatever was built before
        super().__init__(**kwargs)
        self.net = net

    def hybrid_forward(self, F, x):
        cls_preds, box_preds = self.net._predict(F, x)[:2]
        return cls_preds, box_preds


def priors(net: SSDBase) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``net``'s priors at its input size, ``(1, N, 4)`` normalized corners, and their feature
    levels ``(1, N)`` (None when the network does not know them)."""
    side = net.data_shape
    levels = bool(net.detector.num_levels)
    with autograd.predict_mode():
        out = net._predict(mx.nd, mx.nd.zeros((1, 3, side, side), ctx=net._param_ctx()), levels=levels)
    return out[2].asnumpy().astype(np.float32), out[3].asnumpy().astype(np.float32) if levels else None


class LowPrecisionSSD(SSDBase):
    """An SSD whose predictions come from a converted graph (INT8 or bfloat16), decoded in float32.

    Parameters
    ----------
    graph : SymbolBlock
        The prediction graph: input ``data`` (RGB 0..255, NCHW), outputs
        ``cls_preds`` ``(B, N, C + 1)`` and ``box_preds`` ``(B, N * 4)``.
    info : LowPrecisionInfo
    anchors : array
        ``(1, N, 4)`` priors, normalized corners (see :func:`priors`).
    levels : array, optional
        ``(1, N)`` their feature levels (``info.num_levels`` of them).
    num_classes, data_shape, preprocess
        As for :class:`SSDBase` (the preprocessing is inside the graph; it is
        recorded, not applied a second time).
    **kwargs
        Decoding defaults (``decoding`` and single settings) and block options.

    Notes
    -----
    Inference only: under ``autograd.record()`` in training mode it raises
    ``ValueError``. :meth:`set_nms` works as on any SSD.
    """

    def __init__(self, graph: SymbolBlock, info: LowPrecisionInfo, anchors: np.ndarray,
                 levels: Optional[np.ndarray], num_classes: int, data_shape: int, preprocess: Any,
                 ctx: Optional[mx.Context] = None, **kwargs) -> None:
        super().__init__(num_classes, data_shape, preprocess, variances=info.variances, **kwargs)
        anchors = np.asarray(anchors, dtype=np.float32)
        if anchors.ndim != 3 or anchors.shape[0] != 1 or anchors.shape[2] != 4:
            raise ValueError(f"anchors must be (1, N, 4), got {anchors.shape}")
        if (levels is None) != (not info.num_levels):
            raise ValueError("levels must be given exactly when info.num_levels is")
        if levels is not None:
            levels = np.asarray(levels, dtype=np.float32)
            if levels.shape != anchors.shape[:2]:
                raise ValueError(f"levels must be {anchors.shape[:2]}, got {levels.shape}")
        self.info = info
        # One constant: the corners, and each prior's level as a fifth column when known (a
        # second constant would be unused, and warned about, outside nms_mode 'mmdet').
        table = anchors if levels is None else np.concatenate([anchors, levels[:, :, None]], axis=2)
        with self.name_scope():
            self.graph = graph
            self.priors = self.params.get_constant("priors", mx.nd.array(table))
        self.priors.initialize(ctx=ctx or mx.cpu())
        self.detector.num_levels = info.num_levels
        self.class_head_prefixes = ()

    @property
    def dtype(self) -> str:
        """``'int8'`` or ``'bfloat16'``."""
        return self.info.dtype

    @property
    def _kind(self) -> str:
        """``'an int8 model'`` or ``'a bfloat16 model'``, for messages."""
        return f"{'an' if self.dtype == 'int8' else 'a'} {self.dtype} model"

    @property
    def anchors(self) -> np.ndarray:
        """``(1, N, 4)`` priors, normalized corners."""
        return self.priors.data(mx.cpu()).asnumpy()[:, :, :4]

    @property
    def levels(self) -> Optional[np.ndarray]:
        """``(1, N)`` feature level of each prior, or None."""
        table = self.priors.data(mx.cpu()).asnumpy()
        return table[:, :, 4] if table.shape[2] == 5 else None

    def hybrid_forward(self, F, x, priors):
        cls_preds, box_preds = self._predictions(F, x)
        if not self.info.num_levels:
            return self.detector(cls_preds, box_preds, priors)
        anchors = F.slice_axis(priors, axis=2, begin=0, end=4)
        if self.detector.nms_mode == "mmdet":
            levels = F.reshape(F.slice_axis(priors, axis=2, begin=4, end=5), shape=(1, -1))
            return self.detector(cls_preds, box_preds, anchors, levels)
        return self.detector(cls_preds, box_preds, anchors)

    def _predictions(self, F, x):
        if autograd.is_training():
            raise ValueError(f"{self._kind} runs inference only: train or fine-tune the float checkpoint it "
                             f"was made from")
        out = self.graph(x)
        outs = [out[0], out[1]]
        if self.dtype == "bfloat16":  # the decoding runs in float32
            outs = [F.amp_cast(o, dtype="float32") for o in outs]
        return outs

    def _predict(self, F, x, levels: bool = False):
        """The raw predictions, computed imperatively (``raw_predictions``)."""
        if not isinstance(x, mx.nd.NDArray):
            raise ValueError(f"{self._kind}'s predictions come from MXNet's {self.dtype} graph, not from the "
                             f"network's layers, so they cannot be traced again (e.g. for ONNX): use the float "
                             f"checkpoint it was made from")
        if levels and not self.info.num_levels:
            raise ValueError("this low-precision model does not know the feature level of its priors")
        cls_preds, box_preds = self._predictions(F, x)
        table = self.priors.data(x.context)
        out = (cls_preds, box_preds, F.slice_axis(table, axis=2, begin=0, end=4))
        return out + (F.reshape(F.slice_axis(table, axis=2, begin=4, end=5), shape=(1, -1)),) if levels else out

    def export(self, path: str, epoch: int = 0, remove_amp_cast: bool = False) -> None:
        """As :meth:`SSDBase.export` (the whole detector, decoding included); the casts of a
        bfloat16 graph are kept, since its weights are bfloat16."""
        super().export(path, epoch, remove_amp_cast=remove_amp_cast)


# ---------------------------------------------------------------------- conversions
def quantize_ssd(net: SSDBase, images: np.ndarray, *, calib_mode: str = "naive",
                 exclude: Sequence[str] = (),
                 source: Optional[Mapping[str, Any]] = None) -> LowPrecisionSSD:
    """Calibrated INT8 version of ``net`` (oneDNN, CPU).

    Parameters
    ----------
    net : SSDBase
        A float network on the CPU. It is hybridized as a side effect.
    images : array
        ``(N, 3, S, S)`` float32 calibration batch, RGB 0..255 resized to the
        network input exactly as :class:`evaluate.detector.Detector` feeds it.
    calib_mode : {'naive', 'entropy'}
    exclude : sequence of str
        More layers to keep in float32: each string selects the layers whose
        name contains it (see :func:`layer_names`); one that selects nothing
        is an error.
    source : mapping, optional
        Where the images came from, recorded in the calibration (plain JSON).

    Raises
    ------
    ValueError
        Bad arguments, an empty or malformed calibration batch, a network not
        on the CPU, an ``exclude`` that selects no layer.
    RuntimeError
        This MXNet build has no oneDNN (MKLDNN), or MXNet failed.
    """
    _require_mkldnn("INT8")
    if calib_mode not in CALIB_MODES:
        raise ValueError(f"calib_mode must be one of {CALIB_MODES}, got {calib_mode!r}")
    images = _check_images(images, net.data_shape)
    _require_cpu(net)
    raw = PredictionGraph(net)
    symbol = _trace(raw, net.data_shape)
    ruled = _float32_by_rule(symbol)
    chosen = _select_layers(symbol, exclude)
    excluded = sorted(set(ruled) | set(chosen))
    usable = len(images)
    batch = max(b for b in range(1, min(8, usable) + 1) if usable % b == 0)  # full batches of up to 8
    data = mx.io.NDArrayIter(mx.nd.array(images), batch_size=batch, data_name=INPUT_NAME)
    logger.info("calibrating %s INT8 (%s) on %d image(s); %d layer(s) stay float32 by rule, %d asked for",
                type(net).__name__, calib_mode, usable, len(ruled), len(chosen))
    from mxnet.contrib.quantization import quantize_net_v2

    try:
        with _quiet():
            graph = quantize_net_v2(raw, quantized_dtype="auto", quantize_mode="full",
                                    exclude_layers=list(excluded),
                                    calib_data=data, calib_mode=calib_mode, num_calib_examples=usable,
                                    ctx=mx.cpu())
    except mx.base.MXNetError as err:
        raise RuntimeError(f"MXNet could not quantize the network: {mxnet_error_line(err)}") from None
    ops = _float32_ops(graph)
    kinds = {n["name"]: n["op"] for n in _nodes(symbol)}
    info = LowPrecisionInfo(
        dtype="int8", variances=net.variances, num_levels=net.detector.num_levels or None,
        calibration={"mode": calib_mode, "num_images": usable, "quantized_dtype": "auto",
                     "source": dict(source or {})},
        excluded_layers=tuple(n for n in excluded if kinds.get(n) in _QUANTIZABLE_OPS), float32_ops=ops)
    logger.info("INT8 graph: float32 layers %s", ", ".join(f"{k} x{v}" for k, v in sorted(ops.items())))
    return _wrap(graph, info, net)


def to_bfloat16(net: SSDBase, *, exclude: Sequence[str] = ()) -> LowPrecisionSSD:
    """bfloat16 version of ``net`` (MXNet's AMP; convolutions in bfloat16 on the CPU).

    Parameters
    ----------
    net : SSDBase
        A float network on the CPU. It is hybridized as a side effect.
    exclude : sequence of str
        Layers to keep in float32, selected by name as in :func:`quantize_ssd`.

    Raises
    ------
    ValueError
        A network not on the CPU, an ``exclude`` that selects no layer.
    RuntimeError
        MXNet failed.
    """
    _require_cpu(net)
    raw = PredictionGraph(net)
    symbol = _trace(raw, net.data_shape)
    chosen = _select_layers(symbol, exclude)
    from mxnet.contrib import amp

    try:
        with _quiet():
            graph = amp.convert_hybrid_block(_as_symbol_block(raw, symbol), target_dtype="bfloat16",
                                             excluded_sym_names=list(chosen), ctx=mx.cpu(),
                                             cast_optional_params=True)
    except mx.base.MXNetError as err:
        raise RuntimeError(f"MXNet could not convert the network to bfloat16: {mxnet_error_line(err)}") from None
    info = LowPrecisionInfo(dtype="bfloat16", variances=net.variances, num_levels=net.detector.num_levels or None,
                            excluded_layers=tuple(chosen), float32_ops=_float32_ops(graph))
    return _wrap(graph, info, net)


def _wrap(graph: SymbolBlock, info: LowPrecisionInfo, net: SSDBase) -> LowPrecisionSSD:
    anchors, levels = priors(net)
    out = LowPrecisionSSD(graph, info, anchors, levels, net.num_classes, net.data_shape, net.preprocess.spec,
                          decoding=net.decoding)
    if isinstance(getattr(net, "build_args", None), dict):
        out.build_args = json.loads(json.dumps(net.build_args))
    return out


def cpu_has_bf16() -> Optional[bool]:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX); None when it cannot tell
    (no ``/proc/cpuinfo``)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return None


def float32_layers(net: LowPrecisionSSD) -> list[tuple[str, str]]:
    """``(name, operator)`` of every layer of the graph that computes in float32 (whose
    output is float32), the conversions between types left out."""
    return _float32_layers(net.graph._cached_graph[1])


# ---------------------------------------------------------------------- files
def save_graph(net: LowPrecisionSSD, symbol_file: PathLike, params_file: PathLike) -> None:
    """Write the prediction graph (JSON) and its parameters (``arg:``/``aux:`` NDArrays, and the
    priors as ``const:anchors`` / ``const:levels``) to exactly these paths (the caller makes
    the writes atomic)."""
    symbol = net.graph._cached_graph[1]
    symbol.save(os.fspath(symbol_file), remove_amp_cast=False)
    args, aux = set(symbol.list_arguments()), set(symbol.list_auxiliary_states())
    arrays = {}
    for name, param in net.graph.collect_params().items():
        if name in args:
            arrays[f"arg:{name}"] = param.data(mx.cpu())
        elif name in aux:
            arrays[f"aux:{name}"] = param.data(mx.cpu())
    arrays[ANCHORS_KEY] = mx.nd.array(net.anchors)
    levels = net.levels
    if levels is not None:
        arrays[LEVELS_KEY] = mx.nd.array(levels)
    mx.nd.save(os.fspath(params_file), arrays)


def load_graph(symbol_file: PathLike, params_file: PathLike, info: LowPrecisionInfo, num_classes: int,
               data_shape: int, preprocess: Any, *, ctx: Optional[mx.Context] = None,
               decoding: Any = None) -> LowPrecisionSSD:
    """Load a prediction graph written by :func:`save_graph`.

    Raises
    ------
    FileNotFoundError
        A missing file.
    ValueError
        A damaged file, a graph whose inputs or outputs are not the ones
        ``info`` describes, or a device other than the CPU.
    """
    ctx = ctx or mx.cpu()
    if ctx.device_type != "cpu":
        raise ValueError(f"a {info.dtype} model runs on the CPU only (oneDNN kernels), not on {ctx}")
    for path in (symbol_file, params_file):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{info.dtype} checkpoint file not found: {path}")
    try:
        with _quiet():
            symbol = mx.sym.load(os.fspath(symbol_file))
    except mx.base.MXNetError as err:
        raise ValueError(f"cannot read the graph {symbol_file}: {mxnet_error_line(err)}") from None
    inputs = [n for n in symbol.list_inputs() if n == INPUT_NAME]
    if not inputs:
        raise ValueError(f"the graph {symbol_file} has no input {INPUT_NAME!r}: not a prediction graph")
    if len(symbol.list_outputs()) != len(OUTPUTS):
        raise ValueError(f"the graph {symbol_file} has {len(symbol.list_outputs())} outputs, not "
                         f"{len(OUTPUTS)} ({', '.join(OUTPUTS)})")
    with _quiet():
        graph = SymbolBlock(symbol, [mx.sym.var(INPUT_NAME)])
    try:
        arrays = mx.nd.load(os.fspath(params_file))
    except mx.base.MXNetError as err:
        raise ValueError(f"cannot read checkpoint params {params_file}: {mxnet_error_line(err)}; the file is "
                         f"damaged or not an MXNet .params file") from None
    if not isinstance(arrays, dict) or ANCHORS_KEY not in arrays or (bool(info.num_levels) != (LEVELS_KEY in arrays)):
        raise ValueError(f"{params_file} is not the params file of a {info.dtype} checkpoint (no {ANCHORS_KEY}, or "
                         f"{LEVELS_KEY} where its config says otherwise)")
    anchors, levels = arrays.pop(ANCHORS_KEY), arrays.pop(LEVELS_KEY, None)
    try:
        graph.collect_params().load_dict(arrays, ctx=ctx, cast_dtype=True, dtype_source="saved",
                                         filename=os.fspath(params_file))
    except (AssertionError, RuntimeError, KeyError, ValueError, mx.base.MXNetError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"the parameters in {params_file} do not fit the graph {symbol_file} ({detail})") from None
    try:
        return LowPrecisionSSD(graph, info, anchors.asnumpy(), None if levels is None else levels.asnumpy(),
                               num_classes, data_shape, preprocess, ctx=ctx, decoding=decoding)
    except ValueError as err:
        raise ValueError(f"{params_file}: {err}") from None


# ---------------------------------------------------------------------- helpers
def layer_names(net: SSDBase) -> list[str]:
    """The layer names of ``net``'s prediction graph (what ``exclude`` selects from)."""
    return [n["name"] for n in _nodes(_trace(PredictionGraph(net), net.data_shape)) if n["op"] != "null"]


def _trace(raw: PredictionGraph, side: int) -> mx.sym.Symbol:
    """The float prediction graph, as MXNet's converters trace it (same layer names)."""
    raw.hybridize()
    with autograd.predict_mode():
        raw(mx.nd.zeros((1, 3, side, side), ctx=mx.cpu()))
    return raw._cached_graph[1]


def _as_symbol_block(raw: PredictionGraph, symbol: mx.sym.Symbol) -> SymbolBlock:
    """``symbol`` (traced from ``raw``) as a SymbolBlock holding only the parameters it uses
    (a prior generator's constants are not: the priors are not part of the graph)."""
    with _quiet():
        block = SymbolBlock(symbol, [mx.sym.var(INPUT_NAME)])
    params = raw.collect_params()
    for name, param in block.collect_params().items():
        param._load_init(params[name].data(mx.cpu()), mx.cpu())
    return block


def _nodes(symbol: mx.sym.Symbol) -> list[dict]:
    return json.loads(symbol.tojson(remove_amp_cast=False))["nodes"]


def _float32_by_rule(symbol: mx.sym.Symbol) -> list[str]:
    """Names of the layers an INT8 graph keeps in float32 whatever is asked:

    - the layers outside the chain of computing layers (convolutions): the input
      normalization before the first, the reshapes after the last. A layer is
      inside the chain when a convolution feeds it (directly or not) and it feeds
      a convolution; the convolutions themselves always run in INT8.
    - batch norms that do not follow a convolution (a pre-activation ResNet's,
      a Caffe graph's after a sum or on the input): oneDNN folds the others into
      their convolution, and these lose too much in INT8 (measured on OpenCV's
      face detector: score errors up to 0.09, 0.02 with them in float32).
    """
    nodes = _nodes(symbol)
    standalone_bn = [n["name"] for n in nodes if n["op"] == "BatchNorm"
                     and nodes[n["inputs"][0][0]]["op"] != "Convolution"]
    after = [False] * len(nodes)  # a computing layer is upstream
    for i, node in enumerate(nodes):  # the JSON lists nodes in topological order
        after[i] = any(nodes[j]["op"] in _COMPUTE_OPS or after[j] for j, _, *_ in node["inputs"])
    before = [False] * len(nodes)  # a computing layer is downstream
    for i in range(len(nodes) - 1, -1, -1):
        if nodes[i]["op"] in _COMPUTE_OPS or before[i]:
            for j, _, *_ in nodes[i]["inputs"]:
                before[j] = True
    outside = [n["name"] for i, n in enumerate(nodes)
               if n["op"] != "null" and n["op"] not in _COMPUTE_OPS and not (after[i] and before[i])]
    return outside + [n for n in standalone_bn if n not in outside]


def _select_layers(symbol: mx.sym.Symbol, patterns: Sequence[str]) -> list[str]:
    if isinstance(patterns, str):
        raise ValueError("exclude must be a list of strings, not one string")
    names = [n["name"] for n in _nodes(symbol) if n["op"] != "null"]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if pattern in n]
        if not pattern or not hits:
            raise ValueError(f"no layer of the graph matches {pattern!r}; layer names look like "
                             f"{', '.join(names[:3])}, ... ({len(names)} layers)")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _float32_layers(symbol: mx.sym.Symbol) -> list[tuple[str, str]]:
    internals = symbol.get_internals()
    with _quiet():
        _, types, _ = internals.infer_type(**{INPUT_NAME: np.float32})
    first: dict[str, Any] = {}  # a layer's first output: its data (quantized layers add min and max)
    for name, dtype in zip(internals.list_outputs(), types or []):
        head, sep, index = name.rpartition("_output")
        if sep and index in ("", "0"):
            first.setdefault(head, dtype)
    return [(n["name"], n["op"]) for n in _nodes(symbol)
            if n["op"] not in _CONVERSION_OPS and first.get(n["name"]) is np.float32]


def _float32_ops(graph: SymbolBlock) -> dict:
    counts = collections.Counter(op for _, op in _float32_layers(graph._cached_graph[1]))
    return dict(sorted(counts.items()))


def _check_images(images: Any, side: int) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1:] != (3, side, side):
        shape = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"calibration images must be an (N, 3, {side}, {side}) array, got {shape}")
    if len(images) == 0:
        raise ValueError("the calibration set is empty: give at least one image")
    images = images.astype(np.float32, copy=False)
    if not np.isfinite(images).all():
        raise ValueError("the calibration images hold NaN or infinite values")
    return images


def _require_mkldnn(what: str) -> None:
    if not mx.runtime.Features().is_enabled("MKLDNN"):
        raise RuntimeError(f"{what} needs MXNet built with oneDNN (MKLDNN); this build has none")


def _require_cpu(net: SSDBase) -> None:
    for p in net.collect_params().values():
        try:
            ctxs = p.list_ctx()
        except Exception:  # an uninitialized parameter: nothing to convert
            raise ValueError(f"parameter {p.name} is not initialized: load the weights first") from None
        if any(c.device_type != "cpu" for c in ctxs):
            raise ValueError(f"low-precision conversion runs on the CPU; parameter {p.name} is on {ctxs[0]}")


@contextlib.contextmanager
def _quiet():
    """MXNet's converters warn about argument types they cannot infer and print graph passes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


