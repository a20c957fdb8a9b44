"""MobileNetV2 (Sandler et al. 2018), GluonCV's ``MobileNetV2``, as SSDLite's backbone.

The sources follow mmdetection's SSDLite (``out_indices=(4, 7)``): ``block13``
is the output of the last 96-channel inverted-residual block (stride 16) and
``conv_last`` the 1x1 1280-channel conv + BN + ReLU6 (stride 32). BatchNorm
uses epsilon 1e-3 and momentum 0.97, as mmdetection's SSDLite does.
"""
from __future__ import annotations

from typing import Optional

import mxnet as mx

from ..presets import Preset
from .common import FeatureStages, reject_options, zoo_backbone

__all__ = ["build"]

#: mmdetection's SSDLite BatchNorm: eps 1e-3, momentum 0.03 in PyTorch's convention.
BN_KWARGS = {"epsilon": 1e-3, "momentum": 0.97}


def _sources(multiplier: float) -> dict[str, tuple[int, int]]:
    """Source name -> (index in ``features`` just after it, channels).

    GluonCV's ``features`` is conv, BN, ReLU6 (0..2), the 17 bottlenecks (3..19;
    the 96-channel ones are the 11th to 13th), the last conv, BN, ReLU6
    (20..22) and a global pool.
    """
    last = int(1280 * multiplier) if multiplier > 1.0 else 1280  # GluonCV's rule
    return {"block13": (16, int(96 * multiplier)), "conv_last": (23, last)}


def build(preset: Preset, pretrained_base: Optional[str] = None, ctx: Optional[mx.Context] = None,
          multiplier: float = 1.0, **kwargs) -> FeatureStages:
    """The MobileNetV2 backbone for an SSD preset.

    Parameters
    ----------
    preset : Preset
        Its ``sources`` name the returned maps (``block13``, ``conv_last``).
    pretrained_base : str, optional
        ``.params`` file of GluonCV's ``mobilenet_v2_1_0`` (or the model of the
        same ``multiplier``) ImageNet classifier; random initialization otherwise.
    ctx : mx.Context, optional
        Where to load the pretrained weights.
    multiplier : float
        Width multiplier (1.0 is the standard network; the last conv keeps
        1280 channels below 1.0, as in GluonCV).

    Raises
    ------
    ValueError
        Unknown options or source names, a non-positive multiplier, or a file
        that does not hold matching MobileNetV2 weights.
    FileNotFoundError
        ``pretrained_base`` does not exist.
    """
    reject_options("ssdlite_mobilenetv2", kwargs)
    if not multiplier > 0:
        raise ValueError(f"multiplier must be positive, got {multiplier}")
    from gluoncv.model_zoo.mobilenet import MobileNetV2

    return zoo_backbone(MobileNetV2(multiplier, norm_kwargs=dict(BN_KWARGS)), preset.sources,
                        _sources(multiplier), "ssdlite_mobilenetv2", pretrained_base, ctx)
