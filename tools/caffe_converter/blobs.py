"""A caffemodel's weight blobs as arrays: checked shapes, BatchNorm statistics, Scale, folding.

Every function names the file and the layer in its errors (:class:`ConversionError`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .reader import CaffeLayer, blob_array

__all__ = ["ConversionError", "batch_norm_stats", "fold_affine", "layer_blobs", "scale_params"]


class ConversionError(ValueError):
    """The Caffe model cannot become the requested Gluon model (message names the layer)."""


def layer_blobs(blobs: dict, layer: CaffeLayer, count: int, where: str) -> list:
    """The first ``count`` blobs of ``layer`` in the caffemodel (``blobs``: name -> BlobProto list)."""
    found = blobs.get(layer.name, [])
    if len(found) < count:
        raise ConversionError(f"{where}: layer {layer.name!r} ({layer.type}) needs {count} blob(s), the "
                              f"caffemodel has {len(found)}")
    return found


def array(blobs: dict, layer: CaffeLayer, index: int, shape: tuple[int, ...], what: str, where: str,
          count: Optional[int] = None) -> np.ndarray:
    """Blob ``index`` of ``layer`` as a float64 array of ``shape`` (``count``: blobs the layer needs)."""
    blob = layer_blobs(blobs, layer, count or index + 1, where)[index]
    try:
        return blob_array(blob, shape, f"{where}: layer {layer.name!r} blob {index} ({what})").astype(np.float64)
    except ValueError as err:
        raise ConversionError(str(err)) from None


def batch_norm_stats(blobs: dict, layer: CaffeLayer, channels: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Caffe BatchNorm's running ``(mean, variance)``: the stored sums divided by
    the stored scale factor (0 stays 0, as in Caffe)."""
    c = (channels,)
    mean = array(blobs, layer, 0, c, "mean", where, 3)
    var = array(blobs, layer, 1, c, "variance", where, 3)
    factor = float(array(blobs, layer, 2, (1,), "scale factor", where, 3)[0])
    factor = 0.0 if factor == 0 else 1.0 / factor
    return mean * factor, var * factor


def scale_params(blobs: dict, layer: CaffeLayer, channels: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A Scale layer's ``(gamma, beta)``; beta is 0 without ``bias_term``."""
    has_bias = bool(layer.param.scale_param.bias_term)
    count = 2 if has_bias else 1
    gamma = array(blobs, layer, 0, (channels,), "scale", where, count)
    beta = array(blobs, layer, 1, (channels,), "bias", where, count) if has_bias else np.zeros(channels)
    return gamma, beta


def fold_affine(weight: np.ndarray, bias: np.ndarray, mul: np.ndarray, add: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """A convolution followed by ``y * mul + add`` per output channel, as one convolution.

    ``weight`` is ``(O, I, kh, kw)``; returns float32 ``(weight, bias)``.
    """
    weight = weight * mul[:, None, None, None]
    bias = bias * mul + add
    return weight.astype(np.float32), bias.astype(np.float32)


def batch_norm_affine(mean: np.ndarray, var: np.ndarray, eps: float, gamma: Optional[np.ndarray] = None,
                      beta: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm (and a Scale) as ``y = x * mul + add``: ``mul = gamma / sqrt(var + eps)``,
    ``add = beta - mean * mul``."""
    inv = 1.0 / np.sqrt(var + eps)
    gamma = np.ones_like(mean) if gamma is None else gamma
    beta = np.zeros_like(mean) if beta is None else beta
    return gamma * inv, beta - mean * gamma * inv
