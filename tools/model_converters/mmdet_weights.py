"""mmdetection SSD state dicts: which model they hold, old names upgraded, mapped onto ours.

A state dict maps mmdetection's module paths (``backbone.features.0.weight``,
``neck.extra_layers.0.1.conv.weight``, ``bbox_head.cls_convs.0.0.weight``, ...)
to arrays. :func:`parameter_map` names, for every structural parameter of
this project's network (``net._collect_params_with_prefix()``), the one
mmdetection array it takes and how:

- convolutions and biases as they are (both frameworks store convolution
  weights as ``(out, in / groups, kh, kw)``);
- BatchNorm ``weight``/``bias``/``running_mean``/``running_var`` as
  ``gamma``/``beta``/``running_mean``/``running_var`` (``num_batches_tracked``,
  a training counter, is not a weight and is left out);
- the L2 normalization's ``(C,)`` weight as our ``(1, C, 1, 1)`` scale;
- the class convolutions' output channels rotated per prior: mmdetection puts
  background last (``scores = softmax(...)[:, :-1]``, channel
  ``a * (C + 1) + C``), this project first (channel ``a * (C + 1)``), and both
  lay a location's channels out prior by prior.

Checkpoints written before mmdetection 2.14 kept the extra layers and the L2
normalization in the backbone (``backbone.extra.N``, ``backbone.l2_norm``) and
the heads' convolutions unwrapped (``bbox_head.cls_convs.L.weight``);
:func:`upgrade_ssd_names` renames them exactly as mmdetection's own
``tools/model_converters/upgrade_ssd_version.py`` does.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from .mmdet_models import MODELS, MmdetModel

if TYPE_CHECKING:
    from mxnet.gluon import Parameter

__all__ = ["Architecture", "IGNORED_SUFFIX", "Source", "apply_weights", "class_permutation", "is_old_style",
           "parameter_map", "recognise", "upgrade_ssd_name", "upgrade_ssd_names"]

#: Buffers of mmdetection's BatchNorms that are not weights.
IGNORED_SUFFIX = ".num_batches_tracked"

Transform = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------- old names
_OLD_KEY = re.compile(r"^(backbone\.extra\.\d+\.|backbone\.l2_norm\.|bbox_head\.(cls|reg)_convs\.\d+\.(weight|bias)$)")


def is_old_style(names: Iterable[str]) -> bool:
    """Whether a state dict has the names of an SSD saved before mmdetection 2.14."""
    return any(_OLD_KEY.match(n) for n in names)


def upgrade_ssd_name(key: str) -> str:
    """One name of a pre-2.14 SSD as ``upgrade_ssd_version.py`` renames it.

    ``*extra*`` -> ``neck.extra_layers.{N // 2}.{N % 2}.conv.LAST`` (N the third
    dotted component), ``*l2_norm*`` -> ``neck.l2_norm.weight``,
    ``*bbox_head*`` -> ``.0`` inserted after the 21st character
    (``bbox_head.cls_convs.L`` with a one-digit L), anything else unchanged.
    """
    parts = key.split(".")
    if "extra" in key:
        n = int(parts[2])
        return f"neck.extra_layers.{n // 2}.{n % 2}.conv.{parts[-1]}"
    if "l2_norm" in key:
        return "neck.l2_norm.weight"
    if "bbox_head" in key:
        return key[:21] + ".0" + key[21:]
    return key


def upgrade_ssd_names(state: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """A pre-2.14 SSD state dict under mmdetection's current names (see :func:`upgrade_ssd_name`).

    Raises
    ------
    ValueError
        Names the rule cannot take (an ``extra`` without a layer number) or
        that it would give twice (``source`` names the file).
    """
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        try:
            new = upgrade_ssd_name(key)
        except (IndexError, ValueError):
            raise ValueError(f"{source}: {key!r} is not a name of an mmdetection SSD from before 2.14 "
                             f"(upgrade_ssd_version.py could not rename it)") from None
        if new in out:
            raise ValueError(f"{source}: {key!r} and another parameter both become {new!r} under "
                             f"upgrade_ssd_version.py's renaming: not an SSD from before mmdetection 2.14")
        out[new] = value
    return out


# ---------------------------------------------------------------------- recognition
@dataclass(frozen=True)
class Architecture:
    """What a state dict's names and shapes say.

    Attributes
    ----------
    backbone : {'vgg16', 'mobilenetv2'}
    num_levels : int
        Prediction levels (class convolutions).
    num_classes : int
        Foreground classes of the class head.
    anchors_per_level : tuple of int
        Priors per location, from the box convolutions (4 outputs each).
    """

    backbone: str
    num_levels: int
    num_classes: int
    anchors_per_level: tuple[int, ...]

    def candidates(self) -> list[MmdetModel]:
        """The released models of this backbone and number of levels."""
        return [m for m in MODELS.values() if m.backbone == self.backbone and m.num_levels == self.num_levels]


def _head_conv(backbone: str, kind: str, level: int) -> str:
    """The prefix of the last (prediction) convolution of one head level."""
    return f"bbox_head.{kind}_convs.{level}.{1 if backbone == 'mobilenetv2' else 0}"


def _prefixes(names: Iterable[str], depth: int = 2) -> list[str]:
    counts = Counter(".".join(n.split(".")[:depth]) for n in names)
    return [p for p, _ in counts.most_common(6)]


def recognise(shapes: Mapping[str, tuple[int, ...]], source: str) -> Architecture:
    """Tell which of mmdetection's SSDs a state dict (current names) holds, and its classes.

    Parameters
    ----------
    shapes : mapping
        Parameter name -> shape.
    source : str
        The file, for messages.

    Raises
    ------
    ValueError
        Not an SSD of a known backbone (another detector, another
        backbone), or head shapes that disagree with each other.
    """
    names = list(shapes)
    if "backbone.features.0.weight" in shapes and "backbone.features.33.weight" in shapes:
        backbone = "vgg16"
    elif "backbone.conv1.conv.weight" in shapes and "backbone.conv2.conv.weight" in shapes:
        backbone = "mobilenetv2"
    else:
        raise ValueError(f"{source} is not an mmdetection SSD with a VGG16 or MobileNetV2 backbone (its "
                         f"parameters are {', '.join(p + '.*' for p in _prefixes(names))})")
    others = sorted({n.split(".")[0] for n in names} - {"backbone", "neck", "bbox_head"})
    if others:
        raise ValueError(f"{source} is not an SSD: it has {', '.join(o + '.*' for o in others)} besides a "
                         f"backbone, a neck and a bbox_head")
    levels = sorted({int(m.group(1)) for n in names if (m := re.match(r"bbox_head\.cls_convs\.(\d+)\.", n))})
    if not levels or levels != list(range(len(levels))):
        head = _prefixes((n for n in names if n.startswith("bbox_head")), 3)
        raise ValueError(f"{source} is not an SSD: no bbox_head.cls_convs.0, 1, ... (its head has "
                         f"{', '.join(p + '.*' for p in head) or 'nothing'})")
    anchors, classes = [], set()
    for level in levels:
        cls_name, reg_name = (_head_conv(backbone, k, level) + ".weight" for k in ("cls", "reg"))
        for name in (cls_name, reg_name):
            if name not in shapes or len(shapes[name]) != 4:
                raise ValueError(f"{source} has no 4-D {name}: not an mmdetection SSD head")
        reg_out, cls_out = shapes[reg_name][0], shapes[cls_name][0]
        if reg_out % 4 or cls_out % (reg_out // 4 or 1):
            raise ValueError(f"{source}: {cls_name} has {cls_out} outputs and {reg_name} {reg_out}: not "
                             f"(classes + 1) and 4 per prior")
        anchors.append(reg_out // 4)
        classes.add(cls_out // (reg_out // 4) - 1)
    if len(classes) != 1 or min(classes) < 1:
        raise ValueError(f"{source}: the class convolutions of the levels disagree on the number of classes "
                         f"({', '.join(str(c) for c in sorted(classes))})")
    return Architecture(backbone, len(levels), classes.pop(), tuple(anchors))


# ---------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class Source:
    """Where one of our parameters comes from: mmdetection's ``name``, through ``transform``."""

    name: str
    transform: Optional[Transform] = None
    note: str = ""

    def value(self, array: np.ndarray) -> np.ndarray:
        return array if self.transform is None else self.transform(array)


