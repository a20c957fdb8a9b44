"""GluonCV's SSD parameter files: their names in this project, BatchNorms, anchors, input scale.

GluonCV saves an SSD with ``net.save_parameters``: an NDArray dict keyed by
structural names. :func:`parameter_map` maps every structural parameter name
of this project's SSD (``net._collect_params_with_prefix()``, what its
``save_parameters`` writes) onto one of those keys:

- the prediction heads: ``class_predictors.I.predictor.weight`` is
  ``class_heads.I.weight`` (box heads alike);
- ``vgg16_atrous``: ``features.stages.S.(2J)`` (conv, ReLU pairs) are the VGG
  stages' convs, ``features.stages.5.0`` / ``.2`` fc6 / fc7,
  ``features.norm4.scale`` conv4_3's L2 scale, ``features.extras.I.0`` / ``.2``
  the extra layers' two convs;
- ``resnet50_v1`` and ``mobilenet1.0``: the backbone is a ``FeatureExpander``
  (a SymbolBlock) whose keys are the model-zoo classifier's parameter names
  (``features.resnetv10_stage3_conv4_weight``): the backbone blocks of this
  project are the same model-zoo blocks, named alike but for the network's
  own prefix (``resnetv1N_``, ``mobilenetN_``, numbered by how many were built
  before), so they match by the rest of the name; the extra layers are
  ``features.expand_trans_convI`` / ``expand_trans_bnI`` (the 1x1 transition)
  and ``features.expand_convI`` / ``expand_bnI``.

Two kinds of constants are checked rather than copied: the anchors
(``anchor_generators.I.anchors``, pixel ``(cx, cy, w, h)`` on a 128x128
(or smaller) grid, cropped to the feature map at run time), and VGG's
``features.init_scale``, the constant the input is multiplied by, which with
GluonCV's ImageNet normalization gives the input preprocessing.

The extra layers' BatchNorms of ``FeatureExpander`` are ``mx.sym.BatchNorm``
with its defaults: epsilon 1e-3 and ``fix_gamma`` (gamma is taken as 1,
whatever its stored value). :func:`carry_batch_norm` gives the gamma with
which a BatchNorm of other settings computes the same at inference.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, nn

from common.fileio import PathLike
from symbol.presets import Preprocessing

from .gluoncv_zoo import ZooModel

__all__ = ["BatchNormSettings", "EXPANDER_BN", "GLUON_BN", "IMAGENET_MEAN", "IMAGENET_STD", "anchor_keys",
           "apply_weights", "batch_norms", "carry_batch_norm", "check_anchors", "describe", "load_params",
           "num_classes", "parameter_map", "preprocessing"]

#: GluonCV's SSD transforms (``SSDDefaultValTransform``): RGB / 255, minus mean, over std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BatchNormSettings:
    """What a BatchNorm computes at inference besides its parameters:
    ``gamma * (x - mean) / sqrt(var + eps) + beta``, gamma taken as 1 when fixed."""

    eps: float
    fix_gamma: bool

    @classmethod
    def of(cls, block: nn.BatchNorm) -> "BatchNormSettings":
        return cls(float(block._kwargs["eps"]), bool(block._kwargs["fix_gamma"]))

    def __str__(self) -> str:
        return f"eps {self.eps:g}{', gamma fixed at 1' if self.fix_gamma else ''}"


#: ``mx.sym.BatchNorm``'s defaults, FeatureExpander's extra layers.
EXPANDER_BN = BatchNormSettings(1e-3, True)
#: ``gluon.nn.BatchNorm``'s defaults, the model-zoo backbones.
GLUON_BN = BatchNormSettings(1e-5, False)

_BACKBONE_PREFIX = {"resnet50_v1": r"resnetv1\d*_", "mobilenet1.0": r"mobilenet\d*_"}
_BN_AUX = {"gamma": "gamma", "beta": "beta", "running_mean": "moving_mean", "running_var": "moving_var"}


def load_params(path: PathLike) -> dict[str, np.ndarray]:
    """The named arrays of a ``save_parameters`` file.

    Raises
    ------
    ValueError
        Unreadable, damaged or truncated, or not a file of named arrays.
    """
    from tools.model_converters.conversion import load_named_params

    return {k: v.asnumpy() for k, v in load_named_params(path, "a GluonCV params file").items()}


def anchor_keys(num_sources: int) -> list[str]:
    return [f"anchor_generators.{i}.anchors" for i in range(num_sources)]


def describe(arrays: Mapping[str, np.ndarray]) -> str:
    """What a GluonCV SSD params file holds, for messages: ``GluonCV's resnet50_v1 SSD
    with 6 sources and 20 classes`` (as far as the names and shapes tell)."""
    if "features.init_scale" in arrays:
        base = "vgg16_atrous"
    else:
        base = next((b for b, p in _BACKBONE_PREFIX.items()
                     if any(re.match(rf"features\.{p}conv0_weight$", k) for k in arrays)), None)
    sources = sum(1 for k in arrays if re.fullmatch(r"class_predictors\.\d+\.predictor\.weight", k))
    if base is None and not sources:
        return f"no GluonCV SSD (its parameters start {', '.join(sorted(arrays)[:3])})"
    what = f"GluonCV's {base or 'unknown base network'} SSD with {sources} sources"
    try:
        return f"{what} and {num_classes(arrays, 'x')} classes"
    except ValueError:
        return what


def num_classes(arrays: Mapping[str, np.ndarray], path: str) -> int:
    """The foreground classes of the model in ``arrays``: the first class head's
    outputs over the anchors per location of its anchor grid, less background.

    Raises
    ------
    ValueError
        The entries are missing or do not divide.
    """
    head, anchors = "class_predictors.0.predictor.weight", "anchor_generators.0.anchors"
    if head not in arrays or anchors not in arrays:
        raise ValueError(f"{path} has no {head if head not in arrays else anchors}: not a GluonCV SSD")
    outputs, per_location = arrays[head].shape[0], arrays[anchors].shape[-1] // 4
    if per_location < 1 or outputs % per_location or outputs // per_location < 2:
        raise ValueError(f"{path}: {head} has {outputs} outputs for {per_location} anchors per location: "
                         f"not a GluonCV SSD")
    return outputs // per_location - 1


def _backbone_prefix(model: ZooModel, arrays: Mapping[str, np.ndarray], path: str) -> str:
    """``features.`` and the backbone's own prefix in the file (``resnetv10_``, ...)."""
    pattern = _BACKBONE_PREFIX[model.base]
    found = sorted({m.group(1) for k in arrays if (m := re.match(rf"(features\.{pattern})conv0_weight$", k))})
    if len(found) != 1:
        raise ValueError(f"{path} does not hold {model.title} but {describe(arrays)}" if not found else
                         f"{path} holds {len(found)} {model.base} backbones ({', '.join(found)}): not {model.title}")
    return found[0]


