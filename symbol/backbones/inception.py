"""Inception-v3 (Szegedy et al. 2016) exactly as mxnet-ssd's Inception-v3 SSD512 used it.

mxnet-ssd's Inception-v3 (the "Inception-7" of MXNet's early model zoo) is
not the Gluon model zoo's ``inception_v3``:

- every convolution (no bias) is followed by a BatchNorm with gamma fixed at
  1 (only beta is learned) and MXNet's default epsilon 1e-3, then a ReLU;
- the pool branch of the last block (mixed_10) is a 3x3 MAX pool, where the
  other blocks average (padding counted, as MXNet does by default).

The blocks are named as mxnet-ssd's layers: the stem convolutions ``conv``,
``conv_1`` .. ``conv_4``, the Inception blocks ``mixed``, ``mixed_1`` ..
``mixed_10`` (TensorFlow's mixed_0 .. mixed_10), and inside a block its
convolutions by their tower (``conv``, ``tower_conv_1``,
``tower_1_mixed_conv``, ...). So ``mixed_7.tower_1_conv_2`` holds what
mxnet-ssd calls ``mixed_7_tower_1_conv_2_conv2d_weight`` and
``mixed_7_tower_1_conv_2_batchnorm_*``.

The SSD sources are the outputs of mixed_7 (768 channels) and mixed_10 (2048
channels). At a 512 input they are 30x30 and 14x14: the unpadded stem and
reduction convolutions leave the maps a little smaller than 1/16 and 1/32 of
the input.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import mxnet as mx
from mxnet.gluon import HybridBlock

from ..layers import conv_block
from ..presets import Preset
from .common import load_base, reject_options

__all__ = ["BN_EPS", "InceptionV3", "build"]

#: MXNet's default BatchNorm epsilon, which mxnet-ssd's Inception-v3 kept.
BN_EPS = 1e-3

Size = Union[int, tuple[int, int]]
# A tower is a sequence of steps (tuples), applied in order:
#   ("conv", name, channels, kernel, stride, pad)  conv + fixed-gamma BN + ReLU
#   ("pool", type, kernel, stride, pad)            max or avg pooling
#   ("split", conv_a, conv_b)                      two convs of the same input, both outputs kept


def _c(name: str, channels: int, kernel: Size = 1, stride: int = 1, pad: Size = 0) -> tuple:
    return ("conv", name, channels, kernel, stride, pad)


def _pool(kind: str, stride: int = 1, pad: int = 1) -> tuple:
    return ("pool", kind, 3, stride, pad)


def _block_a(proj: int) -> tuple:
    return ((_c("conv", 64),),
            (_c("tower_conv", 48), _c("tower_conv_1", 64, 5, pad=2)),
            (_c("tower_1_conv", 64), _c("tower_1_conv_1", 96, 3, pad=1), _c("tower_1_conv_2", 96, 3, pad=1)),
            (_pool("avg"), _c("tower_2_conv", proj)))


def _block_c(c7: int) -> tuple:
    return ((_c("conv", 192),),
            (_c("tower_conv", c7), _c("tower_conv_1", c7, (1, 7), pad=(0, 3)),
             _c("tower_conv_2", 192, (7, 1), pad=(3, 0))),
            (_c("tower_1_conv", c7), _c("tower_1_conv_1", c7, (7, 1), pad=(3, 0)),
             _c("tower_1_conv_2", c7, (1, 7), pad=(0, 3)), _c("tower_1_conv_3", c7, (7, 1), pad=(3, 0)),
             _c("tower_1_conv_4", 192, (1, 7), pad=(0, 3))),
            (_pool("avg"), _c("tower_2_conv", 192)))


def _block_e(pool: str) -> tuple:
    return ((_c("conv", 320),),
            (_c("tower_conv", 384), ("split", _c("tower_mixed_conv", 384, (1, 3), pad=(0, 1)),
                                     _c("tower_mixed_conv_1", 384, (3, 1), pad=(1, 0)))),
            (_c("tower_1_conv", 448), _c("tower_1_conv_1", 384, 3, pad=1),
             ("split", _c("tower_1_mixed_conv", 384, (1, 3), pad=(0, 1)),
              _c("tower_1_mixed_conv_1", 384, (3, 1), pad=(1, 0)))),
            (_pool(pool), _c("tower_2_conv", 192)))


#: The stem: convs and max pools (3x3, stride 2, no padding).
_STEM = (_c("conv", 32, 3, 2), _c("conv_1", 32, 3), _c("conv_2", 64, 3, pad=1), _pool("max", 2, 0),
         _c("conv_3", 80), _c("conv_4", 192, 3), _pool("max", 2, 0))
#: (name, towers, output channels) of the Inception blocks in order.
_BLOCKS = (
    ("mixed", _block_a(32), 256),
    ("mixed_1", _block_a(64), 288),
    ("mixed_2", _block_a(64), 288),
    ("mixed_3", ((_c("conv", 384, 3, 2),),
                 (_c("tower_conv", 64), _c("tower_conv_1", 96, 3, pad=1), _c("tower_conv_2", 96, 3, 2)),
                 (_pool("max", 2, 0),)), 768),
    ("mixed_4", _block_c(128), 768),
    ("mixed_5", _block_c(160), 768),
    ("mixed_6", _block_c(160), 768),
    ("mixed_7", _block_c(192), 768),
    ("mixed_8", ((_c("tower_conv", 192), _c("tower_conv_1", 320, 3, 2)),
                 (_c("tower_1_conv", 192), _c("tower_1_conv_1", 192, (1, 7), pad=(0, 3)),
                  _c("tower_1_conv_2", 192, (7, 1), pad=(3, 0)), _c("tower_1_conv_3", 192, 3, 2)),
                 (_pool("max", 2, 0),)), 1280),
    ("mixed_9", _block_e("avg"), 2048),
    ("mixed_10", _block_e("max"), 2048),
)
_CHANNELS = {name: channels for name, _, channels in _BLOCKS}


def _unit(step: tuple) -> HybridBlock:
    _, _, channels, kernel, stride, pad = step
    return conv_block(channels, kernel, stride, pad, batch_norm=True, bn_eps=BN_EPS, bn_scale=False)


def _pooling(F, x, step: tuple):
    _, kind, kernel, stride, pad = step
    return F.Pooling(x, kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad), pool_type=kind)


class _Steps(HybridBlock):
    """Runs step sequences (see the tables above); conv units are child blocks named
    after the steps."""

    def _add_units(self, steps: Sequence[tuple]) -> None:
        for step in steps:
            for conv in (step[1:] if step[0] == "split" else (step,) if step[0] == "conv" else ()):
                setattr(self, conv[1], _unit(conv))

    def _run(self, F, x, steps: Sequence[tuple]) -> list:
        """The outputs of the steps applied in order to ``x`` (two for a final split)."""
        for step in steps:
            if step[0] == "pool":
                x = _pooling(F, x, step)
            elif step[0] == "conv":
                x = getattr(self, step[1])(x)
            else:
                return [getattr(self, conv[1])(x) for conv in step[1:]]
        return [x]


class Mixed(_Steps):
    """One Inception block: its towers run on the same input, outputs concatenated."""

    def __init__(self, towers: Sequence[Sequence[tuple]], **kwargs) -> None:
        super().__init__(**kwargs)
        self._towers = tuple(towers)
        with self.name_scope():
            for tower in self._towers:
                self._add_units(tower)

    def hybrid_forward(self, F, x):
        outs = [y for tower in self._towers for y in self._run(F, x, tower)]
        return F.concat(*outs, dim=1)


class InceptionV3(_Steps):
    """mxnet-ssd's Inception-v3, returning the outputs of the blocks named in ``sources``.

    Parameters
    ----------
    sources : sequence of str
        Blocks to return, in network order, among ``mixed``, ``mixed_1`` ..
        ``mixed_10`` (the SSD512 uses ``mixed_7`` and ``mixed_10``).
    """

    def __init__(self, sources: Sequence[str] = ("mixed_7", "mixed_10"), **kwargs) -> None:
        super().__init__(**kwargs)
        order = [name for name, _, _ in _BLOCKS]
        unknown = [s for s in sources if s not in _CHANNELS]
        if unknown:
            raise ValueError(f"unknown inceptionv3 source layers {unknown}; valid: {order}")
        index = [order.index(s) for s in sources]
        if not index or any(b <= a for a, b in zip(index, index[1:])):
            raise ValueError(f"inceptionv3 sources must be distinct and in network order, got {list(sources)}")
        self.source_channels = tuple(_CHANNELS[s] for s in sources)
        self._sources = tuple(sources)
        self.block_names = tuple(order[:index[-1] + 1])
        with self.name_scope():
            self._add_units(_STEM)
            for name, towers, _ in _BLOCKS[:index[-1] + 1]:
                setattr(self, name, Mixed(towers))

    def hybrid_forward(self, F, x):
        (x,) = self._run(F, x, _STEM)
        outs = []
        for name in self.block_names:
            x = getattr(self, name)(x)
            if name in self._sources:
                outs.append(x)
        return outs


def build(preset: Preset, pretrained_base: Optional[str] = None, ctx: Optional[mx.Context] = None,
          **kwargs) -> InceptionV3:
    """The Inception-v3 backbone for an SSD preset.

    Parameters
    ----------
    preset : Preset
        Its ``sources`` name the returned maps (``mixed_7``, ``mixed_10``).
    pretrained_base : str, optional
        ``.params`` file saved from an :class:`InceptionV3`
        (``save_parameters``); random initialization otherwise.
    ctx : mx.Context, optional
        Where to load the pretrained weights.

    Raises
    ------
    ValueError
        Unknown options or source names, or a file that does not hold
        :class:`InceptionV3` weights.
    FileNotFoundError
        ``pretrained_base`` does not exist.
    """
    reject_options("inceptionv3", kwargs)
    net = InceptionV3(preset.sources)
    if pretrained_base:
        load_base(net, pretrained_base, ctx)
    return net
