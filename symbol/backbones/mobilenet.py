"""MobileNet v1 (Howard et al. 2017), in two layouts.

- ``batch_norm=True``: conv + BN + ReLU, the layout of GluonCV's / MXNet's
  ``mobilenet1_0`` (same parameter names, so their ImageNet ``.params`` load);
  GluonCV's ``ssd_512_mobilenet1.0`` takes ``relu22`` and ``relu26``, the
  outputs of conv11 and conv13.
- ``batch_norm=False``: biased conv + ReLU, the layout of chuanqi305's Caffe
  MobileNet-SSD, whose BatchNorm/Scale layers are folded into the convolutions,
  so its weights convert one to one.
"""
from __future__ import annotations

from typing import Optional

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..presets import Preset
from .common import load_base, reject_options

__all__ = ["MobileNet", "build"]

# (output channels, stride) of the 13 depthwise-separable blocks conv1 .. conv13.
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# Source name -> index of its conv in the flat list conv0, conv1/dw, conv1, ..., conv13.
_SOURCES = {"conv11": 22, "conv13": 26}


class MobileNet(HybridBlock):
    """MobileNet v1 feature extractor returning the maps named in ``sources``.

    Parameters
    ----------
    sources : tuple of str
        Layers to return, from ``conv11`` (stride 16) and ``conv13`` (stride 32).
    multiplier : float
        Width multiplier (1.0 is the standard network).
    batch_norm : bool
        BN after every conv (GluonCV layout) or biased convs (Caffe MobileNet-SSD).
    """

    def __init__(self, sources: tuple[str, ...] = ("conv11", "conv13"), multiplier: float = 1.0,
                 batch_norm: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        unknown = [s for s in sources if s not in _SOURCES]
        if unknown:
            raise ValueError(f"unknown MobileNet source layers {unknown}; valid: {sorted(_SOURCES)}")
        if multiplier <= 0:
            raise ValueError(f"multiplier must be positive, got {multiplier}")
        width = lambda c: max(8, int(c * multiplier))  # noqa: E731
        convs = [(width(32), 3, 2, 1)]  # (channels, kernel, stride, groups)
        in_ch = width(32)
        for ch, stride in _BLOCKS:
            convs.append((in_ch, 3, stride, in_ch))
            convs.append((width(ch), 1, 1, 1))
            in_ch = width(ch)
        per_conv = 3 if batch_norm else 2
        # Index in ``features`` just after each source's activation.
        self._cuts = [(_SOURCES[s] + 1) * per_conv for s in sources]
        self.source_channels = tuple(convs[_SOURCES[s]][0] for s in sources)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            with self.features.name_scope():
                in_ch = 3
                for ch, k, stride, groups in convs:
                    self.features.add(nn.Conv2D(ch, k, strides=stride, padding=k // 2, groups=groups,
                                                in_channels=in_ch, use_bias=not batch_norm))
                    if batch_norm:
                        self.features.add(nn.BatchNorm(scale=True, center=True, in_channels=ch))
                    self.features.add(nn.Activation("relu"))
                    in_ch = ch

    def hybrid_forward(self, F, x):
        outs, start = [], 0
        for cut in self._cuts:
            for i in range(start, cut):
                x = self.features[i](x)
            outs.append(x)
            start = cut
        return outs


def build(preset: Preset, pretrained_base: Optional[str] = None, ctx: Optional[mx.Context] = None,
          multiplier: float = 1.0, batch_norm: bool = True, **kwargs) -> MobileNet:
    """MobileNet v1 backbone for an SSD preset.

    ``pretrained_base`` is GluonCV's / MXNet's ``mobilenet1_0`` ImageNet
    ``.params`` file (``batch_norm=True``) or a file saved from this block.
    """
    reject_options("mobilenet", kwargs)
    net = MobileNet(preset.sources, multiplier=multiplier, batch_norm=batch_norm)
    if pretrained_base:
        load_base(net, pretrained_base, ctx)
    return net
