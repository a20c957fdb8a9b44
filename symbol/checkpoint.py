"""Checkpoints that carry their own configuration.

A checkpoint is two files next to each other:

- ``PREFIX-EPOCH.params`` (four-digit epoch): the weights, written by
  ``net.save_parameters`` (structural parameter names, so they do not depend
  on the block prefixes);
- ``PREFIX-config.json``: everything needed to build the network again, the
  :class:`ModelConfig` (network name, input size, class names, in-graph
  preprocessing, backbone options, decoding defaults) and a format version.

>>> save_checkpoint(net, "model/ssd", 12, ["cat", "dog"])    # doctest: +SKIP
>>> net, config = load_checkpoint("model/ssd", 12)           # doctest: +SKIP

Both files are written atomically: to a temporary file in the same
directory, then renamed over the target, so an interrupted save never leaves
a partial file behind (nor damages the previous checkpoint).

A params file without a config (for instance one converted from mxnet-ssd)
loads when the configuration is given as overrides::

    load_checkpoint("ssd", 0, network="vgg16_reduced", data_shape=300,
                    class_names=VOC_CLASSES)

A low-precision checkpoint (INT8 or bfloat16, see :mod:`symbol.quantization`)
has a third file, ``PREFIX-symbol.json``, the converted prediction graph, and
its ``PREFIX-EPOCH.params`` holds that graph's parameters in MXNet's
``arg:``/``aux:`` format; its config says how it was made (``quantized``).
It loads and saves through the same two functions.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence

import mxnet as mx

from common.errors import mxnet_error_line
from common.fileio import PathLike, atomic_path, read_json, write_json

from .detection import DecodeConfig
from .factory import CAFFE_GRAPH, get_model, model_names
from .presets import Preprocessing, find_preset, network_names
from .quantization import LowPrecisionInfo, LowPrecisionSSD, load_graph, save_graph
from .ssd import SSDBase

__all__ = ["FORMAT_VERSION", "ModelConfig", "config_path", "load_checkpoint", "mid_epoch_note", "params_path",
           "read_config", "save_checkpoint", "state_path", "symbol_path"]

logger = logging.getLogger(__name__)

#: Version of the ``PREFIX-config.json`` layout; bumped on incompatible changes.
#: Version 2 added ``layout``, version 3 ``quantized`` (a low-precision graph in
#: ``PREFIX-symbol.json``, which older code cannot load). A config is written
#: with the lowest version that holds it (1 without either), which older code
#: reads alike.
FORMAT_VERSION = 3
_LAYOUT_VERSION = 2
_FORMAT_NAME = "mxnet-ssd-gluon checkpoint"
_CONFIG_OVERRIDES = ("network", "data_shape", "class_names", "preprocess", "backbone_kwargs")


def params_path(prefix: PathLike, epoch: int) -> Path:
    """``PREFIX-EPOCH.params`` with a four-digit epoch (mxnet-ssd's naming)."""
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    return Path(f"{os.fspath(prefix)}-{epoch:04d}.params")


def config_path(prefix: PathLike) -> Path:
    """``PREFIX-config.json``, shared by every epoch of a run."""
    return Path(f"{os.fspath(prefix)}-config.json")


def symbol_path(prefix: PathLike) -> Path:
    """``PREFIX-symbol.json``: a low-precision checkpoint's prediction graph."""
    return Path(f"{os.fspath(prefix)}-symbol.json")


def state_path(prefix: PathLike, epoch: int) -> Path:
    """``PREFIX-EPOCH-state.json``: where training stood at that checkpoint (see
    :mod:`train.checkpoints`); a checkpoint taken in the middle of an epoch says so there."""
    return Path(f"{os.fspath(prefix)}-{epoch:04d}-state.json")


def mid_epoch_note(prefix: PathLike, epoch: int) -> Optional[str]:
    """A sentence saying that ``PREFIX-EPOCH`` was taken in the middle of its epoch, or None
    (a complete checkpoint, or one without a training state file)."""
    try:
        state = read_json(state_path(prefix, epoch), "training state file")
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("complete", True):
        return None
    return (f"{params_path(prefix, epoch)} was saved in the middle of epoch {epoch} (after batch "
            f"{state.get('batch', '?')} of {state.get('batches', '?')}): its weights are those of an "
            f"unfinished epoch; train.py --resume {epoch} finishes it")


# ---------------------------------------------------------------------- config
@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a trained SSD, except its weights.

    Attributes
    ----------
    network : str
        One of :func:`symbol.factory.model_names`: a preset network, or
        ``'caffe'`` (a converted Caffe graph, given by ``layout``).
    data_shape : int
        Input side length.
    class_names : tuple of str
        Foreground class names; ``num_classes`` is their count.
    preprocess : Preprocessing
        In-graph input normalization.
    backbone_kwargs : mapping
        Backbone options passed to :func:`symbol.get_model` (e.g. MobileNet's
        ``multiplier`` and ``batch_norm``). Read-only.
    nms : mapping
        Decoding defaults, :class:`DecodeConfig` settings (validated by it;
        missing ones take its defaults). Read-only.
    layout : mapping, optional
        The model's own layout when it is not the preset table's (see
        :func:`symbol.get_model`): a converted Caffe graph for ``'caffe'``, or
        the preset of a model converted from another implementation.
    quantized : mapping, optional
        A low-precision checkpoint's :class:`~symbol.quantization.LowPrecisionInfo`
        (``dtype`` int8 or bfloat16, how it was calibrated, what stays float32);
        None for a float checkpoint. Read-only.
    version : int
        Format version the config was written with (default: the one it will
        be written with: 1 without a layout, 2 with one, 3 with ``quantized``).
    """

    network: str
    data_shape: int
    class_names: tuple[str, ...]
    preprocess: Preprocessing
    backbone_kwargs: Mapping[str, Any] = field(default_factory=dict)
    nms: Mapping[str, Any] = field(default_factory=dict)
    layout: Optional[Mapping[str, Any]] = None
    quantized: Optional[Mapping[str, Any]] = None
    version: Optional[int] = None

    def __post_init__(self) -> None:
        if self.network not in model_names():
            raise ValueError(f"unknown network {self.network!r}; valid names: {', '.join(model_names())}")
        if self.layout is not None:
            if not isinstance(self.layout, Mapping):
                raise ValueError(f"layout must be a JSON object, got {type(self.layout).__name__}")
            try:  # a private deep copy, which must be plain JSON
                object.__setattr__(self, "layout", json.loads(json.dumps(self.layout)))
            except (TypeError, ValueError) as err:
                raise ValueError(f"layout is not plain JSON data ({err})") from None
        elif self.network == CAFFE_GRAPH:
            raise ValueError(f"network {CAFFE_GRAPH!r} needs its layout (the converted Caffe graph)")
        if not isinstance(self.data_shape, int) or isinstance(self.data_shape, bool) or self.data_shape < 32:
            raise ValueError(f"data_shape must be an integer of at least 32, got {self.data_shape!r}")
        if isinstance(self.class_names, str) or not isinstance(self.class_names, Sequence):
            raise ValueError(f"class_names must be a list of strings, got {self.class_names!r}")
        names = tuple(self.class_names)
        if not names:
            raise ValueError("class_names is empty: a detector needs at least one class")
        bad = [i for i, n in enumerate(names) if not isinstance(n, str) or not n.strip()]
        if bad:
            raise ValueError(f"class_names[{bad[0]}] must be a non-empty string, got {names[bad[0]]!r}")
        if isinstance(self.preprocess, Mapping):
            object.__setattr__(self, "preprocess", _preprocess_from_dict(self.preprocess))
        elif not isinstance(self.preprocess, Preprocessing):
            raise ValueError(f"preprocess must be a Preprocessing or a dict, got {self.preprocess!r}")
        if (not isinstance(self.backbone_kwargs, Mapping)
                or not all(isinstance(k, str) for k in self.backbone_kwargs)):
            raise ValueError(f"backbone_kwargs must be a dict with string keys, got {self.backbone_kwargs!r}")
        clash = sorted(set(self.backbone_kwargs) & (set(DecodeConfig.names()) | {"preprocess", "ctx", "pretrained_base"}))
        if clash:
            raise ValueError(f"backbone_kwargs must not set {clash}; use the dedicated fields")
        if not isinstance(self.nms, Mapping):
            raise ValueError(f"nms must be a dict, got {self.nms!r}")
        try:
            DecodeConfig.from_dict(self.nms)
        except (TypeError, ValueError) as err:
            raise ValueError(f"nms: {err}") from None
        if self.quantized is not None:
            try:
                info = LowPrecisionInfo.from_dict(self.quantized)
            except (TypeError, ValueError) as err:
                raise ValueError(f"quantized: {err}") from None
            object.__setattr__(self, "quantized", MappingProxyType(info.to_dict()))
        if self.version is None:
            object.__setattr__(self, "version", self._required_version())
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"version must be a positive integer, got {self.version!r}")
        if self.version > FORMAT_VERSION:
            raise ValueError(f"config format version {self.version} is newer than this code "
                             f"understands ({FORMAT_VERSION}); update the project")
        object.__setattr__(self, "class_names", names)
        # Copies behind read-only views: the config cannot change after it is built.
        object.__setattr__(self, "backbone_kwargs", MappingProxyType(dict(self.backbone_kwargs)))
        object.__setattr__(self, "nms", MappingProxyType(dict(self.nms)))

    def _required_version(self) -> int:
        """The lowest format version that holds this config."""
        return FORMAT_VERSION if self.quantized is not None else _LAYOUT_VERSION if self.layout is not None else 1

    @property
    def num_classes(self) -> int:
        """Number of foreground classes (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def low_precision(self) -> Optional[LowPrecisionInfo]:
        """``quantized`` as a :class:`~symbol.quantization.LowPrecisionInfo`; None for a float model."""
        return None if self.quantized is None else LowPrecisionInfo.from_dict(self.quantized)

    @property
    def decoding(self) -> DecodeConfig:
        """The decoding defaults (``nms``) as a :class:`DecodeConfig`."""
        return DecodeConfig.from_dict(self.nms)

    @classmethod
    def from_net(cls, net: SSDBase, class_names: Sequence[str]) -> "ModelConfig":
        """The config of a network built by :func:`symbol.get_model`.

        Raises
        ------
        ValueError
            If ``net`` was not built by ``get_model`` (no ``build_args``) or
            ``class_names`` does not have ``net.num_classes`` entries.
        """
        args = getattr(net, "build_args", None)
        if not isinstance(args, dict):
            raise ValueError("the network has no build_args: build it with symbol.get_model "
                             "so that a checkpoint can record how to rebuild it")
        if isinstance(class_names, str):
            raise ValueError("class_names must be a list of strings, not one string")
        if len(class_names) != net.num_classes:
            raise ValueError(f"{len(class_names)} class names given for a network with "
                             f"{net.num_classes} classes; pass exactly one name per class")
        quantized = net.info.to_dict() if isinstance(net, LowPrecisionSSD) else None
        return cls(network=args["network"], data_shape=int(args["data_shape"]),
                   class_names=tuple(class_names), preprocess=Preprocessing.from_dict(args["preprocess"]),
                   backbone_kwargs=dict(args["kwargs"]), nms=dict(net.nms_config),
                   layout=args.get("layout"), quantized=quantized)

    def to_dict(self) -> dict:
        """A JSON-serializable dict (the body of ``PREFIX-config.json``)."""
        required = self._required_version()
        d = {"format": _FORMAT_NAME, "version": self.version if required == 1 else max(self.version, required),
             "network": self.network, "data_shape": self.data_shape, "num_classes": self.num_classes,
             "class_names": list(self.class_names), "preprocess": self.preprocess.to_dict(),
             "backbone_kwargs": dict(self.backbone_kwargs), "nms": dict(self.nms)}
        if self.layout is not None:
            d["layout"] = json.loads(json.dumps(self.layout))
        if self.quantized is not None:
            d["quantized"] = json.loads(json.dumps(dict(self.quantized)))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            Missing or malformed fields, a ``num_classes`` that disagrees with
            ``class_names``, or a format version newer than :data:`FORMAT_VERSION`.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"a config must be a JSON object, got {type(d).__name__}")
        missing = [k for k in ("network", "data_shape", "class_names", "preprocess") if k not in d]
        if missing:
            raise ValueError(f"config is missing the field(s) {', '.join(missing)}")
        if "format" in d and d["format"] != _FORMAT_NAME:
            raise ValueError(f"not a {_FORMAT_NAME} config (format is {d['format']!r})")
        unknown = sorted(set(d) - {"format", "version", "num_classes", "network", "data_shape",
                                   "class_names", "preprocess", "backbone_kwargs", "nms", "layout", "quantized"})
        if unknown:
            logger.warning("ignoring unknown config fields %s", unknown)
        config = cls(network=d["network"], data_shape=d["data_shape"], class_names=d["class_names"],
                     preprocess=d["preprocess"], backbone_kwargs=d.get("backbone_kwargs", {}),
                     nms=d.get("nms", {}), layout=d.get("layout"), quantized=d.get("quantized"),
                     version=d.get("version"))
        if "num_classes" in d and d["num_classes"] != config.num_classes:
            raise ValueError(f"num_classes is {d['num_classes']!r} but there are "
                             f"{config.num_classes} class_names")
        return config

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        fields = {"network": self.network, "data_shape": self.data_shape, "class_names": self.class_names,
                  "preprocess": self.preprocess, "backbone_kwargs": dict(self.backbone_kwargs),
                  "nms": dict(self.nms), "layout": self.layout, "quantized": self.quantized,
                  "version": self.version}
        fields.update(changes)
        return ModelConfig(**fields)


def _preprocess_from_dict(d: Mapping[str, Any]) -> Preprocessing:
    try:
        pre = Preprocessing.from_dict(dict(d))
        if len(pre.mean) != 3 or len(pre.std) != 3:
            raise ValueError("mean and std need three values")
        pre = Preprocessing(mean=tuple(float(v) for v in pre.mean),
                            std=tuple(float(v) for v in pre.std), bgr=pre.bgr)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"preprocess must be {{'mean': [3 numbers], 'std': [3 numbers], 'bgr': bool}}, "
                         f"got {dict(d)!r} ({err})") from None
    if any(s == 0 for s in pre.std):
        raise ValueError(f"preprocess std must not contain 0, got {list(pre.std)}")
    return pre


