"""ResNet-50 v2 (He et al. 2016, "Identity Mappings"), the network mxnet-ssd's ResNet-50 SSD512 used.

mxnet-ssd took its ResNet from tornadomeet's MXNet port, which differs from
the Gluon model zoo's ``resnet50_v2`` in ways that change the output, so it is
built here layer by layer:

- the input goes through ``bn_data``, a BatchNorm with gamma fixed at 1 and a
  learnable beta (the model zoo's has neither);
- every BatchNorm has epsilon 2e-5 (the model zoo's 1e-5);
- a stem of conv0 (7x7, stride 2, pad 3, no bias), bn0, ReLU and a 3x3 max
  pool (stride 2, pad 1);
- bottleneck units ``bn1-relu-conv1 (1x1) - bn2-relu-conv2 (3x3, the unit's
  stride) - bn3-relu-conv3 (1x1)``; the first unit of every stage adds a 1x1
  convolution ``sc`` of the first activation as its shortcut, the others add
  their input.

The SSD sources are the raw residual sums at the end of stage 3 (``_plus12``
in mxnet-ssd's graph, 1024 channels, stride 16) and stage 4 (``_plus15``,
2048 channels, stride 32), before any final BN or ReLU.

The blocks are named as mxnet-ssd's layers (``stage3_unit6.conv2`` holds what
mxnet-ssd calls ``stage3_unit6_conv2_weight``), so converted weights map one
to one.
"""
from __future__ import annotations

from typing import Optional, Sequence

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..presets import Preset
from .common import load_base, reject_options

__all__ = ["BN_EPS", "ResNetV2", "UNITS", "build"]

#: Epsilon of every BatchNorm in mxnet-ssd's ResNet.
BN_EPS = 2e-5
#: Residual units per stage of ResNet-50.
UNITS = (3, 4, 6, 3)
#: Output channels per stage (the bottleneck convs have a quarter of them).
_CHANNELS = (256, 512, 1024, 2048)
_SOURCES = {f"stage{i + 1}": c for i, c in enumerate(_CHANNELS)}


def _bn(in_channels: int) -> nn.BatchNorm:
    return nn.BatchNorm(epsilon=BN_EPS, in_channels=in_channels)


class BottleneckV2(HybridBlock):
    """A pre-activation bottleneck unit; with ``shortcut`` a 1x1 conv of the first
    activation (stride ``stride``) replaces the identity shortcut."""

    def __init__(self, channels: int, stride: int, in_channels: int, shortcut: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        mid = channels // 4
        self._shortcut = shortcut
        with self.name_scope():
            self.bn1 = _bn(in_channels)
            self.conv1 = nn.Conv2D(mid, 1, use_bias=False, in_channels=in_channels)
            self.bn2 = _bn(mid)
            self.conv2 = nn.Conv2D(mid, 3, strides=stride, padding=1, use_bias=False, in_channels=mid)
            self.bn3 = _bn(mid)
            self.conv3 = nn.Conv2D(channels, 1, use_bias=False, in_channels=mid)
            if shortcut:
                self.sc = nn.Conv2D(channels, 1, strides=stride, use_bias=False, in_channels=in_channels)

    def hybrid_forward(self, F, x):
        act1 = F.Activation(self.bn1(x), act_type="relu")
        out = self.conv1(act1)
        out = self.conv2(F.Activation(self.bn2(out), act_type="relu"))
        out = self.conv3(F.Activation(self.bn3(out), act_type="relu"))
        return out + (self.sc(act1) if self._shortcut else x)


class ResNetV2(HybridBlock):
    """mxnet-ssd's ResNet-50 v2, returning the outputs of the stages named in ``sources``.

    Parameters
    ----------
    sources : sequence of str
        Stages to return, in order, from ``stage1`` .. ``stage4`` (the SSD
        uses ``stage3`` and ``stage4``).

    Attributes
    ----------
    unit_names : tuple of str
        ``stage{s}_unit{u}``, the residual units in order (child blocks of
        those names).
    """

    def __init__(self, sources: Sequence[str] = ("stage3", "stage4"), **kwargs) -> None:
        super().__init__(**kwargs)
        unknown = [s for s in sources if s not in _SOURCES]
        if unknown:
            raise ValueError(f"unknown resnet50_v2 source layers {unknown}; valid: {sorted(_SOURCES)}")
        stages = [int(s[len("stage"):]) for s in sources]
        if not stages or any(b <= a for a, b in zip(stages, stages[1:])):
            raise ValueError(f"resnet50_v2 sources must be distinct and in network order, got {list(sources)}")
        self.source_channels = tuple(_SOURCES[s] for s in sources)
        self._source_units = tuple(f"stage{s}_unit{UNITS[s - 1]}" for s in stages)
        names = []
        with self.name_scope():
            self.bn_data = nn.BatchNorm(epsilon=BN_EPS, scale=False, center=True, in_channels=3)
            self.conv0 = nn.Conv2D(64, 7, strides=2, padding=3, use_bias=False, in_channels=3)
            self.bn0 = _bn(64)
            self.pool0 = nn.MaxPool2D(3, 2, 1)
            in_channels = 64
            for s in range(1, stages[-1] + 1):
                for u in range(1, UNITS[s - 1] + 1):
                    stride = 2 if s > 1 and u == 1 else 1
                    name = f"stage{s}_unit{u}"
                    setattr(self, name, BottleneckV2(_CHANNELS[s - 1], stride, in_channels, shortcut=u == 1))
                    names.append(name)
                    in_channels = _CHANNELS[s - 1]
        self.unit_names = tuple(names)

    def hybrid_forward(self, F, x):
        x = self.pool0(F.Activation(self.bn0(self.conv0(self.bn_data(x))), act_type="relu"))
        outs = []
        for name in self.unit_names:
            x = getattr(self, name)(x)
            if name in self._source_units:
                outs.append(x)
        return outs


def build(preset: Preset, pretrained_base: Optional[str] = None, ctx: Optional[mx.Context] = None,
          **kwargs) -> ResNetV2:
    """The ResNet-50 v2 backbone for an SSD preset.

    Parameters
    ----------
    preset : Preset
        Its ``sources`` name the returned stages (``stage3``, ``stage4``).
    pretrained_base : str, optional
        ``.params`` file saved from a :class:`ResNetV2` (``save_parameters``);
        random initialization otherwise.
    ctx : mx.Context, optional
        Where to load the pretrained weights.

    Raises
    ------
    ValueError
        Unknown options or source names, or a file that does not hold
        :class:`ResNetV2` weights.
    FileNotFoundError
        ``pretrained_base`` does not exist.
    """
    reject_options("resnet50_v2", kwargs)
    net = ResNetV2(preset.sources)
    if pretrained_base:
        load_base(net, pretrained_base, ctx)
    return net
