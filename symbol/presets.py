"""The preset table: every supported SSD's layout and anchors, spelled out once.

Each entry describes one tuned configuration (network name and input size):
which backbone layers feed the detector, the extra layers appended after the
backbone, the prior (anchor) boxes of every source layer, the L2
normalization, and the input preprocessing. Everything else (anchors per
location, head widths, the MultiBoxPrior arguments) is derived from it in
:mod:`symbol.anchors`, never stored a second time.

Sizes and steps are in pixels of the preset's ``data_shape``, as in the Caffe
prototxts, so the entries can be checked against them line by line.
"""
from __future__ import annotations

import dataclasses
import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Optional

__all__ = ["ExtraLayer", "MXNET_SSD", "Preprocessing", "Preset", "PRESETS", "find_preset", "mxnet_ssd_sizes",
           "network_names"]


@dataclass(frozen=True)
class ExtraLayer:
    """One extra feature layer: a 1x1 conv to ``mid`` channels, then a ``kernel``
    conv to ``out`` channels with the given stride and padding."""

    mid: int
    out: int
    kernel: int = 3
    stride: int = 2
    pad: int = 1

    def scaled(self, multiplier: float, min_channels: int = 16) -> "ExtraLayer":
        """This layer with both widths times ``multiplier`` (at least ``min_channels``,
        the TF Object Detection API's rule for thin SSD MobileNets)."""
        if multiplier == 1.0:
            return self
        width = lambda c: max(min_channels, int(c * multiplier))  # noqa: E731
        return ExtraLayer(width(self.mid), width(self.out), self.kernel, self.stride, self.pad)