# ---------------------------------------------------------------------- save / load
def save_checkpoint(net: SSDBase, prefix: PathLike, epoch: int, class_names: Sequence[str]) -> tuple[Path, Path]:
    """Write ``PREFIX-EPOCH.params`` and ``PREFIX-config.json`` atomically.

    Parameters
    ----------
    net : SSDBase
        Built by :func:`symbol.get_model` (its ``build_args`` are recorded).
    prefix : str or path
        Path prefix; its parent directory is created.
    epoch : int
        Non-negative; written with four digits.
    class_names : sequence of str
        One name per class, ``len(class_names) == net.num_classes``.

    Returns
    -------
    (params_file, config_file) : tuple of Path

    Raises
    ------
    ValueError
        Wrong number of class names, a bad epoch, or a network not built by
        ``get_model``.

    Notes
    -----
    A :class:`~symbol.quantization.LowPrecisionSSD` also writes
    ``PREFIX-symbol.json`` (see :func:`symbol_path`). Its three files are
    written to temporary files first and renamed into place only once all
    three are complete, so a failure leaves no new file behind.
    """
    config = ModelConfig.from_net(net, class_names)
    params_file, config_file = params_path(prefix, epoch), config_path(prefix)
    if isinstance(net, LowPrecisionSSD):
        symbol_file = symbol_path(prefix)
        with contextlib.ExitStack() as stack:  # renamed in reverse order of entering: the config last
            tmp_config = stack.enter_context(atomic_path(config_file))
            tmp_params = stack.enter_context(atomic_path(params_file))
            tmp_symbol = stack.enter_context(atomic_path(symbol_file))
            save_graph(net, tmp_symbol, tmp_params)
            write_json(tmp_config, config.to_dict())
        logger.info("saved %s checkpoint %s (graph %s, config %s)", net.dtype, params_file, symbol_file,
                    config_file)
        return params_file, config_file
    with atomic_path(params_file) as tmp:
        net.save_parameters(os.fspath(tmp))
    write_json(config_file, config.to_dict())
    logger.info("saved checkpoint %s (config %s)", params_file, config_file)
    return params_file, config_file


