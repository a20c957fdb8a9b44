"""Read Caffe files with protobuf alone: deploy prototxts, caffemodels, label maps.

Both layer formats are accepted (``layer {}`` with string types and the old V1
``layers {}`` with enum types); each layer becomes a :class:`CaffeLayer` with
the new type names. Errors are ``ValueError`` naming the file (and the layer).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from google.protobuf import message, text_format

from common.fileio import PathLike, read_text

from . import caffe_pb2

__all__ = ["CaffeLayer", "CaffeNet", "blob_array", "read_caffemodel", "read_labelmap", "read_prototxt"]

logger = logging.getLogger(__name__)


# V1 enum names -> layer type strings.
_V1_TYPES = {
    "CONVOLUTION": "Convolution", "DECONVOLUTION": "Deconvolution", "RELU": "ReLU", "POOLING": "Pooling",
    "DROPOUT": "Dropout", "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "INNER_PRODUCT": "InnerProduct",
    "CONCAT": "Concat", "FLATTEN": "Flatten", "ELTWISE": "Eltwise", "SPLIT": "Split", "LRN": "LRN",
    "SIGMOID": "Sigmoid", "TANH": "TanH", "DATA": "Data", "SILENCE": "Silence", "ACCURACY": "Accuracy",
}


@dataclass
class CaffeLayer:
    """One layer, whichever format it came from.

    ``param`` is the layer message itself (``LayerParameter`` or
    ``V1LayerParameter``), so ``layer.param.convolution_param`` works for both.
    """

    name: str
    type: str
    bottom: list[str]
    top: list[str]
    param: Any
    blobs: list = field(default_factory=list)


@dataclass
class CaffeNet:
    """A parsed net: its layers in file order, its declared input shape and the
    names of its net-level inputs (``input: "data"``)."""

    path: Path
    name: str
    layers: list[CaffeLayer]
    input_shape: Optional[tuple[int, ...]]
    input_names: tuple[str, ...] = ()

    def layer(self, name: str) -> CaffeLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


def _layers(net: Any) -> list[CaffeLayer]:
    out = [CaffeLayer(l.name, l.type, list(l.bottom), list(l.top), l, list(l.blobs)) for l in net.layer]
    for l in net.layers:  # V1
        type_name = caffe_pb2.V1LayerParameter.LayerType.Name(l.type)
        out.append(CaffeLayer(l.name, _V1_TYPES.get(type_name, type_name), list(l.bottom), list(l.top), l,
                              list(l.blobs)))
    return out


def _input_shape(net: Any, layers: list[CaffeLayer]) -> Optional[tuple[int, ...]]:
    if net.input_shape:
        return tuple(int(d) for d in net.input_shape[0].dim)
    if net.input_dim:
        return tuple(int(d) for d in net.input_dim[:4])
    for layer in layers:
        if layer.type == "Input" and layer.param.input_param.shape:
            return tuple(int(d) for d in layer.param.input_param.shape[0].dim)
    return None


def read_prototxt(path: PathLike) -> CaffeNet:
    """Parse a text ``.prototxt`` (fields outside this project's schema are skipped).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable file, a syntax error (with its line and column), or no layers.
    """
    path = Path(path)
    text = read_text(path, "prototxt")
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as err:
        raise ValueError(f"{path}: prototxt syntax error: {err}") from None
    if net.layer and net.layers:
        raise ValueError(f"{path}: mixes new 'layer' and old 'layers' entries")
    layers = _layers(net)
    if not layers:
        raise ValueError(f"{path}: no layers (is it a net prototxt?)")
    return CaffeNet(path, net.name, layers, _input_shape(net, layers), tuple(net.input))


def read_caffemodel(path: PathLike) -> dict[str, list]:
    """The blobs of a binary ``.caffemodel`` by layer name (``BlobProto`` lists).

    Unknown fields are skipped; a file that is not a caffemodel (garbage,
    truncated) raises ``ValueError`` naming it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read caffemodel {path}: {err}") from None
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
    except (message.DecodeError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: not a valid caffemodel, the file is damaged or truncated "
                         f"({err or 'protobuf decode error'})") from None
    layers = _layers(net)
    if not any(layer.blobs for layer in layers):
        raise ValueError(f"{path}: not a valid caffemodel (no layer with weights)")
    blobs: dict[str, list] = {}
    for layer in layers:
        if layer.blobs:
            blobs[layer.name] = layer.blobs
    return blobs


def blob_array(blob: Any, expected: tuple[int, ...], where: str) -> np.ndarray:
    """A ``BlobProto`` as a float32 array of shape ``expected``.

    A blob with the old 4-D ``num/channels/height/width`` shape matches when
    its dimensions equal ``expected`` padded with leading 1s (Caffe's own rule).

    Raises
    ------
    ValueError
        The shape or the number of values differs; ``where`` names the blob.
    """
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
        ok = shape == tuple(expected)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
        ok = len(expected) <= 4 and shape == (1,) * (4 - len(expected)) + tuple(expected)
    if not ok:
        raise ValueError(f"{where} has shape {list(shape)}, expected {list(expected)}")
    count = int(np.prod(expected))
    if len(blob.data):
        values = np.array(blob.data, dtype=np.float32)
    else:
        values = np.array(blob.double_data, dtype=np.float32)
    if values.size != count:
        raise ValueError(f"{where} holds {values.size} values, its shape {list(shape)} needs {count}")
    return values.reshape(expected)


def read_labelmap(path: PathLike) -> list[str]:
    """Foreground class names of a Caffe ``labelmap.prototxt``, by label (0 = background dropped).

    ``display_name`` is used when present, else ``name``.
    """
    path = Path(path)
    labelmap = caffe_pb2.LabelMap()
    text = read_text(path, "label map")
    try:
        text_format.Parse(text, labelmap, allow_unknown_field=True)
    except text_format.ParseError as err:
        raise ValueError(f"{path}: label map syntax error: {err}") from None
    items = sorted(labelmap.item, key=lambda it: it.label)
    labels = [it.label for it in items]
    if not items or labels != list(range(labels[0], labels[0] + len(labels))) or labels[0] not in (0, 1):
        raise ValueError(f"{path}: label map labels must be consecutive from 0 (background) or 1, "
                         f"got {labels}")
    return [it.display_name or it.name for it in items if it.label != 0]
