"""mmdetection's released SSDs: what each one is, and how a checkpoint says which it holds.

mmdetection (open-mmlab/mmdetection, ``configs/ssd``) released three COCO
SSDs. Each is the :class:`symbol.presets.Preset` of this project that
computes the same network (Caffe's VGG16 presets with mmdetection's prior
sizes and input; the preset table's SSDLite as it is):

- ``ssd300_coco`` (25.5 AP) and ``ssd512_coco`` (29.5 AP): ``SSDVGG`` (VGG16
  with fc6/fc7 as convolutions, Caffe's), ``SSDNeck`` (the L2 normalization
  of conv4_3, scale 20, and the extra layers) and ``SSDHead`` (3x3 class and
  box convolutions);
- ``ssdlite_mobilenetv2_coco`` (21.3 AP): ``MobileNetV2`` (outputs of the
  last 96-channel block and of the 1280-channel conv), a depthwise-separable
  ``SSDNeck`` and a depthwise-separable ``SSDHead``, BatchNorm eps 1e-3 and
  ReLU6 throughout.

Their priors are ``SSDAnchorGenerator``'s: per location the ``min_size``
square, the ``sqrt(min_size * max_size)`` square, then for each ratio ``r``
the ``1/r`` (wide) and ``r`` (tall) boxes (Caffe's order); centres at
``(i + 0.5) * stride`` pixels (``stride / 2`` as a float, also for SSDLite's
stride 107); not clipped. The sizes of SSD300/512 come from
``basesize_ratio_range`` by a rule that truncates them to integers (SSD512:
20, 51, 133, ... rather than Caffe's 35.84, 76.8, ...), so the sizes below are
the integers it gives. Input: RGB pixels minus the ImageNet mean (123.675,
116.28, 103.53); SSDLite also divides by (58.395, 57.12, 57.375).

The checkpoint's own config text (``meta['config']`` before mmdetection 3,
``meta['cfg']`` after) is read as plain text, never executed:
:func:`read_config_text` picks out the anchor, input and ``test_cfg``
settings it states, which :func:`config_conflicts` compares with the model.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from symbol.detection import DecodeConfig
from symbol.presets import PRESETS, Preprocessing, Preset

__all__ = ["ConfigFacts", "MODELS", "MmdetModel", "MMDET_RGB", "MMDET_RGB_STD", "TestCfg", "config_conflicts",
           "config_text", "read_config_text"]

#: mmdetection's SSD300/512 input: RGB, ImageNet mean, std 1.
MMDET_RGB = Preprocessing(mean=(123.675, 116.28, 103.53))
#: SSDLite's: RGB, ImageNet mean and std.
MMDET_RGB_STD = Preprocessing(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))


@dataclass(frozen=True)
class TestCfg:
    """mmdetection's ``test_cfg`` of a single-stage detector.

    Attributes
    ----------
    score_thr : float
        Candidates score strictly above it.
    nms_pre : int
        Candidates kept per level before NMS, the best (anchor, class) pairs.
    iou_threshold : float
        Class-aware NMS threshold.
    max_per_img : int
        Detections kept per image.
    min_bbox_size : float
        Boxes must be wider and taller than this (0: any box with area).
    """

    score_thr: float = 0.02
    nms_pre: int = 1000
    iou_threshold: float = 0.45
    max_per_img: int = 200
    min_bbox_size: float = 0.0

    def decoding(self) -> DecodeConfig:
        """The same settings as this project's decoding."""
        return DecodeConfig(nms_mode="mmdet", thresh=self.score_thr, nms_thresh=self.iou_threshold,
                            nms_topk=self.nms_pre, keep_topk=self.max_per_img)