_BN = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var"}


def _conv_module(ours_conv: str, ours_bn: str, theirs: str) -> dict[str, Source]:
    """mmcv's ``ConvModule`` (``.conv`` without bias, ``.bn``) onto our conv + BatchNorm."""
    out = {f"{ours_conv}.weight": Source(f"{theirs}.conv.weight")}
    out.update({f"{ours_bn}.{mine}": Source(f"{theirs}.bn.{their}") for mine, their in _BN.items()})
    return out


def _conv(ours: str, theirs: str, transform: Optional[Transform] = None, note: str = "") -> dict[str, Source]:
    """A biased convolution."""
    return {f"{ours}.{p}": Source(f"{theirs}.{p}", transform, note) for p in ("weight", "bias")}


def class_permutation(num_anchors: int, num_classes: int) -> np.ndarray:
    """Output channel ``i`` of our class convolution is mmdetection's channel ``perm[i]``.

    Per prior ``a``: ours ``a * (C + 1)`` (background) is theirs ``a * (C + 1) + C``;
    ours ``a * (C + 1) + 1 + k`` is theirs ``a * (C + 1) + k``.
    """
    per = num_classes + 1
    block = np.concatenate([[num_classes], np.arange(num_classes)])
    return (np.arange(num_anchors)[:, None] * per + block[None, :]).reshape(-1)