def _vgg_key(key: str) -> str | None:
    rules = ((r"backbone\.stages\.(\d)\.(\d+)\.0\.(weight|bias)",
              lambda s, j, p: f"features.stages.{s}.{2 * int(j)}.{p}"),
             (r"backbone\.fc6\.0\.(weight|bias)", lambda p: f"features.stages.5.0.{p}"),
             (r"backbone\.fc7\.0\.(weight|bias)", lambda p: f"features.stages.5.2.{p}"),
             (r"norms\.0\.scale", lambda: "features.norm4.scale"),
             (r"extras\.(\d+)\.([01])\.0\.(weight|bias)", lambda i, k, p: f"features.extras.{i}.{2 * int(k)}.{p}"))
    for pattern, name in rules:
        if m := re.fullmatch(pattern, key):
            return name(*m.groups())
    return None


def _expander_key(key: str) -> str | None:
    if m := re.fullmatch(r"extras\.(\d+)\.([01])\.0\.weight", key):
        return f"features.expand_{'trans_' if m[2] == '0' else ''}conv{m[1]}_weight"
    if m := re.fullmatch(r"extras\.(\d+)\.([01])\.1\.(gamma|beta|running_mean|running_var)", key):
        return f"features.expand_{'trans_' if m[2] == '0' else ''}bn{m[1]}_{_BN_AUX[m[3]]}"
    return None


def _head_key(key: str) -> str | None:
    if m := re.fullmatch(r"(class|box)_heads\.(\d+)\.(weight|bias)", key):
        return f"{m[1]}_predictors.{m[2]}.predictor.{m[3]}"
    return None


