"""SSD network definitions: presets, anchors, backbones and the detector block.

>>> from symbol import get_model
>>> net = get_model("vgg16_reduced", 300, num_classes=20)
"""
from .factory import get_model
from .presets import PRESETS, Preprocessing, Preset, find_preset, network_names
from .detection import VARIANCES, DetectionOutput
from .ssd import SSD

__all__ = ["get_model", "network_names", "find_preset", "PRESETS", "Preset", "Preprocessing", "SSD",
           "DetectionOutput", "VARIANCES"]
