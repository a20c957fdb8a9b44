"""Write caffemodels with this project's schema (for tests and benchmarks: there are
no real weights in the repository).

:func:`blob_shapes` infers the shape of every weight blob of a deploy prototxt;
:func:`write_caffemodel` serializes ``{layer name: [arrays]}`` as a binary
``NetParameter`` in the prototxt's own layer format. Blob data is written as
raw packed floats, so a 100 MB model takes a fraction of a second.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from symbol.caffe_graph import infer_shapes, parse_layout

from common.fileio import PathLike

from . import caffe_pb2
from .blobs import ConversionError
from .converter import conv_spec
from .reader import CaffeNet

__all__ = ["blob_shapes", "random_blobs", "write_caffemodel"]

_V1_ENUM = {"Convolution": "CONVOLUTION", "InnerProduct": "INNER_PRODUCT"}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _blob_bytes(array: np.ndarray) -> bytes:
    shape = caffe_pb2.BlobShape(dim=[int(d) for d in array.shape]).SerializeToString()
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return _field(7, shape) + _field(5, data)


def blob_shapes(net: CaffeNet) -> dict[str, list[tuple[int, ...]]]:
    """Shapes of the weight blobs of every layer that has weights, by layer name.

    An SSD deploy net gets the shapes Caffe infers for its graph (any layer
    type :mod:`symbol.caffe_graph` runs); another net (an ImageNet base) has
    its channels followed from the input through convolutions, BatchNorm,
    Scale and Normalize layers.
    """
    from .graph import graph_layout

    try:
        layout, nodes, _, _ = graph_layout(net, fold_batch_norm=False)
    except ConversionError:
        return _propagated_shapes(net)
    side = net.input_shape[2] if net.input_shape else 300
    shapes = infer_shapes(parse_layout(layout), side)
    out: dict[str, list[tuple[int, ...]]] = {}
    for node in nodes:
        c = shapes[node.bottom[0]][1]
        layer = node.layer
        if node.type in ("Convolution", "Deconvolution"):
            s = conv_spec(layer)
            o = s.num_output
            out[layer.name] = [((o, c // s.group) if node.type == "Convolution" else (c, o // s.group)) + s.kernel]
            if s.bias_term:
                out[layer.name].append((o,))
        elif node.type == "BatchNorm":
            out[layer.name] = [(c,), (c,), (1,)]
        elif node.type in ("PReLU", "Normalize"):
            shared = node.params["channel_shared"]
            out[layer.name] = [(1,) if shared else (c,)]
        if node.scale is not None or node.type == "Scale":
            scale = node.scale or layer
            out[scale.name] = [(c,), (c,)] if scale.param.scale_param.bias_term else [(c,)]
    return out


def _propagated_shapes(net: CaffeNet) -> dict[str, list[tuple[int, ...]]]:
    channels: dict[str, int] = {}
    inputs = [l for l in net.layers if l.type == "Input"]
    channels[inputs[0].top[0] if inputs else "data"] = 3 if net.input_shape is None else net.input_shape[1]
    shapes: dict[str, list[tuple[int, ...]]] = {}
    for layer in net.layers:
        if not layer.bottom or layer.bottom[0] not in channels:
            continue
        c = channels[layer.bottom[0]]
        out = c
        if layer.type in ("Convolution", "DepthwiseConvolution"):
            s = conv_spec(layer)
            shapes[layer.name] = [(s.num_output, c // s.group) + s.kernel]
            if s.bias_term:
                shapes[layer.name].append((s.num_output,))
            out = s.num_output
        elif layer.type == "Normalize":
            shapes[layer.name] = [(1,) if layer.param.norm_param.channel_shared else (c,)]
        elif layer.type == "BatchNorm":
            shapes[layer.name] = [(c,), (c,), (1,)]
        elif layer.type == "Scale":
            shapes[layer.name] = [(c,), (c,)] if layer.param.scale_param.bias_term else [(c,)]
        elif layer.type not in ("ReLU", "Pooling", "Dropout"):
            continue
        for top in layer.top:
            channels[top] = out
    return shapes


def random_blobs(net: CaffeNet, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """He-initialized random weights for every layer of ``net`` that has weights
    (biases small, Normalize scales 20, BatchNorm statistics plausible)."""
    rng = np.random.default_rng(seed)
    blobs: dict[str, list[np.ndarray]] = {}
    for name, shapes in blob_shapes(net).items():
        layer = net.layer(name)
        if layer.type in ("Convolution", "DepthwiseConvolution", "Deconvolution"):
            w_shape = shapes[0]
            fan_in = int(np.prod(w_shape[1:]))
            arrays = [(rng.standard_normal(w_shape, dtype=np.float32) * np.sqrt(2.0 / fan_in)).astype(np.float32)]
            if len(shapes) > 1:
                arrays.append(rng.uniform(-0.1, 0.1, shapes[1]).astype(np.float32))
        elif layer.type == "Normalize":
            arrays = [np.full(shapes[0], 20.0, np.float32)]
        elif layer.type == "PReLU":
            arrays = [rng.uniform(0.05, 0.3, shapes[0]).astype(np.float32)]
        elif layer.type == "BatchNorm":
            factor = np.float32(rng.uniform(0.5, 2.0))
            arrays = [rng.uniform(-0.5, 0.5, shapes[0]).astype(np.float32) * factor,
                      rng.uniform(0.5, 2.0, shapes[1]).astype(np.float32) * factor,
                      np.array([factor], np.float32)]
        else:  # Scale
            arrays = [rng.uniform(0.5, 1.5, s).astype(np.float32) if i == 0 else
                      rng.uniform(-0.2, 0.2, s).astype(np.float32) for i, s in enumerate(shapes)]
        blobs[name] = arrays
    return blobs


def write_caffemodel(path: PathLike, net: CaffeNet, blobs: Mapping[str, Sequence[np.ndarray]]) -> Path:
    """Write ``blobs`` (layer name -> arrays) as a binary caffemodel in ``net``'s layer format."""
    v1 = isinstance(net.layers[0].param, caffe_pb2.V1LayerParameter)
    parts = []
    for layer in net.layers:
        if layer.name not in blobs:
            continue
        if v1:
            head = caffe_pb2.V1LayerParameter(name=layer.name, bottom=layer.bottom, top=layer.top)
            head.type = caffe_pb2.V1LayerParameter.LayerType.Value(_V1_ENUM.get(layer.type, layer.type.upper()))
            body = head.SerializeToString() + b"".join(_field(6, _blob_bytes(a)) for a in blobs[layer.name])
            parts.append(_field(2, body))
        else:
            head = caffe_pb2.LayerParameter(name=layer.name, type=layer.type, bottom=layer.bottom, top=layer.top)
            body = head.SerializeToString() + b"".join(_field(7, _blob_bytes(a)) for a in blobs[layer.name])
            parts.append(_field(100, body))
    path = Path(path)
    header = caffe_pb2.NetParameter(name=net.name).SerializeToString()
    path.write_bytes(header + b"".join(parts))
    return path


