"""Convert one of mmdetection's SSD checkpoints into this project's checkpoint.

    python -m tools.model_converters.mmdet CHECKPOINT.pth OUT_PREFIX [--model NAME]
                                           [--class-names a,b,...|FILE]
    python -m tools.model_converters.mmdet ssd300_coco_20210803_015428-d231a06e.pth model/ssd300_coco

mmdetection released SSD300 (25.5 AP), SSD512 (29.5 AP) and SSDLite
MobileNetV2 (21.3 AP) trained on COCO (see :mod:`.mmdet_models`). The model
is recognised from the checkpoint's parameter names and shapes, checked
against its own config text when it has one, and ``--model`` overrides;
checkpoints written before mmdetection 2.14 (``backbone.extra.N``, ...) are
renamed as mmdetection's ``upgrade_ssd_version.py`` does. The class names
come from the checkpoint (``meta['dataset_meta']['classes']``, before
mmdetection 3 ``meta['CLASSES']``), else COCO's 80; ``--class-names``
overrides.

The result, ``OUT_PREFIX-0000.params`` + ``OUT_PREFIX-config.json``, detects
what mmdetection detects: its input normalization is the config's
preprocessing, its priors (sizes that mmdetection truncates to integers) the
config's ``layout``, and its ``test_cfg`` (score above 0.02, the best 1000
per level, class-aware NMS at 0.45, 200 per image) the decoding.

Nothing is written unless everything checks out; any problem is one line on
stderr naming the file, and exit status 1.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from tools.cli import ArgumentParser, UsageError, log_to_stderr, parse_class_names, print_error
from tools.model_converters.conversion import Conversion, write_conversion

if TYPE_CHECKING:
    import numpy as np

    from tools.model_converters.mmdet_models import ConfigFacts, MmdetModel
    from tools.model_converters.mmdet_weights import Architecture

__all__ = ["Conversion", "convert", "convert_checkpoint", "main"]

PROG = "mmdet"
logger = logging.getLogger(__name__)


def split_checkpoint(obj: Any, source: str) -> tuple[dict[str, "np.ndarray"], dict]:
    """The state dict and the ``meta`` of a loaded checkpoint.

    mmdetection's checkpoints are ``{'state_dict': ..., 'meta': ..., ...}``; a
    bare state dict is taken too (``load_checkpoint`` does). A ``module.``
    prefix (a model saved inside DistributedDataParallel) is dropped, as
    mmengine's ``load_checkpoint`` drops it.

    Raises
    ------
    ValueError
        Anything else: not a dict, no ``state_dict``, names that are not
        strings or values that are not tensors.
    """
    import numpy as np

    if not isinstance(obj, Mapping):
        raise ValueError(f"{source} holds a {type(obj).__name__}, not an mmdetection checkpoint (a dict with "
                         f"a state_dict)")
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    if "state_dict" in obj:
        state = obj["state_dict"]
    elif obj and all(isinstance(v, np.ndarray) for v in obj.values()):
        state = obj
    else:
        keys = ", ".join(map(str, list(obj)[:6])) or "nothing"
        raise ValueError(f"{source} has no state_dict (it holds {keys}): not an mmdetection checkpoint")
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{source}: its state_dict is {'empty' if isinstance(state, Mapping) else 'not a dict'}")
    out = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise ValueError(f"{source}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key[len("module."):] if key.startswith("module.") else key] = value
    return out, dict(meta)


def _meta_classes(meta: Mapping[str, Any], source: str) -> Optional[list[str]]:
    """The class names a checkpoint's meta records, or None."""
    names = None
    dataset_meta = meta.get("dataset_meta")
    if isinstance(dataset_meta, Mapping) and dataset_meta.get("classes") is not None:
        names = dataset_meta["classes"]
    elif meta.get("CLASSES") is not None:
        names = meta["CLASSES"]
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, (list, tuple)) \
            or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"{source}: its meta's class names are not a list of names ({str(names)[:60]})")
    return list(names)


def _choose_model(arch: "Architecture", facts: Optional["ConfigFacts"], name: Optional[str],
                  source: str) -> "MmdetModel":
    """The model the checkpoint holds: ``name`` when given (it must fit the weights),
    else the one its backbone and levels give, which its config text must not contradict."""
    from tools.model_converters.mmdet_models import MODELS, config_conflicts

    found = arch.candidates()
    what = f"an mmdetection SSD with a {arch.backbone} backbone and {arch.num_levels} levels"
    if name is not None:
        model = MODELS[name]
        if model not in found:
            raise ValueError(f"{source} holds {what}, not {name}'s "
                             f"({model.backbone}, {model.num_levels} levels)")
    elif len(found) != 1:
        raise ValueError(f"{source} holds {what}, which is none of {', '.join(MODELS)}")
    else:
        model = found[0]
    if arch.anchors_per_level != model.anchors_per_level:
        raise ValueError(f"{source}: its head has {arch.anchors_per_level} priors per location, "
                         f"{model.name} {model.anchors_per_level}")
    conflicts = config_conflicts(facts, model) if facts is not None else []
    if conflicts:
        message = f"{source}: its config says other anchors or input than {model.name}: {'; '.join(conflicts)}"
        if name is None:
            raise ValueError(f"{message} (--model {model.name} converts it as {model.name} all the same)")
        logger.warning("%s; converting as --model %s says", message, name)
    return model


