"""One entry point for a Caffe SSD: a preset network when one fits, else the graph as it is.

``convert_caffe`` is what ``convert_model.py`` (and the benchmarks) run:
``network='auto'`` recognises VGG16 SSD300/512 and MobileNet-SSD and maps
them onto the presets (:func:`converter.convert_ssd`), so they train like
natively built networks; anything else, and a recognised model whose layers or
priors the preset cannot reproduce, becomes the ``caffe`` network
(:func:`graph.convert_graph`), with a note saying why.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from symbol.presets import Preprocessing, find_preset

from .blobs import ConversionError
from .converter import Conversion, convert_ssd, detect_network, input_side
from .graph import convert_graph, preprocess_from_prototxt
from .reader import CaffeNet

__all__ = ["CAFFE_MEAN", "caffe_input", "convert_caffe", "input_transform"]

logger = logging.getLogger(__name__)

#: Caffe's usual BGR mean, for graphs that state no transform of their own.
CAFFE_MEAN = (104.0, 117.0, 123.0)


def input_transform(default: Preprocessing, mean: Optional[Sequence[float]] = None, scale: Optional[float] = None,
                    bgr: Optional[bool] = None) -> Preprocessing:
    """``default`` with what the user gave: a mean (one value or three, in the
    model's channel order), the factor applied after it, the channel order."""
    if mean is None and scale is None and bgr in (None, default.bgr):
        return default
    values = default.mean if mean is None else tuple(float(v) for v in mean)
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"a mean needs 1 or 3 values, got {list(values)}")
    if scale is not None and not scale > 0:
        raise ValueError(f"the input scale must be positive, got {scale}")
    std = default.std if scale is None else (1.0 / scale,) * 3
    return Preprocessing(mean=values, std=std, bgr=default.bgr if bgr is None else bool(bgr))


def caffe_input(net_def: CaffeNet, data_shape: Optional[int] = None, mean: Optional[Sequence[float]] = None,
                scale: Optional[float] = None, bgr: Optional[bool] = None) -> Preprocessing:
    """The input transform of a Caffe model: what the user gave, over the
    prototxt's ``transform_param``, else the recognised network's recipe (VGG16
    SSD: BGR minus 104, 117, 123; MobileNet-SSD: ``(x - 127.5) * 0.007843``),
    else BGR minus :data:`CAFFE_MEAN`."""
    default = preprocess_from_prototxt(net_def)
    if default is None:
        try:
            default = find_preset(detect_network(net_def), input_side(net_def, data_shape)).preprocess
        except ConversionError:
            default = Preprocessing(mean=CAFFE_MEAN, bgr=True)
    return input_transform(default, mean, scale, bgr)


def convert_caffe(net_def: CaffeNet, blobs: dict, network: str = "auto", data_shape: Optional[int] = None,
                  class_names: Optional[Sequence[str]] = None, mean: Optional[Sequence[float]] = None,
                  scale: Optional[float] = None, bgr: Optional[bool] = None,
                  fold_batch_norm: bool = True) -> tuple[Conversion, list[str]]:
    """Convert a Caffe SSD deploy net with its weights.

    Parameters
    ----------
    network : {'auto', 'caffe', 'vgg16_reduced', 'mobilenet'}
        A preset (an error when it does not fit), ``caffe`` (the graph as it
        is), or ``auto``: the recognised preset, falling back to ``caffe``.
    mean, scale, bgr
        The input transform (see :func:`caffe_input` for the default).
    fold_batch_norm : bool
        ``caffe`` network: fold BatchNorm / Scale into the convolutions.

    Returns
    -------
    (conversion, notes)
        The conversion (network with weights, summary) and lines to show the
        user (why ``auto`` fell back).

    Raises
    ------
    ConversionError
        Anything that cannot be converted exactly (the message names the
        file and the layer).
    """
    if network not in ("auto", "caffe", "vgg16_reduced", "mobilenet"):
        raise ConversionError(f"unknown network {network!r}; valid: auto, caffe, vgg16_reduced, mobilenet")
    preprocess = caffe_input(net_def, data_shape, mean, scale, bgr)
    chosen, notes = network, []
    if network == "auto":
        try:
            chosen = detect_network(net_def)
        except ConversionError:
            chosen = "caffe"
    if chosen != "caffe":
        try:
            return convert_ssd(net_def, blobs, network=chosen, data_shape=data_shape, class_names=class_names,
                               preprocess=preprocess), notes
        except ConversionError as err:
            if network != "auto":
                raise
            notes.append(f"not the {chosen} preset ({err}); converting the Caffe graph as it is")
            logger.info("%s", notes[-1])
    return convert_graph(net_def, blobs, data_shape=data_shape, class_names=class_names, preprocess=preprocess,
                         fold_batch_norm=fold_batch_norm), notes