def _rotation(num_anchors: int, num_classes: int) -> Transform:
    perm = class_permutation(num_anchors, num_classes)

    def rotate(array: np.ndarray) -> np.ndarray:
        if array.shape[0] != perm.size:
            raise ValueError(f"{array.shape[0]} output channels, expected {perm.size}")
        return array[perm]
    return rotate


def _vgg_backbone() -> dict[str, Source]:
    """mmcv's ``VGG(16)`` ``features`` (conv, ReLU pairs, a max pool ending each stage,
    the last one dropped) plus SSDVGG's pool5, fc6 (31) and fc7 (33)."""
    out: dict[str, Source] = {}
    index = 0
    for stage, convs in enumerate((2, 2, 3, 3, 3)):
        for i in range(convs):
            out.update(_conv(f"backbone.stages.{stage}.{i}.0", f"backbone.features.{index}"))
            index += 2
        index += 1  # the stage's max pool
    out.update(_conv("backbone.fc6.0", "backbone.features.31"))
    out.update(_conv("backbone.fc7.0", "backbone.features.33"))
    return out


#: mmdetection MobileNetV2's ``layer1`` .. ``layer7``: (expand ratio, blocks).
_MBV2_LAYERS = ((1, 1), (6, 2), (6, 3), (6, 4), (6, 3), (6, 3), (6, 1))
#: Our MobileNetV2 is GluonCV's ``features`` (conv, BN, ReLU6, 17 bottlenecks, conv, BN,
#: ReLU6) cut after features[15] (the last 96-channel block, source ``block13``) into two stages.
_MBV2_SPLIT = 16


def _features(index: int) -> str:
    return f"backbone.stages.0.{index}" if index < _MBV2_SPLIT else f"backbone.stages.1.{index - _MBV2_SPLIT}"


def _mobilenetv2_backbone() -> dict[str, Source]:
    """mmdetection's ``MobileNetV2`` (``conv1``, ``layerN.i`` with ``expand_conv`` (not in
    layer1), ``depthwise_conv``, ``linear_conv``, then ``conv2``) onto GluonCV's features."""
    out = _conv_module(f"{_features(0)}", f"{_features(1)}", "backbone.conv1")
    block = 0
    for layer, (expand, blocks) in enumerate(_MBV2_LAYERS, start=1):
        for i in range(blocks):
            ours, theirs = f"{_features(3 + block)}.out", f"backbone.layer{layer}.{i}"
            parts = (["expand_conv"] if expand != 1 else []) + ["depthwise_conv", "linear_conv"]
            for j, part in enumerate(parts):  # conv, BN, ReLU6 per part (no ReLU6 after the last)
                out.update(_conv_module(f"{ours}.{3 * j}", f"{ours}.{3 * j + 1}", f"{theirs}.{part}"))
            block += 1
    out.update(_conv_module(_features(20), _features(21), "backbone.conv2"))
    return out