def spread_head_scores(prototxt: PathLike, net: CaffeNet, blobs: dict[str, list[np.ndarray]],
                       image_bgr: np.ndarray, mean: Sequence[float], scale: float, *, conf_std: float = 2.0,
                       loc_std: float = 0.5, background: float = 9.0, workdir: PathLike = ".") -> None:
    """Rescale the random head weights in ``blobs`` (in place) so that, on ``image_bgr``,
    the class logits have standard deviation ``conf_std`` (background raised by
    ``background``) and the box offsets ``loc_std``: scores spread out instead
    of saturating, and only some priors beat the background.

    Runs the model once in OpenCV (``cv2.dnn``) to measure the head outputs.
    """
    import cv2

    from .graph import head_layers

    loc_heads, conf_heads = head_layers(net)
    path = Path(workdir) / "calibrate.caffemodel"
    write_caffemodel(path, net, blobs)
    dnn = cv2.dnn.readNetFromCaffe(str(prototxt), str(path))
    side = net.input_shape[2] if net.input_shape else image_bgr.shape[0]
    dnn.setInput(cv2.dnn.blobFromImage(image_bgr, scale, (side, side), tuple(mean), swapRB=False))
    heads = conf_heads + loc_heads
    outputs = dnn.forward([h.name for h in heads])
    path.unlink()
    num_conf = len(conf_heads)
    for i, (layer, out) in enumerate(zip(heads, outputs)):
        target = conf_std if i < num_conf else loc_std
        factor = target / max(float(np.std(out)), 1e-12)
        w, b = blobs[layer.name][0], blobs[layer.name][1]
        blobs[layer.name] = [w * factor, b * factor]
        if i < num_conf:  # raise the background logit of every prior
            channels = w.shape[0]
            classes = channels // (conv_spec(loc_heads[i]).num_output // 4)
            blobs[layer.name][1] = blobs[layer.name][1] + np.where(np.arange(channels) % classes == 0,
                                                                   background, 0.0).astype(np.float32)