@dataclass(frozen=True)
class MmdetModel:
    """One of mmdetection's SSDs.

    Attributes
    ----------
    name : str
        ``--model`` name (mmdetection's config name).
    title : str
        For messages.
    backbone : {'vgg16', 'mobilenetv2'}
        The backbone its parameter names show.
    network : str
        This project's network that computes it.
    preset : Preset
        Its layout in this project's terms (sizes and steps in pixels of
        ``preset.data_shape``).
    basesize_ratio_range : (float, float) or None
        The config's ``basesize_ratio_range`` the sizes derive from (None:
        the config gives ``min_sizes`` / ``max_sizes``).
    test_cfg : TestCfg
        The config's ``test_cfg``.
    """

    name: str
    title: str
    backbone: str
    network: str
    preset: Preset
    basesize_ratio_range: Optional[tuple[float, float]]
    test_cfg: TestCfg = TestCfg()

    @property
    def num_levels(self) -> int:
        return self.preset.num_sources

    @property
    def anchors_per_level(self) -> tuple[int, ...]:
        """Priors per location of each level: two squares plus two per ratio."""
        return tuple(2 + 2 * len(r) for r in self.preset.ratios)


MODELS: dict[str, MmdetModel] = {m.name: m for m in (
    # SSDVGG + SSDNeck are Caffe's SSD300 / SSD512 layer for layer (SSDNeck's out_channels,
    # level_strides, level_paddings and SSD512's last_kernel_size 4 give Caffe's extra
    # layers); mmdetection's own are the truncated prior sizes and the RGB input.
    MmdetModel(
        name="ssd300_coco", title="SSD300 (VGG16, COCO)", backbone="vgg16", network="vgg16_reduced",
        preset=dataclasses.replace(PRESETS["vgg16_reduced"][300], min_sizes=(21, 45, 99, 153, 207, 261),
                                   max_sizes=(45, 99, 153, 207, 261, 315), preprocess=MMDET_RGB),
        basesize_ratio_range=(0.15, 0.9)),
    MmdetModel(
        name="ssd512_coco", title="SSD512 (VGG16, COCO)", backbone="vgg16", network="vgg16_reduced",
        preset=dataclasses.replace(PRESETS["vgg16_reduced"][512], min_sizes=(20, 51, 133, 215, 296, 378, 460),
                                   max_sizes=(51, 133, 215, 296, 378, 460, 542), preprocess=MMDET_RGB),
        basesize_ratio_range=(0.1, 0.9)),
    # The preset table's SSDLite is mmdetection's: MobileNetV2's block13 and conv_last, the
    # depthwise-separable SSDNeck (out_channels 96, 1280, 512, 256, 256, 128), six priors
    # at every level, strides 16, 32, 64, 107, 160, 320, ImageNet mean and std.
    MmdetModel(
        name="ssdlite_mobilenetv2_coco", title="SSDLite MobileNetV2 (COCO)", backbone="mobilenetv2",
        network="ssdlite_mobilenetv2", preset=PRESETS["ssdlite_mobilenetv2"][320], basesize_ratio_range=None),
)}


# ---------------------------------------------------------------------- config text
@dataclass(frozen=True)
class ConfigFacts:
    """What a checkpoint's config text states (None: not stated, or not readable as plain values).

    Attributes
    ----------
    input_size : int or None
        The anchor generator's ``input_size``.
    basesize_ratio_range : (float, float) or None
    min_sizes, max_sizes : tuple of float or None
    strides : tuple of int or None
    mean, std : three floats or None
        The input normalization.
    test_cfg : TestCfg or None
        With the fields the text does not state at their defaults; None
        without any.
    nms_type : str or None
        ``test_cfg.nms.type``.
    """

    input_size: Optional[int] = None
    basesize_ratio_range: Optional[tuple[float, ...]] = None
    min_sizes: Optional[tuple[float, ...]] = None
    max_sizes: Optional[tuple[float, ...]] = None
    strides: Optional[tuple[float, ...]] = None
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None
    test_cfg: Optional[TestCfg] = None
    nms_type: Optional[str] = None


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _value(text: str, key: str, pattern: str) -> Optional[str]:
    """The first ``key=VALUE`` or ``'key': VALUE`` in ``text`` (blanks removed, line ends kept)."""
    m = re.search(rf"(?:\b{key}=|['\"]{key}['\"]:)({pattern})", text)
    return m.group(1) if m else None