def read_config(prefix: PathLike) -> ModelConfig:
    """Read and validate ``PREFIX-config.json``.

    Raises
    ------
    FileNotFoundError
        No config file.
    ValueError
        Unreadable JSON or invalid fields; the message names the file.
    """
    path = config_path(prefix)
    data = read_json(path, "checkpoint config", lambda p: "the file is damaged: save the checkpoint again, or "
                     "delete it and pass network, data_shape and class_names explicitly")
    try:
        return ModelConfig.from_dict(data)
    except ValueError as err:
        raise ValueError(f"invalid checkpoint config {path}: {err}") from None


def load_checkpoint(prefix: PathLike, epoch: int = 0, ctx: Optional[mx.Context] = None,
                    **overrides: Any) -> tuple[SSDBase, ModelConfig]:
    """Rebuild the network of a checkpoint and load its weights.

    Parameters
    ----------
    prefix : str or path
        The prefix given to :func:`save_checkpoint`.
    epoch : int
        Which ``PREFIX-EPOCH.params`` to load.
    ctx : mx.Context, optional
        Where to put the parameters (default CPU).
    **overrides
        ``network``, ``data_shape``, ``class_names``, ``preprocess`` (dict or
        Preprocessing) and ``backbone_kwargs`` (dict) replace the config's
        values; without a config file (a params-only checkpoint, e.g. converted
        from mxnet-ssd) ``network``, ``data_shape`` and ``class_names`` are
        required and the others default to the preset's. ``nms_thresh``,
        ``nms_topk``, ``keep_topk``, ``thresh``, ``force_suppress`` and
        ``nms_mode`` (:meth:`DecodeConfig.names`) change the decoding settings. ``None`` values are ignored, so that unset
        command-line flags can be passed through.

    Returns
    -------
    (net, config) : (SSDBase, ModelConfig)
        The network, initialized on ``ctx`` and not hybridized, and its
        effective configuration (overrides applied). A low-precision
        checkpoint (``quantized`` in its config) gives a
        :class:`~symbol.quantization.LowPrecisionSSD` built from
        ``PREFIX-symbol.json``: its network, input size, preprocessing and
        backbone options are fixed (an override that changes them is an
        error), its class names and decoding settings are not; CPU only.

    Raises
    ------
    FileNotFoundError
        The params file is missing, or the config file is missing and the
        overrides do not say how to build the network.
    ValueError
        Unknown override names, a corrupt config, overrides that contradict
        the config (another network, another number of classes), or params
        that do not fit the network.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(_CONFIG_OVERRIDES) - set(DecodeConfig.names()))
    if unknown:
        raise ValueError(f"unknown load_checkpoint overrides {unknown}; valid: "
                         f"{', '.join(_CONFIG_OVERRIDES + DecodeConfig.names())}")
    if "network" in overrides and overrides["network"] not in network_names():
        raise ValueError(f"unknown network {overrides['network']!r}; valid names: "
                         f"{', '.join(network_names())}")
    params_file = params_path(prefix, epoch)
    if not params_file.is_file():
        raise FileNotFoundError(f"checkpoint params not found: {params_file} (check the prefix "
                                f"and the epoch)")
    nms = {k: overrides.pop(k) for k in DecodeConfig.names() if k in overrides}
    config = _resolve_config(prefix, overrides)
    if nms:
        config = config.replace(nms={**config.nms, **nms})

    ctx = ctx or mx.cpu()
    if config.quantized is not None:
        return _load_low_precision(prefix, epoch, config, overrides, ctx)
    try:
        net = get_model(config.network, config.data_shape, config.num_classes, layout=config.layout,
                        preprocess=config.preprocess, ctx=ctx, decoding=config.decoding,
                        **dict(config.backbone_kwargs))
    except TypeError as err:  # a backbone option its builder does not take
        raise ValueError(f"cannot build {config.network} with backbone options "
                         f"{dict(config.backbone_kwargs)}: {err}") from None
    try:
        net.load_parameters(os.fspath(params_file), ctx=ctx)
    except mx.base.MXNetError as err:  # the file itself could not be read
        raise ValueError(f"cannot read checkpoint params {params_file}: {mxnet_error_line(err)}; the "
                         f"file is damaged or not an MXNet .params file: save it again") from None
    except (AssertionError, ValueError, RuntimeError, KeyError) as err:  # names or shapes differ
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"the parameters in {params_file} do not fit {config.network} at "
                         f"{config.data_shape} with {config.num_classes} classes ({detail}); check "
                         f"that the network, the backbone options and the number of classes match "
                         f"the ones it was trained with") from None
    config = config.replace(nms=dict(net.nms_config))
    note = mid_epoch_note(prefix, epoch)
    if note is not None:
        logger.warning("%s", note)
    logger.info("loaded %s (%s, %d classes)", params_file, config.network, config.num_classes)
    return net, config


def _load_low_precision(prefix: PathLike, epoch: int, config: ModelConfig, overrides: dict,
                        ctx: mx.Context) -> tuple[SSDBase, ModelConfig]:
    """The :class:`LowPrecisionSSD` of a checkpoint whose config has ``quantized``."""
    info = config.low_precision
    saved = read_config(prefix)
    fixed = [k for k in ("network", "data_shape", "preprocess", "backbone_kwargs")
             if k in overrides and getattr(config, k) != getattr(saved, k)]
    if fixed:
        raise ValueError(f"{config_path(prefix)} is a {info.dtype} checkpoint: its graph fixes the "
                         f"{', '.join(fixed)}; drop the override (convert the float checkpoint again to change it)")
    net = load_graph(symbol_path(prefix), params_path(prefix, epoch), info, config.num_classes, config.data_shape,
                     config.preprocess, ctx=ctx, decoding=config.decoding)
    net.build_args = {"network": config.network, "data_shape": config.data_shape,
                      "num_classes": config.num_classes, "preprocess": config.preprocess.to_dict(),
                      "kwargs": dict(config.backbone_kwargs),
                      "layout": None if config.layout is None else json.loads(json.dumps(config.layout))}
    logger.info("loaded %s (%s %s, %d classes)", params_path(prefix, epoch), config.network, info.describe(),
                config.num_classes)
    return net, config.replace(nms=dict(net.nms_config))


def _resolve_config(prefix: PathLike, overrides: dict) -> ModelConfig:
    """The checkpoint's config with ``overrides`` applied, or a config built
    from the overrides alone when there is no config file."""
    try:
        config = read_config(prefix)
    except FileNotFoundError:
        needed = [k for k in ("network", "data_shape", "class_names") if k not in overrides]
        if needed:
            raise FileNotFoundError(f"checkpoint config not found: {config_path(prefix)}; to load a "
                                    f"params-only checkpoint give {', '.join(needed)} explicitly") from None
        preset = find_preset(overrides["network"], overrides["data_shape"])
        return ModelConfig(network=overrides["network"], data_shape=overrides["data_shape"],
                           class_names=tuple(overrides["class_names"]),
                           preprocess=overrides.get("preprocess", preset.preprocess),
                           backbone_kwargs=overrides.get("backbone_kwargs", {}))
    source = config_path(prefix)
    if "network" in overrides and overrides["network"] != config.network:
        raise ValueError(f"network {overrides['network']!r} was requested but {source} is a "
                         f"{config.network!r} checkpoint; drop the network override")
    if "class_names" in overrides:
        names = overrides["class_names"]
        if isinstance(names, str) or len(names) != config.num_classes:
            count = 1 if isinstance(names, str) else len(names)
            raise ValueError(f"{count} class names given but {source} has {config.num_classes} "
                             f"classes; give exactly {config.num_classes} names")
    return config.replace(**overrides)