@dataclass(frozen=True)
class Preprocessing:
    """Input normalization applied inside the graph.

    The network input is RGB pixel values in 0..255 (NCHW). When ``bgr`` is true
    the channels are reversed first (Caffe models); then each channel becomes
    ``(x - mean[c]) / std[c]`` with mean and std in the (possibly reversed)
    channel order.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bgr: bool = False

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "bgr": self.bgr}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(mean=tuple(d["mean"]), std=tuple(d["std"]), bgr=bool(d["bgr"]))


CAFFE_VGG = Preprocessing(mean=(104.0, 117.0, 123.0), bgr=True)
CAFFE_MOBILENET = Preprocessing(mean=(127.5,) * 3, std=(1.0 / 0.007843,) * 3, bgr=True)
IMAGENET = Preprocessing(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
#: mxnet-ssd fed every network RGB pixels minus (123, 117, 104), unscaled.
MXNET_SSD = Preprocessing(mean=(123.0, 117.0, 104.0))


@dataclass(frozen=True)
class Preset:
    """One tuned SSD configuration.

    Attributes
    ----------
    data_shape : int
        Input side length the sizes and steps below are given for.
    sources : tuple of str
        Backbone layers that feed detection heads (names follow the reference
        implementation; the backbone builder maps them to its blocks).
    extras : tuple of ExtraLayer
        Layers appended after the last source, each one a further source.
    ratios : tuple of tuple of float
        Aspect ratios besides 1 per source; each is also used flipped (1/r).
    steps : tuple of float or None
        Prior centre spacing in pixels; None means image size / feature size.
    normalization : tuple of float or None
        Initial scale of a learnable L2 normalization per source, None for none.
    preprocess : Preprocessing
        In-graph input normalization matching the backbone's weights.
    min_sizes, max_sizes : tuple of float, optional
        Prior sizes in pixels per source (Caffe's ``min_size`` / ``max_size``);
        ``max_size`` None means no ``sqrt(min * max)`` prior on that source.
    sizes : tuple of tuple of float, optional
        The priors' sizes per source as fractions of the input, given directly
        (mxnet-ssd's lists such as ``(0.1, 0.141)``): the first is the side of
        the ratio-1 prior and of the ratio priors, each further one adds a
        ratio-1 prior. Exactly one of ``sizes`` and ``min_sizes``/``max_sizes``
        is given.
    batch_norm : bool
        Whether the extra layers (and backbones that allow the choice) use BN.
    head_kernel : int
        Kernel size of the class and box prediction convolutions.
    offset : float
        Prior centre offset within a cell, in cells.
    """

    data_shape: int
    sources: tuple[str, ...]
    extras: tuple[ExtraLayer, ...]
    ratios: tuple[tuple[float, ...], ...]
    steps: Optional[tuple[float, ...]]
    normalization: tuple[Optional[float], ...]
    preprocess: Preprocessing
    min_sizes: Optional[tuple[float, ...]] = None
    max_sizes: Optional[tuple[Optional[float], ...]] = None
    sizes: Optional[tuple[tuple[float, ...], ...]] = None
    batch_norm: bool = False
    head_kernel: int = 3
    offset: float = 0.5

    def __post_init__(self) -> None:
        n = len(self.sources) + len(self.extras)
        if (self.sizes is None) == (self.min_sizes is None or self.max_sizes is None):
            raise ValueError("a preset gives either sizes or both min_sizes and max_sizes")
        fields = ["ratios", "normalization"] + (["sizes"] if self.sizes is not None
                                                 else ["min_sizes", "max_sizes"])
        for field in fields:
            if len(getattr(self, field)) != n:
                raise ValueError(f"preset field {field} has {len(getattr(self, field))} entries, "
                                 f"expected {n} (one per source layer)")
        if self.sizes is not None and any(len(s) == 0 or min(s) <= 0 for s in self.sizes):
            raise ValueError(f"preset sizes must be non-empty lists of positive fractions, got {self.sizes}")
        if self.steps is not None and len(self.steps) != n:
            raise ValueError(f"preset field steps has {len(self.steps)} entries, expected {n}")

    @property
    def num_sources(self) -> int:
        return len(self.sources) + len(self.extras)

    def to_dict(self) -> dict:
        """A JSON-serializable dict (a checkpoint's ``layout``); inverse of :meth:`from_dict`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["extras"] = [dataclasses.asdict(e) for e in self.extras]
        d["preprocess"] = self.preprocess.to_dict()
        return json.loads(json.dumps(d))  # tuples -> lists

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preset":
        """Rebuild a preset written by :meth:`to_dict`.

        Raises
        ------
        ValueError
            Missing, unknown or malformed fields (the message names them).
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"a preset layout must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown preset layout fields {unknown}")

        def nested(value, depth):
            if value is None:
                return None
            if depth == 0:
                return value
            return tuple(nested(v, depth - 1) for v in value)
        try:
            kwargs = dict(d)
            kwargs["sources"] = tuple(str(s) for s in d["sources"])
            kwargs["extras"] = tuple(ExtraLayer(**dict(e)) for e in d.get("extras", ()))
            for name, depth in (("ratios", 2), ("steps", 1), ("normalization", 1), ("min_sizes", 1),
                                ("max_sizes", 1), ("sizes", 2)):
                if name in kwargs:
                    kwargs[name] = nested(kwargs[name], depth)
            kwargs["preprocess"] = Preprocessing.from_dict(dict(d["preprocess"]))
            return cls(**kwargs)
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed preset layout ({type(err).__name__}: {err})") from None


def _float32(x: float) -> float:
    """The shortest decimal that is ``x`` in single precision (what MXNet's
    operators, which parse their float arguments as float32, see of it)."""
    single = struct.unpack("f", struct.pack("f", x))[0]
    for digits in range(1, 10):
        value = float(f"{single:.{digits}g}")
        if struct.unpack("f", struct.pack("f", value))[0] == single:
            return value
    return single


def mxnet_ssd_sizes(min_scale: float, max_scale: float, n: int) -> tuple[tuple[float, float], ...]:
    """mxnet-ssd's ``get_scales``: per-layer prior sizes as fractions of the input.

    Caffe SSD's rule in fractions: the first layer gets half the minimum
    scale, the others are spread evenly in whole percents from ``min_scale``
    to ``max_scale``; each layer's pair is ``(min, sqrt(min * max))`` with the
    square root rounded to single precision as mxnet-ssd computed it
    (``np.single``).
    """
    lo, hi = int(min_scale * 100), int(max_scale * 100)
    step = (hi - lo) // (n - 2)
    mins = [int(100 * min_scale / 2.0) / 100.0] + [r / 100.0 for r in range(lo, hi + 1, step)]
    maxs = [min_scale] + [(r + step) / 100.0 for r in range(lo, hi + 1, step)]
    return tuple((lo_, _float32(math.sqrt(lo_ * hi_))) for lo_, hi_ in zip(mins[:n], maxs[:n]))


_R2 = (2.0,)
_R23 = (2.0, 3.0)
# mxnet-ssd's own extra layers: the 1x1 convs have max(128, out // 2) filters.
_MXSSD_OWN_EXTRAS = (ExtraLayer(256, 512), ExtraLayer(128, 256), ExtraLayer(128, 256), ExtraLayer(128, 128))

# GluonCV's FeatureExpander (filters 512, 512, 256, 256): each 1x1 transition is as wide
# as the 3x3 stride-2 conv after it (min_depth 128, reduce_ratio 1).
_GLUONCV_EXTRAS = (ExtraLayer(512, 512), ExtraLayer(512, 512), ExtraLayer(256, 256), ExtraLayer(256, 256))
# GluonCV's SSD512 sizes for ResNet-50 (VOC) and MobileNet 1.0: its list
# (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492) read as (min, max) pairs.
_GLUONCV_512_MIN = (51.2, 102.4, 189.4, 276.4, 363.52, 450.6)
_GLUONCV_512_MAX = (102.4, 189.4, 276.4, 363.52, 450.6, 492.0)

PRESETS: dict[str, dict[int, Preset]] = {
    # Caffe SSD300 / SSD512 (weiliu89/caffe, VOC0712), VGG16 with fc6/fc7 reduced.
    "vgg16_reduced": {
        300: Preset(
            data_shape=300,
            sources=("conv4_3", "fc7"),
            extras=(ExtraLayer(256, 512), ExtraLayer(128, 256),
                    ExtraLayer(128, 256, stride=1, pad=0), ExtraLayer(128, 256, stride=1, pad=0)),
            min_sizes=(30, 60, 111, 162, 213, 264),
            max_sizes=(60, 111, 162, 213, 264, 315),
            ratios=(_R2, _R23, _R23, _R23, _R2, _R2),
            steps=(8, 16, 32, 64, 100, 300),
            normalization=(20.0, None, None, None, None, None),
            preprocess=CAFFE_VGG,
        ),
        512: Preset(
            data_shape=512,
            sources=("conv4_3", "fc7"),
            extras=(ExtraLayer(256, 512), ExtraLayer(128, 256), ExtraLayer(128, 256),
                    ExtraLayer(128, 256), ExtraLayer(128, 256, kernel=4, stride=1, pad=1)),
            # Caffe's PriorBox reads these as integers (76.8 -> 76, ...).
            min_sizes=(35, 76, 153, 230, 307, 384, 460),
            max_sizes=(76, 153, 230, 307, 384, 460, 537),
            ratios=(_R2, _R23, _R23, _R23, _R23, _R2, _R2),
            steps=(8, 16, 32, 64, 128, 256, 512),
            normalization=(20.0, None, None, None, None, None, None),
            preprocess=CAFFE_VGG,
        ),
    },
    # GluonCV's ssd_512_resnet50_v1 (VOC): ResNet-50 v1 (MXNet model zoo), the ends of
    # stage 3 (stage3_activation5, stride 16) and stage 4 (stage4_activation2, stride
    # 32), then GluonCV's FeatureExpander: four extra layers of a 1x1 transition conv
    # and a 3x3 stride-2 conv, as wide as each other (512, 512, 256, 256), with BN.
    "resnet50": {
        512: Preset(
            data_shape=512,
            sources=("stage3", "stage4"),
            extras=_GLUONCV_EXTRAS,
            min_sizes=_GLUONCV_512_MIN,
            max_sizes=_GLUONCV_512_MAX,
            ratios=(_R2, _R23, _R23, _R23, _R2, _R2),
            steps=(16, 32, 64, 128, 256, 512),
            normalization=(None,) * 6,
            preprocess=IMAGENET,
            batch_norm=True,
        ),
    },
    # mxnet-ssd's ResNet-50 SSD512 (released VOC model): pre-activation ResNet-50,
    # raw residual sums at the end of stage 3 (_plus12) and stage 4 (_plus15).
    "resnet50_v2": {
        512: Preset(
            data_shape=512,
            sources=("stage3", "stage4"),
            extras=_MXSSD_OWN_EXTRAS,
            sizes=mxnet_ssd_sizes(0.2, 0.9, 6),
            ratios=(_R2, _R23, _R23, _R23, _R2, _R2),
            steps=None,
            normalization=(None,) * 6,
            preprocess=MXNET_SSD,
        ),
    },
    # mxnet-ssd's Inception-v3 SSD512 (released VOC model): outputs of mixed_7 and mixed_10.
    "inceptionv3": {
        512: Preset(
            data_shape=512,
            sources=("mixed_7", "mixed_10"),
            extras=_MXSSD_OWN_EXTRAS,
            sizes=mxnet_ssd_sizes(0.2, 0.9, 6),
            ratios=(_R2, _R23, _R23, _R23, _R2, _R2),
            steps=None,
            normalization=(None,) * 6,
            preprocess=MXNET_SSD,
        ),
    },
    "mobilenet": {
        # chuanqi305/MobileNet-SSD (Caffe, BN folded into the convolutions).
        300: Preset(
            data_shape=300,
            sources=("conv11", "conv13"),
            extras=(ExtraLayer(256, 512), ExtraLayer(128, 256), ExtraLayer(128, 256), ExtraLayer(64, 128)),
            min_sizes=(60, 105, 150, 195, 240, 285),
            max_sizes=(None, 150, 195, 240, 285, 300),
            ratios=(_R2, _R23, _R23, _R23, _R23, _R23),
            steps=None,
            normalization=(None,) * 6,
            preprocess=CAFFE_MOBILENET,
            batch_norm=False,
            head_kernel=1,
        ),
        # GluonCV's ssd_512_mobilenet1.0 (VOC and COCO): MobileNet 1.0 with BN, the
        # outputs of conv11 and conv13 (relu22 and relu26, strides 16 and 32), then
        # GluonCV's FeatureExpander extras, priors and steps as for ResNet-50.
        512: Preset(
            data_shape=512,
            sources=("conv11", "conv13"),
            extras=_GLUONCV_EXTRAS,
            min_sizes=_GLUONCV_512_MIN,
            max_sizes=_GLUONCV_512_MAX,
            ratios=(_R2, _R23, _R23, _R23, _R2, _R2),
            steps=(16, 32, 64, 128, 256, 512),
            normalization=(None,) * 6,
            preprocess=IMAGENET,
            batch_norm=True,
        ),
    },
    # mmdetection's SSDLite: MobileNetV2 (stride-16 96-channel block and the
    # 1280-channel last conv), depthwise-separable extras and heads.
    "ssdlite_mobilenetv2": {
        320: Preset(
            data_shape=320,
            sources=("block13", "conv_last"),
            extras=(ExtraLayer(256, 512), ExtraLayer(128, 256), ExtraLayer(128, 256), ExtraLayer(64, 128)),
            min_sizes=(48, 100, 150, 202, 253, 304),
            max_sizes=(100, 150, 202, 253, 304, 320),
            ratios=(_R23,) * 6,
            steps=(16, 32, 64, 107, 160, 320),
            normalization=(None,) * 6,
            preprocess=IMAGENET,
            batch_norm=True,
        ),
    },
}


def network_names() -> list[str]:
    """Names accepted by :func:`symbol.get_model`, sorted."""
    return sorted(PRESETS)


def find_preset(network: str, data_shape: int) -> Preset:
    """The preset for ``network`` closest to ``data_shape`` (ties: the smaller).

    Raises
    ------
    ValueError
        If ``network`` is unknown (the message lists the valid names).
    """
    if network not in PRESETS:
        raise ValueError(f"unknown network {network!r}; valid names: {', '.join(network_names())}")
    table = PRESETS[network]
    best = min(table, key=lambda s: (abs(s - data_shape), s))
    return table[best]