def parameter_map(model: MmdetModel, ours: Sequence[str], num_classes: int) -> dict[str, Source]:
    """For each of our parameter names, the mmdetection array it takes.

    Parameters
    ----------
    model : MmdetModel
    ours : sequence of str
        Our structural parameter names (``net._collect_params_with_prefix()``).
    num_classes : int
        Foreground classes (for the class channels' rotation).

    Raises
    ------
    ValueError
        One of ours that the model's rule does not name (a network that is
        not the one built for this model).
    """
    lite = model.backbone == "mobilenetv2"
    table = _mobilenetv2_backbone() if lite else _vgg_backbone()
    for k, extra in enumerate(model.preset.extras):
        neck = f"neck.extra_layers.{k}"
        if lite:  # 1x1 ConvModule, then a DepthwiseSeparableConvModule
            table.update(_conv_module(f"extras.{k}.0.0", f"extras.{k}.0.1", f"{neck}.0"))
            table.update(_conv_module(f"extras.{k}.1.0.0", f"extras.{k}.1.0.1", f"{neck}.1.depthwise_conv"))
            table.update(_conv_module(f"extras.{k}.1.1.0", f"extras.{k}.1.1.1", f"{neck}.1.pointwise_conv"))
        else:  # two biased convs
            table.update(_conv(f"extras.{k}.0.0", f"{neck}.0.conv"))
            table.update(_conv(f"extras.{k}.1.0", f"{neck}.1.conv"))
    for level, scale in enumerate(model.preset.normalization):
        if scale is not None:
            table[f"norms.{level}.scale"] = Source("neck.l2_norm.weight", lambda a: a.reshape(1, -1, 1, 1))
    for level, anchors in enumerate(model.anchors_per_level):
        rotate = _rotation(anchors, num_classes)
        for mine, theirs in (("class_heads", "cls_convs"), ("box_heads", "reg_convs")):
            transform = rotate if mine == "class_heads" else None
            note = "background moved first" if transform else ""
            if lite:  # depthwise ConvModule, then a biased 1x1 conv
                table.update(_conv_module(f"{mine}.{level}.0.0", f"{mine}.{level}.0.1",
                                          f"bbox_head.{theirs}.{level}.0"))
                table.update(_conv(f"{mine}.{level}.1", f"bbox_head.{theirs}.{level}.1", transform, note))
            else:
                table.update(_conv(f"{mine}.{level}", f"bbox_head.{theirs}.{level}.0", transform, note))
    unnamed = [n for n in ours if n not in table]
    if unnamed:
        raise ValueError(f"the {model.network} network has parameters that {model.name} does not explain: "
                         f"{', '.join(unnamed[:6])}{' ...' if len(unnamed) > 6 else ''}")
    return {n: table[n] for n in ours}


def apply_weights(params: Mapping[str, "Parameter"], mapping: Mapping[str, Source],
                  state: Mapping[str, np.ndarray], source: str) -> None:
    """Check, then set every parameter of ``params`` (name -> ``gluon.Parameter``) from ``state``.

    Every mmdetection array (but ``num_batches_tracked``) must be taken by exactly
    one of ours, every one of ours must find its array, of the same shape after
    its transform; nothing is set unless all do.

    Raises
    ------
    ValueError
        Missing, unused, non-numeric or misshapen arrays (``source`` names the file).
    """
    wanted = Counter(s.name for s in mapping.values())
    twice = sorted(n for n, c in wanted.items() if c > 1)
    if twice:  # a rule error, never a checkpoint's
        raise ValueError(f"{source}: {', '.join(twice)} would be used more than once")
    missing = sorted(n for n in wanted if n not in state)
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} parameter(s) of the model: {', '.join(missing[:6])}"
                         f"{' ...' if len(missing) > 6 else ''}")
    unused = sorted(n for n in state if n not in wanted and not n.endswith(IGNORED_SUFFIX))
    if unused:
        raise ValueError(f"{source} has {len(unused)} parameter(s) the model does not: {', '.join(unused[:6])}"
                         f"{' ...' if len(unused) > 6 else ''}")
    values = {}
    for name, src in mapping.items():
        array = state[src.name]
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{source}: {src.name} is not a floating-point tensor "
                             f"({getattr(array, 'dtype', type(array).__name__)})")
        try:
            value = src.value(np.asarray(array, dtype=np.float32))
        except ValueError as err:
            raise ValueError(f"{source}: {src.name}: {err}") from None
        want = tuple(params[name].shape)
        if value.shape != want:
            raise ValueError(f"{source}: {src.name} has shape {tuple(array.shape)}, but the model needs "
                             f"{want} for it")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{source}: {src.name} holds non-finite values")
        values[name] = value
    for name, value in values.items():
        params[name].set_data(value)
