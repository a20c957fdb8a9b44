"""VGG16 with fc6/fc7 reduced to (dilated) convolutions, as in Caffe SSD.

GluonCV's ``vgg16_atrous`` is the same network (its pools round up, its
pool5 is 3x3/1/1). It multiplies its input by a constant ``init_scale``,
which a model converted from GluonCV records as its preprocessing, and
L2-normalizes conv4_3 with epsilon 1e-5 where the detector here uses 1e-10:
a relative difference of ``1e-5 / (2 |x|^2)``, nothing at conv4_3's norms.
"""
from __future__ import annotations

from typing import Optional

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..layers import conv_block
from .common import load_base
from ..presets import Preset

__all__ = ["VGG16Reduced", "build"]

# (stage name, convs in the stage, channels)
_STAGES = (("conv1", 2, 64), ("conv2", 2, 128), ("conv3", 3, 256), ("conv4", 3, 512), ("conv5", 3, 512))


class VGG16Reduced(HybridBlock):
    """conv1_1 .. conv5_3 (3x3, ReLU), 2x2 max pools with Caffe's ceil rounding,
    pool5 3x3/1/1, fc6 3x3 dilation 6 (1024), fc7 1x1 (1024).

    Returns ``[conv4_3, fc7]`` (after their ReLUs); the L2 normalization of
    conv4_3 belongs to the detector.
    """

    source_channels = (512, 1024)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.stages = nn.HybridSequential()
            in_ch = 3
            for name, n, ch in _STAGES:
                stage = nn.HybridSequential(prefix=name + "_")
                with stage.name_scope():
                    for _ in range(n):
                        stage.add(conv_block(ch, 3, pad=1, in_channels=in_ch))
                        in_ch = ch
                self.stages.add(stage)
            self.pools = nn.HybridSequential()
            for _ in range(4):
                self.pools.add(nn.MaxPool2D(2, 2, ceil_mode=True))
            self.pools.add(nn.MaxPool2D(3, 1, 1))
            self.fc6 = conv_block(1024, 3, pad=6, dilation=6, in_channels=512)
            self.fc7 = conv_block(1024, 1, in_channels=1024)

    def hybrid_forward(self, F, x):
        conv4_3 = None
        for i, (stage, pool) in enumerate(zip(self.stages, self.pools)):
            x = stage(x)
            if i == 3:
                conv4_3 = x
            x = pool(x)
        return [conv4_3, self.fc7(self.fc6(x))]


def build(preset: Preset, pretrained_base: Optional[str] = None, ctx: Optional[mx.Context] = None,
          **kwargs) -> VGG16Reduced:
    """The VGG16-reduced backbone.

    ``pretrained_base`` is a ``.params`` file saved from a :class:`VGG16Reduced`
    (``save_parameters``), e.g. converted from Caffe's
    ``VGG_ILSVRC_16_layers_fc_reduced`` by ``tools/caffe_converter``.
    """
    if kwargs:
        raise ValueError(f"vgg16_reduced takes no backbone options, got {sorted(kwargs)}")
    net = VGG16Reduced()
    if pretrained_base:
        load_base(net, pretrained_base, ctx)
    return net