def parameter_map(model: ZooModel, params: Mapping[str, mx.gluon.Parameter],
                  arrays: Mapping[str, np.ndarray], path: str) -> dict[str, str]:
    """Our structural parameter name -> GluonCV's key, for every parameter of ours,
    each of GluonCV's parameters used once, every shape equal.

    Parameters
    ----------
    model : ZooModel
    params : mapping
        ``net._collect_params_with_prefix()`` of the network built for ``model``.
    arrays : mapping
        The file's arrays (:func:`load_params`).
    path : str
        The file, for messages.

    Raises
    ------
    ValueError
        A file of another network or model: keys missing or left over, or other
        shapes (one line naming the file and the first few).
    """
    prefix = _backbone_prefix(model, arrays, path) if model.base in _BACKBONE_PREFIX else ""
    strip = re.compile("^" + _BACKBONE_PREFIX.get(model.base, "$"))
    mapping: dict[str, str] = {}
    for key, param in params.items():
        if key.startswith("backbone.") and prefix:
            name = prefix + strip.sub("", param.name, count=1)
        elif key.startswith(("class_heads.", "box_heads.")):
            name = _head_key(key)
        else:
            name = _vgg_key(key) if model.base == "vgg16_atrous" else _expander_key(key)
        if name is None:
            raise ValueError(f"{path}: nothing in {model.title} gives this project's parameter {key}")
        mapping[key] = name
    twice = sorted(name for name, n in Counter(mapping.values()).items() if n > 1)
    if twice:
        raise ValueError(f"{path}: {model.title}'s {', '.join(twice[:3])} would set several parameters")
    checked = set(anchor_keys(model.num_sources)) | ({"features.init_scale"} if model.base == "vgg16_atrous" else set())
    wanted = set(mapping.values()) | checked
    missing, unused = sorted(wanted - set(arrays)), sorted(set(arrays) - wanted)
    if missing or unused:
        parts = [f"{len(missing)} of its parameters missing ({_few(missing)})"] if missing else []
        parts += [f"{len(unused)} it does not have ({_few(unused)})"] if unused else []
        raise ValueError(f"{path} does not hold {model.title} but {describe(arrays)}: {' and '.join(parts)}")
    wrong = [f"{v} has shape {arrays[v].shape} where {model.title} has {params[k].shape}"
             for k, v in mapping.items() if tuple(arrays[v].shape) != tuple(params[k].shape)]
    if wrong:
        raise ValueError(f"{path} does not hold {model.title} but {describe(arrays)}: {'; '.join(wrong[:2])}"
                         f"{f' (and {len(wrong) - 2} more)' if len(wrong) > 2 else ''}")
    return mapping


def _few(names: Sequence[str], most: int = 3) -> str:
    return ", ".join(names[:most]) + (" ..." if len(names) > most else "")


def batch_norms(block: HybridBlock, prefix: str = "") -> dict[str, nn.BatchNorm]:
    """Every BatchNorm under ``block`` by its structural prefix (``extras.0.0.1.``)."""
    found = {}
    for name, child in block._children.items():
        if isinstance(child, nn.BatchNorm):
            found[f"{prefix}{name}."] = child
        else:
            found.update(batch_norms(child, f"{prefix}{name}."))
    return found


def apply_weights(net: HybridBlock, mapping: Mapping[str, str],
                  arrays: Mapping[str, np.ndarray]) -> dict[str, BatchNormSettings]:
    """Copy the arrays into ``net``'s parameters (``mapping`` of :func:`parameter_map`).

    GluonCV's backbone BatchNorms are Gluon's (:data:`GLUON_BN`), its extra
    layers' ``mx.sym.BatchNorm`` (:data:`EXPANDER_BN`); where ours compute
    otherwise, their gamma is :func:`carry_batch_norm`'s.

    Returns
    -------
    dict
        The BatchNorms whose gamma was carried (structural prefix -> our settings).
    """
    params = net._collect_params_with_prefix()
    norms = batch_norms(net)
    carried = {}
    for key, name in mapping.items():
        value = arrays[name]
        prefix = key[:-len("gamma")] if key.endswith(".gamma") else None
        if prefix in norms:
            source = EXPANDER_BN if prefix.startswith("extras.") else GLUON_BN
            target = BatchNormSettings.of(norms[prefix])
            value = carry_batch_norm(value, arrays[mapping[prefix + "running_var"]], source, target)
            if source != target:
                carried[prefix] = target
        params[key].set_data(value.astype(np.float32))
    return carried


