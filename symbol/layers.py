"""Small graph blocks shared by the SSD networks."""
from __future__ import annotations

from typing import Optional, Union

from mxnet import init
from mxnet.gluon import HybridBlock, nn

from .presets import Preprocessing

__all__ = ["Identity", "Preprocess", "L2Normalization", "ReLU6", "conv_block", "separable_conv"]


class Preprocess(HybridBlock):
    """In-graph input normalization.

    Input: (B, 3, H, W) RGB pixel values in 0..255. Output: the same shape,
    channels reversed when ``spec.bgr``, then ``(x - mean) / std`` per channel.
    The constants live in the graph's attributes, not in the parameters.
    """

    def __init__(self, spec: Preprocessing, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def hybrid_forward(self, F, x):
        channels = list(F.split(x, num_outputs=3, axis=1))
        if self.spec.bgr:  # reordering the split channels is cheaper than F.reverse
            channels.reverse()
        out = []
        for c, m, s in zip(channels, self.spec.mean, self.spec.std):
            c = c - m if m else c
            out.append(c * (1.0 / s) if s != 1.0 else c)
        return F.concat(*out, dim=1)


class L2Normalization(HybridBlock):
    """Caffe's ``Normalize`` (across_spatial false, channel_shared false).

    Each location's channel vector is scaled to unit L2 norm, then multiplied by
    a learnable per-channel scale initialised to ``initial_scale``.
    """

    def __init__(self, channels: int, initial_scale: float, eps: float = 1e-10, **kwargs) -> None:
        super().__init__(**kwargs)
        self._eps = eps
        with self.name_scope():
            self.scale = self.params.get("scale", shape=(1, channels, 1, 1),
                                         init=init.Constant(initial_scale))

    def hybrid_forward(self, F, x, scale):
        return F.broadcast_mul(F.L2Normalization(x, mode="channel", eps=self._eps), scale)


class Identity(HybridBlock):
    """Returns its input (a placeholder where a source has no normalization)."""

    def hybrid_forward(self, F, x):
        return x


class ReLU6(HybridBlock):
    """min(max(x, 0), 6)."""

    def hybrid_forward(self, F, x):
        return F.clip(x, 0, 6)


def _activation(act: Optional[str]) -> Optional[HybridBlock]:
    if act is None:
        return None
    if act == "relu6":
        return ReLU6()
    return nn.Activation(act)


def conv_block(channels: int, kernel: Union[int, tuple[int, int]], stride: int = 1,
               pad: Union[int, tuple[int, int]] = 0, *, groups: int = 1, in_channels: int = 0,
               dilation: int = 1, batch_norm: bool = False, bn_eps: float = 1e-5, bn_momentum: float = 0.9,
               bn_scale: bool = True, act: Optional[str] = "relu",
               prefix: Optional[str] = None) -> nn.HybridSequential:
    """Conv (with bias unless followed by BN), optional BN, optional activation.

    ``bn_scale=False`` fixes the BN's gamma at 1 (MXNet's ``fix_gamma``), as in
    the Inception-v3 mxnet-ssd trained. ``kernel`` and ``pad`` may be
    ``(height, width)`` pairs.
    """
    block = nn.HybridSequential(prefix=prefix)
    with block.name_scope():
        block.add(nn.Conv2D(channels, kernel, strides=stride, padding=pad, dilation=dilation,
                            groups=groups, in_channels=in_channels, use_bias=not batch_norm))
        if batch_norm:
            block.add(nn.BatchNorm(epsilon=bn_eps, momentum=bn_momentum, scale=bn_scale))
        a = _activation(act)
        if a is not None:
            block.add(a)
    return block


def separable_conv(in_channels: int, out_channels: int, stride: int = 1, *, bn_eps: float = 1e-3,
                   bn_momentum: float = 0.9, act: Optional[str] = "relu6", pointwise_act: bool = True,
                   prefix: Optional[str] = None) -> nn.HybridSequential:
    """Depthwise 3x3 conv + BN + act, then a pointwise 1x1 conv (+ BN + act).

    With ``pointwise_act=False`` the pointwise conv is a plain biased conv (a
    prediction head, as in SSDLite).
    """
    block = nn.HybridSequential(prefix=prefix)
    with block.name_scope():
        bn = dict(batch_norm=True, bn_eps=bn_eps, bn_momentum=bn_momentum, act=act)
        block.add(conv_block(in_channels, 3, stride, 1, groups=in_channels, in_channels=in_channels, **bn))
        if pointwise_act:
            block.add(conv_block(out_channels, 1, in_channels=in_channels, **bn))
        else:
            block.add(nn.Conv2D(out_channels, 1, in_channels=in_channels))
    return block