def _numbers(text: str, key: str) -> Optional[tuple[float, ...]]:
    """A flat list or tuple of numbers (``[48,100,]``, ``(0.15,0.9)``, one per line or not)."""
    raw = _value(text, key, rf"[\[(]\n*(?:{_NUMBER},?\n*)+[\])]")
    return None if raw is None else tuple(float(v) for v in re.findall(_NUMBER, raw))


def read_config_text(text: str) -> ConfigFacts:
    """The settings a checkpoint's config text states, read as plain text (mmdetection 2's
    ``Config.pretty_text`` and mmengine's alike: ``key=value`` pairs, any layout).

    Only the anchor generator, the input normalization and ``test_cfg`` are
    read; a setting written as an expression (a variable, a computation) is
    left unread (None), never evaluated.
    """
    flat = re.sub(r"[^\S\n]+", "", text)  # line ends stay: they end a top-level ``key = value``
    size = _value(flat, "input_size", r"\d+(?=[,)}\n]|$)")
    test = {}
    for field, key, kind in (("score_thr", "score_thr", float), ("nms_pre", "nms_pre", int),
                             ("max_per_img", "max_per_img", int), ("min_bbox_size", "min_bbox_size", float),
                             ("iou_threshold", "iou_threshold", float), ("iou_threshold", "iou_thr", float)):
        raw = _value(flat, key, rf"{_NUMBER}(?=[,)}}\n]|$)")
        if raw is not None and field not in test:
            test[field] = kind(float(raw))
    nms = re.search(r"\bnms=dict\(([^()]*)\)", flat) or re.search(r"['\"]nms['\"]:\{([^{}]*)\}", flat)
    nms_type = _value(nms.group(1), "type", r"['\"][\w.]+['\"]") if nms else None
    return ConfigFacts(
        input_size=None if size is None else int(size),
        basesize_ratio_range=_numbers(flat, "basesize_ratio_range"),
        min_sizes=_numbers(flat, "min_sizes"), max_sizes=_numbers(flat, "max_sizes"),
        strides=_numbers(flat, "strides"), mean=_numbers(flat, "mean"), std=_numbers(flat, "std"),
        test_cfg=TestCfg(**test) if test else None,
        nms_type=None if nms_type is None else nms_type.strip("'\""))


def config_conflicts(facts: ConfigFacts, model: MmdetModel) -> list[str]:
    """The settings in which ``facts`` (a checkpoint's config text) contradicts ``model``,
    each as ``'name (config VALUE, MODEL's VALUE)'``; empty when they agree."""
    preset = model.preset
    pre = preset.preprocess
    mine: dict[str, Any] = {
        "input_size": preset.data_shape,
        "basesize_ratio_range": model.basesize_ratio_range,
        "min_sizes": None if model.basesize_ratio_range else tuple(float(s) for s in preset.min_sizes),
        "max_sizes": None if model.basesize_ratio_range else tuple(float(s) for s in preset.max_sizes),
        "strides": tuple(float(s) for s in preset.steps),
        "mean": pre.mean, "std": pre.std,
    }
    out = []
    for name, want in mine.items():
        have = getattr(facts, name)
        if have is None:
            continue
        if want is None or not _close(have, want):
            out.append(f"{name} (config {_show(have)}, {model.name}'s {_show(want)})")
    return out


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(abs(float(x) - float(y)) <= 1e-6 for x, y in zip(a, b)))
    return abs(float(a) - float(b)) <= 1e-6


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_text(meta: Mapping[str, Any]) -> Optional[str]:
    """The config text of a checkpoint's ``meta``: ``cfg`` (mmengine) or ``config`` (mmdetection 2)."""
    for key in ("cfg", "config"):
        text = meta.get(key)
        if isinstance(text, str) and text.strip():
            return text
    return None
