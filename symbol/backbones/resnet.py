"""ResNet-50 v1 (He et al. 2016), MXNet model zoo's ``resnet50_v1``, cut at stages 3 and 4.

GluonCV's ``ssd_512_resnet50_v1`` takes ``stage3_activation5`` and
``stage4_activation2``: the outputs (after the final ReLU) of the last
residual units of stage 3 (1024 channels, stride 16) and stage 4 (2048
channels, stride 32). GluonCV's ``resnet50_v1`` is the MXNet model zoo's,
block for block and name for name, so either's ImageNet ``.params`` load.
"""
from __future__ import annotations

from typing import Optional

import mxnet as mx

from ..presets import Preset
from .common import FeatureStages, reject_options, zoo_backbone

__all__ = ["build"]

# Source name -> (index in resnet50_v1's ``features`` just after it, channels).
# ``features`` is conv1, bn, relu, max pool, stage1 .. stage4, global pool.
_SOURCES = {"stage3": (7, 1024), "stage4": (8, 2048)}


def build(preset: Preset, pretrained_base: Optional[str] = None, ctx: Optional[mx.Context] = None,
          **kwargs) -> FeatureStages:
    """The ResNet-50 v1 backbone for an SSD preset.

    Parameters
    ----------
    preset : Preset
        Its ``sources`` name the returned maps (``stage3``, ``stage4``).
    pretrained_base : str, optional
        ``.params`` file of MXNet's ``vision.resnet50_v1`` ImageNet classifier
        (``save_parameters`` format); random initialization otherwise.
    ctx : mx.Context, optional
        Where to load the pretrained weights.

    Raises
    ------
    ValueError
        Unknown options or source names, or a file that does not hold
        ``resnet50_v1`` weights.
    FileNotFoundError
        ``pretrained_base`` does not exist.
    """
    reject_options("resnet50", kwargs)
    from mxnet.gluon.model_zoo.vision import resnet50_v1

    return zoo_backbone(resnet50_v1(), preset.sources, _SOURCES, "resnet50", pretrained_base, ctx)