def convert_checkpoint(obj: Any, source: str, model_name: Optional[str] = None,
                       class_names: Optional[Sequence[str]] = None) -> Conversion:
    """Convert a loaded mmdetection checkpoint (tensors as NumPy arrays).

    Parameters
    ----------
    obj : dict
        What :func:`tools.model_converters.torch_pickle.load_pth` returns.
    source : str
        The file it came from, for messages.
    model_name : str, optional
        One of :data:`~tools.model_converters.mmdet_models.MODELS` (default:
        recognised).
    class_names : sequence of str, optional
        Default: the checkpoint's meta, else COCO's 80 for an 80-class model.

    Raises
    ------
    ValueError
        Not an mmdetection SSD of a known kind, a config that contradicts the
        model, missing, unused or misshapen parameters, or class names that
        do not fit the class head; the message names the file.
    """
    from symbol import get_model
    from symbol.presets import PRESETS
    from tools.model_converters import mmdet_weights as weights
    from tools.model_converters.classes import class_names_for
    from tools.model_converters.mmdet_models import config_text, read_config_text

    state, meta = split_checkpoint(obj, source)
    old = weights.is_old_style(state)
    if old:
        state = weights.upgrade_ssd_names(state, source)
    arch = weights.recognise({k: tuple(v.shape) for k, v in state.items()}, source)
    text = config_text(meta)
    facts = read_config_text(text) if text is not None else None
    model = _choose_model(arch, facts, model_name, source)

    num_classes = arch.num_classes
    recorded = _meta_classes(meta, source)
    names_from = "given"
    if class_names is None and recorded is not None:
        if len(recorded) != num_classes:
            raise ValueError(f"{source}: its meta lists {len(recorded)} class names but its class head has "
                             f"{num_classes} classes (give the right ones with --class-names)")
        class_names, names_from = recorded, "the checkpoint's"
    elif class_names is None:
        names_from = "default"
    class_names = class_names_for(num_classes, class_names, source)

    test_cfg = model.test_cfg
    if facts is not None and facts.test_cfg is not None:
        test_cfg = facts.test_cfg
        if facts.nms_type not in (None, "nms"):
            raise ValueError(f"{source}: its test_cfg runs {facts.nms_type!r}; only plain 'nms' is converted")
        if test_cfg.min_bbox_size > 0:
            logger.warning("%s: its test_cfg's min_bbox_size %g is not applied",
                           source, test_cfg.min_bbox_size)
    decoding = test_cfg.decoding()

    preset = model.preset
    layout = None if PRESETS[model.network].get(preset.data_shape) == preset else preset.to_dict()
    net = get_model(model.network, preset.data_shape, num_classes, layout=layout, preprocess=preset.preprocess,
                    decoding=decoding)
    params = net._collect_params_with_prefix()
    mapping = weights.parameter_map(model, list(params), num_classes)
    weights.apply_weights(params, mapping, state, source)
    net.set_nms(decoding)

    saved = [f"{tool} {meta[key]}" for tool, key in (("mmdetection", "mmdet_version"), ("mmengine", "mmengine_version"))
             if isinstance(meta.get(key), str)]
    pre = preset.preprocess
    lines = [f"model: mmdetection's {model.name} ({model.title}"
             f"{', saved by ' + ' and '.join(saved) if saved else ''})"
             f"{', names upgraded from before mmdetection 2.14' if old else ''}",
             f"network: {model.network} at {preset.data_shape}, {num_classes} classes ({names_from} names)",
             f"input: RGB minus ({', '.join(f'{v:g}' for v in pre.mean)})"
             + (f", divided by ({', '.join(f'{v:g}' for v in pre.std)})" if set(pre.std) != {1.0} else ""),
             f"layout: {'its own (mmdetection truncated prior sizes)' if layout else 'the preset table'}",
             f"decoding: score > {decoding.thresh:g}, the best {decoding.nms_topk} per level, class-aware NMS "
             f"{decoding.nms_thresh:g}, {decoding.keep_topk} per image",
             f"parameters: {len(mapping)} converted"]
    return Conversion(net, model, list(class_names), layout, lines)


def convert(path: str, model_name: Optional[str] = None, class_names: Optional[Sequence[str]] = None) -> Conversion:
    """Read an mmdetection ``.pth`` file and convert it (see :func:`convert_checkpoint`).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a PyTorch checkpoint this project reads, or any problem
        :func:`convert_checkpoint` finds.
    """
    from tools.model_converters.torch_pickle import load_pth

    return convert_checkpoint(load_pth(path, skip_foreign=True), path, model_name, class_names)


def build_parser() -> ArgumentParser:
    from tools.model_converters.mmdet_models import MODELS

    p = ArgumentParser(prog=PROG, description="Convert an mmdetection SSD checkpoint (.pth) into this "
                                              "project's checkpoint.")
    p.add_argument("checkpoint", help="mmdetection's checkpoint, e.g. ssd300_coco_20210803_015428-d231a06e.pth")
    p.add_argument("out_prefix", help="output: OUT_PREFIX-0000.params and OUT_PREFIX-config.json")
    p.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="which of mmdetection's SSDs it is (default: recognised from the checkpoint)")
    p.add_argument("--class-names", default=None,
                   help="a,b,c or a file with one name per line (default: the checkpoint's, else COCO's 80)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Convert; returns the exit status (0 ok, 1 on any error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        class_names = parse_class_names(args.class_names)
        if not os.path.isfile(args.checkpoint):
            raise UsageError(f"no such file: {args.checkpoint}")
    except UsageError as err:
        print_error(PROG, err)
        return 1
    log_to_stderr(args.log_level)
    return write_conversion(PROG, lambda: convert(args.checkpoint, args.model, class_names), args.out_prefix)


if __name__ == "__main__":
    sys.exit(main())
