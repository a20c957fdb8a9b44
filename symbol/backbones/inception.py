"""Inception-v3 (Szegedy et al. 2016), MXNet model zoo's ``inception_v3``, cut at mixed_7 and mixed_10.

The model zoo names the Inception blocks by type; in TensorFlow's (and
mxnet-ssd's) numbering ``A1..A3`` are mixed_0..mixed_2, ``B`` mixed_3,
``C1..C4`` mixed_4..mixed_7, ``D`` mixed_8 and ``E1, E2`` mixed_9, mixed_10.
At a 512 input mixed_7 is 30x30 (768 channels) and mixed_10 is 14x14 (2048
channels): the unpadded stem and reduction convolutions leave the maps a little
smaller than 1/16 and 1/32 of the input.
"""
from __future__ import annotations

from typing import Optional

import mxnet as mx

from ..presets import Preset
from .common import FeatureStages, reject_options, zoo_backbone

__all__ = ["build"]

# Source name -> (index in inception_v3's ``features`` just after it, channels).
# ``features`` is five stem convs with two max pools (0..6), A1..A3 (7..9), B (10),
# C1..C4 (11..14), D (15), E1, E2 (16, 17), then average pool and dropout.
_SOURCES = {"mixed_7": (15, 768), "mixed_10": (18, 2048)}


def build(preset: Preset, pretrained_base: Optional[str] = None, ctx: Optional[mx.Context] = None,
          **kwargs) -> FeatureStages:
    """The Inception-v3 backbone for an SSD preset.

    Parameters
    ----------
    preset : Preset
        Its ``sources`` name the returned maps (``mixed_7``, ``mixed_10``).
    pretrained_base : str, optional
        ``.params`` file of MXNet's ``vision.inception_v3`` ImageNet classifier
        (``save_parameters`` format); random initialization otherwise.
    ctx : mx.Context, optional
        Where to load the pretrained weights.

    Raises
    ------
    ValueError
        Unknown options or source names, or a file that does not hold
        ``inception_v3`` weights.
    FileNotFoundError
        ``pretrained_base`` does not exist.
    """
    reject_options("inceptionv3", kwargs)
    from mxnet.gluon.model_zoo.vision import inception_v3

    return zoo_backbone(inception_v3(), preset.sources, _SOURCES, "inceptionv3", pretrained_base, ctx)