def carry_batch_norm(gamma: np.ndarray, var: np.ndarray, source: BatchNormSettings,
                     target: BatchNormSettings) -> np.ndarray:
    """The gamma with which a BatchNorm of ``target``'s settings computes at inference
    (running statistics) what one of ``source``'s computes with ``gamma``.

    ``gamma' / sqrt(var + eps') = gamma / sqrt(var + eps)``, gamma being 1 where
    fixed; mean and beta carry over as they are.

    Raises
    ------
    ValueError
        ``target`` fixes gamma at 1 where another value is needed.
    """
    g = np.ones_like(var) if source.fix_gamma else gamma
    g = g * np.sqrt((var.astype(np.float64) + target.eps) / (var.astype(np.float64) + source.eps))
    if target.fix_gamma:
        if not np.allclose(g, 1.0, rtol=1e-6, atol=0):
            raise ValueError(f"a BatchNorm with {target} cannot compute one with {source}")
        return np.ones_like(var)
    return g.astype(np.float32)


def preprocessing(model: ZooModel, arrays: Mapping[str, np.ndarray], path: str) -> Preprocessing:
    """The input normalization GluonCV applies, on RGB pixels in 0..255.

    GluonCV feeds ``(x / 255 - mean) / std`` (ImageNet's); ``vgg16_atrous``
    multiplies that by its ``init_scale`` constant (std * 255, the Caffe VGG's
    scale), so its input is ``x - 255 * mean``. As :class:`Preprocessing`:
    mean ``255 * mean``, std ``255 * std / init_scale``.

    Raises
    ------
    ValueError
        An ``init_scale`` of another shape, or not positive.
    """
    scale = np.ones(3)
    if model.base == "vgg16_atrous":
        if "features.init_scale" not in arrays:
            raise ValueError(f"{path} does not hold {model.title} but {describe(arrays)}: it has no "
                             f"features.init_scale")
        init = arrays["features.init_scale"]
        if init.shape != (1, 3, 1, 1) or not np.all(init > 0):
            raise ValueError(f"{path}: features.init_scale is not 3 positive channel scales "
                             f"(shape {init.shape}): not {model.title}")
        scale = init.astype(np.float64).ravel()
    mean = tuple(round(255.0 * m, 6) for m in IMAGENET_MEAN)
    std = tuple(round(255.0 * s / k, 6) for s, k in zip(IMAGENET_STD, scale))
    return Preprocessing(mean=mean, std=std)


def check_anchors(ours: Sequence[np.ndarray], arrays: Mapping[str, np.ndarray], data_shape: int,
                  model: ZooModel, path: str) -> float:
    """Compare our anchors with the file's, source by source; returns the largest difference.

    Parameters
    ----------
    ours : sequence of (H, W, A, 4) arrays
        Per source, our anchors as normalized corners ``(xmin, ymin, xmax, ymax)``.
    arrays : mapping
        The file's arrays: ``anchor_generators.I.anchors`` of shape ``(1, 1, G, G, 4 A)``
        in pixels ``(cx, cy, w, h)`` of the model's input.

    Raises
    ------
    ValueError
        Other anchors per location, a grid smaller than the feature map, or
        anchors more than 1e-5 (of the input side) apart.
    """
    worst = 0.0
    for i, (mine, key) in enumerate(zip(ours, anchor_keys(len(ours)), strict=True)):
        grid = arrays[key]
        h, w, a, _ = mine.shape
        if grid.ndim != 5 or grid.shape[-1] != 4 * a or grid.shape[2] < h or grid.shape[3] < w:
            raise ValueError(f"{path}: {key} has shape {grid.shape}, but {model.title} has {a} anchors per "
                             f"location on a {h}x{w} map: not this model")
        cx, cy, bw, bh = np.moveaxis(grid[0, 0, :h, :w].reshape(h, w, a, 4).astype(np.float64), -1, 0)
        theirs = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1) / data_shape
        diff = float(np.abs(theirs - mine).max())
        if diff > 1e-5:
            raise ValueError(f"{path}: the anchors of source {i} are not {model.title}'s (they differ by "
                             f"{diff:.3g} of the input side): a params file of another model?")
        worst = max(worst, diff)
    return worst
