"""``get_model``: the one function that turns a network name and size into an SSD."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import mxnet as mx

from .anchors import anchor_specs
from .detection import DecodeConfig
from .presets import CAFFE_VGG, Preprocessing, Preset, find_preset, network_names
from .ssd import SSD, SSDBase

__all__ = ["CAFFE_GRAPH", "get_model", "model_names", "network_names", "NETWORKS"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkDef:
    """How a network name is assembled: its backbone module and layer styles."""

    backbone: str  # module under symbol.backbones with a ``build(preset, **kwargs)``
    extra_style: Optional[str] = None  # None: 'bn' if batch norm is on, else 'plain'
    head_style: str = "conv"
    tunable_batch_norm: bool = False  # accepts batch_norm=True/False
    scaled_extras: bool = False  # the backbone's width ``multiplier`` also thins the extra layers


NETWORKS: dict[str, NetworkDef] = {
    "vgg16_reduced": NetworkDef("vgg"),
    "resnet50": NetworkDef("resnet"),
    "resnet50_v2": NetworkDef("resnet_v2"),
    "inceptionv3": NetworkDef("inception"),
    "mobilenet": NetworkDef("mobilenet", tunable_batch_norm=True, scaled_extras=True),
    "ssdlite_mobilenetv2": NetworkDef("mobilenetv2", extra_style="ssdlite", head_style="separable"),
}
assert sorted(NETWORKS) == network_names(), "NETWORKS and PRESETS must name the same networks"

#: The network that executes a Caffe deploy graph (its ``layout``) rather than a preset.
CAFFE_GRAPH = "caffe"


def model_names() -> list[str]:
    """Every network name a checkpoint may record: :func:`network_names` and
    :data:`CAFFE_GRAPH`."""
    return network_names() + [CAFFE_GRAPH]


def get_model(name: str, data_shape: int, num_classes: int, *,
              layout: Optional[Mapping[str, Any]] = None,
              pretrained_base: Optional[str] = None,
              preprocess: Union[Preprocessing, dict, None] = None,
              ctx: Optional[mx.Context] = None, decoding: Optional[DecodeConfig] = None,
              **kwargs: Any) -> SSDBase:
    """Build an initialized SSD.

    Parameters
    ----------
    name : str
        One of :func:`network_names` (``vgg16_reduced``, ``resnet50``,
        ``resnet50_v2``, ``inceptionv3``, ``mobilenet``, ``ssdlite_mobilenetv2``, ...), or
        :data:`CAFFE_GRAPH` (``'caffe'``) with a Caffe graph as ``layout``.
    data_shape : int
        Input side length. The tuned presets are 300/512 (VGG16), 512
        (ResNet-50 v1 and v2, Inception-v3), 300/512 (MobileNet) and 320 (SSDLite); any
        other size uses the nearest preset with sizes scaled to the input.
    num_classes : int
        Number of foreground classes.
    layout : dict, optional
        The model's own layout, as converted checkpoints record it: for a
        preset network a :class:`Preset` (``Preset.to_dict()``) used instead of
        the table's (priors or extra layers of another implementation); for
        ``'caffe'`` the Caffe graph (see :mod:`symbol.caffe_graph`), required.
    pretrained_base : str, optional
        Local ``.params`` file with ImageNet weights for the backbone (see the
        backbone's ``build`` for the expected format). Random init otherwise.
    preprocess : Preprocessing or dict, optional
        Override the preset's in-graph input normalization.
    ctx : mx.Context, optional
        Where to initialize the parameters (default CPU).
    decoding : DecodeConfig, optional
        Decoding defaults (:class:`DecodeConfig`'s when omitted).
    **kwargs
        Single decoding settings (:meth:`DecodeConfig.names`, applied over
        ``decoding``) and backbone options (e.g.
        ``multiplier`` and ``batch_norm`` for ``mobilenet``, whose multiplier
        thins the extra layers too, e.g. 0.25 for a model of a few MB).

    Returns
    -------
    SSDBase
        An :class:`SSD` (a :class:`~symbol.caffe_graph.CaffeGraphSSD` for
        ``'caffe'``), initialized on ``ctx``, not hybridized. ``net.build_args`` records the
        arguments needed to build it again (checkpoints store them).

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones), bad sizes, unknown
        options, or an input too small for the network.
    """
    if name == CAFFE_GRAPH:
        if layout is None:
            raise ValueError(f"network {CAFFE_GRAPH!r} runs a Caffe graph: pass its layout (a checkpoint "
                             f"written by tools/caffe_converter/convert_model.py records it)")
    else:
        preset = find_preset(name, data_shape)  # raises for unknown names
        if layout is not None:
            preset = Preset.from_dict(layout)
    if not isinstance(data_shape, int) or data_shape < 32:
        raise ValueError(f"data_shape must be an integer of at least 32, got {data_shape!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    ctx = ctx or mx.cpu()
    decoding = (decoding or DecodeConfig()).replace(
        **{k: kwargs.pop(k) for k in DecodeConfig.names() if k in kwargs})
    if isinstance(preprocess, dict):
        preprocess = Preprocessing.from_dict(preprocess)
    if name == CAFFE_GRAPH:
        if kwargs or pretrained_base:
            raise ValueError(f"network {CAFFE_GRAPH!r} takes no backbone options or pretrained base, "
                             f"got {sorted(kwargs) + (['pretrained_base'] if pretrained_base else [])}")
        from .caffe_graph import CaffeGraphSSD

        preprocess = preprocess or CAFFE_VGG
        net: SSDBase = CaffeGraphSSD(layout, num_classes, data_shape, preprocess, prefix="ssd_caffe_",
                                     decoding=decoding)
        backbone_kwargs: dict = {}
    else:
        preprocess = preprocess or preset.preprocess
        net, backbone_kwargs = _build_ssd(name, preset, data_shape, num_classes, preprocess, pretrained_base,
                                          ctx, kwargs, decoding)
    _initialize(net, name, data_shape, ctx)
    net.build_args = {"network": name, "data_shape": data_shape, "num_classes": num_classes,
                      "preprocess": preprocess.to_dict(),
                      "kwargs": dict(backbone_kwargs),
                      "layout": None if layout is None else json.loads(json.dumps(layout))}
    logger.debug("built %s at %d with %d classes", name, data_shape, num_classes)
    return net


def _build_ssd(name: str, preset: Preset, data_shape: int, num_classes: int, preprocess: Preprocessing,
               pretrained_base: Optional[str], ctx: mx.Context, kwargs: dict,
               decoding: DecodeConfig) -> tuple[SSD, dict]:
    """The preset network ``name`` (backbone, extras, heads and priors of ``preset``)
    and the backbone options it was built with."""
    netdef = NETWORKS[name]
    backbone_kwargs = dict(kwargs)
    batch_norm = preset.batch_norm
    if netdef.tunable_batch_norm:
        batch_norm = bool(backbone_kwargs.pop("batch_norm", batch_norm))
        backbone_kwargs["batch_norm"] = batch_norm

    module = importlib.import_module(f"{__package__}.backbones.{netdef.backbone}")
    backbone = module.build(preset, pretrained_base=pretrained_base, ctx=ctx, **backbone_kwargs)
    extra_style = netdef.extra_style or ("bn" if batch_norm else "plain")
    extras = preset.extras
    if netdef.scaled_extras:
        extras = tuple(e.scaled(float(backbone_kwargs.get("multiplier", 1.0))) for e in extras)
    net = SSD(backbone, extras, anchor_specs(preset, data_shape), num_classes, data_shape,
              preprocess, preset.normalization, extra_style=extra_style,
              head_style=netdef.head_style, head_kernel=preset.head_kernel,
              prefix=f"ssd_{name}_", decoding=decoding)
    return net, backbone_kwargs


def _initialize(net: SSDBase, name: str, data_shape: int, ctx: mx.Context) -> None:
    """Caffe's "xavier" filler for every parameter not set yet (parameters loaded
    from a pretrained base keep their values), then the shapes."""
    xavier = mx.init.Xavier(rnd_type="uniform", factor_type="in", magnitude=3)
    for p in net.collect_params().values():
        if p._data is None and p._deferred_init == ():
            p.initialize(default_init=xavier, ctx=ctx)
    _finish_shapes(net, name, data_shape, ctx)


def _finish_shapes(net: SSDBase, name: str, data_shape: int, ctx: mx.Context) -> None:
    """Infer every parameter shape from a dummy input, so that the network can be
    saved before its first forward; an input too small for the network fails here."""
    try:
        # MXNet prints the failing shapes to stdout before raising; keep it quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            net.infer_shape(mx.nd.zeros((1, 3, data_shape, data_shape), ctx=ctx))
    except mx.base.MXNetError as err:
        raise ValueError(f"data_shape {data_shape} is too small for {name}: a feature map "
                         f"shrinks to nothing ({str(err).splitlines()[0]})") from None
    for p in net.collect_params().values():
        if p._deferred_init:
            p._finish_deferred_init()
    net._clear_cached_op()
