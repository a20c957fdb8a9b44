"""Convert one of GluonCV's SSD model-zoo ``.params`` files into this project's checkpoint.

    python -m tools.model_converters.gluoncv MODEL_NAME PARAMS OUT_PREFIX [--class-names a,b,...|FILE]
                                            [--epoch N]
    python -m tools.model_converters.gluoncv ssd_512_resnet50_v1_voc \\
        ~/.mxnet/models/ssd_512_resnet50_v1_voc-9c8b225a.params model/resnet50_ssd_512

``MODEL_NAME`` is GluonCV's zoo name (``gluoncv.model_zoo.get_model``):
``ssd_300_vgg16_atrous``, ``ssd_512_vgg16_atrous``, ``ssd_512_resnet50_v1``
and ``ssd_512_mobilenet1.0``, each ``_voc``, ``_coco`` or ``_custom`` (a
model of one's own classes, whose names ``--class-names`` gives). The
network is this project's preset of that name and size (``vgg16_reduced``,
``resnet50``, ``mobilenet``); where GluonCV's priors or extra layers are not
the preset table's (the VGG16 models' sizes, the COCO ResNet's), the
checkpoint records the model's own layout. GluonCV's input (ImageNet-normalized
RGB, times ``init_scale`` for VGG16) is its preprocessing, and GluonCV's
decoding (per-class scores over 0.01, the best 400 over all classes,
class-aware NMS at 0.45, 100 kept) its decoding settings. The anchors stored
in the file are checked against the network's.

The result is ``OUT_PREFIX-EPOCH.params`` + ``OUT_PREFIX-config.json``, which
``demo.py``, ``evaluate.py``, ``train.py --finetune`` and ``net.export`` read
like any checkpoint of this project. Nothing is written unless everything
checks out; any problem is one line on stderr naming the file, and exit status 1.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from tools.cli import ArgumentParser, UsageError, log_to_stderr, non_negative_int, parse_class_names, print_error
from tools.model_converters.conversion import Conversion, write_conversion

if TYPE_CHECKING:
    import numpy as np

    from common.decoding import DecodeConfig
    from symbol.ssd import SSD

    from .gluoncv_zoo import ZooModel

__all__ = ["Conversion", "convert", "gluoncv_decoding", "main"]

PROG = "gluoncv"
logger = logging.getLogger(__name__)


def gluoncv_decoding() -> "DecodeConfig":
    """GluonCV's SSD decoding: ``MultiPerClassDecoder(thresh=0.01)``, then one ``box_nms``
    (``nms_topk`` 400 over all classes, class-aware at 0.45) and ``post_nms`` 100."""
    from common.decoding import DecodeConfig

    return DecodeConfig(nms_mode="gluoncv", thresh=0.01, nms_thresh=0.45, nms_topk=400, keep_topk=100,
                        force_suppress=False)


def _class_names(model: "ZooModel", count: int, given: Optional[Sequence[str]], path: str) -> list[str]:
    """The user's names checked against the model's ``count`` classes, else the zoo name's."""
    from dataset.coco import COCO_CLASSES
    from dataset.voc import VOC_CLASSES
    from tools.model_converters.classes import class_names_for

    if given is not None:
        return class_names_for(count, given, path)
    if model.dataset == "custom":
        raise ValueError(f"{path} is a {model.name} model of {count} classes of its own: give their names "
                         f"with --class-names (a list or a file)")
    names, dataset = (VOC_CLASSES, "VOC") if model.dataset == "voc" else (COCO_CLASSES, "COCO")
    if count != len(names):
        raise ValueError(f"{path} detects {count} classes, not {dataset}'s {len(names)} as {model.title} does: "
                         f"a model of other classes? give their names with --class-names")
    return list(names)


def _our_anchors(net: "SSD", side: int) -> list["np.ndarray"]:
    """Per source, the network's anchors at input ``side`` as ``(H, W, A, 4)`` normalized corners."""
    import mxnet as mx
    from mxnet import autograd

    found = []

    def record(block, inputs, output):
        h, w = inputs[0].shape[2:]
        found.append(output.asnumpy().reshape(h, w, -1, 4))

    handles = [gen.register_forward_hook(record) for gen in net.anchor_generators]
    try:
        with autograd.predict_mode():
            net.raw_predictions(mx.nd.zeros((1, 3, side, side)))
    finally:
        for handle in handles:
            handle.detach()
    return found


def convert(model_name: str, params_file: str, class_names: Optional[Sequence[str]] = None) -> Conversion:
    """Convert GluonCV's ``model_name`` saved in ``params_file``.

    Parameters
    ----------
    model_name : str
        GluonCV's zoo name (:func:`tools.model_converters.gluoncv_zoo.supported_names`).
    params_file : str
        The file ``net.save_parameters`` wrote (GluonCV's model-zoo download, or a
        model trained with GluonCV).
    class_names : sequence of str, optional
        Default: VOC's 20 names for ``_voc``, COCO's 80 for ``_coco``; required for ``_custom``.

    Raises
    ------
    ValueError
        An unsupported name (the message lists the supported ones), an
        unreadable or truncated file, a file of another network or model
        (parameters missing, left over or of other shapes, other anchors), or
        class names that do not fit; the message names the file.
    """
    from symbol import get_model
    from tools.model_converters import gluoncv_weights as weights
    from tools.model_converters.gluoncv_zoo import zoo_model

    model = zoo_model(model_name)
    arrays = weights.load_params(params_file)
    count = weights.num_classes(arrays, params_file)
    names = _class_names(model, count, class_names, params_file)
    preprocess = weights.preprocessing(model, arrays, params_file)
    table = model.table_preset()
    differs = model.differences(table) if table is not None else ["everything"]
    layout = model.preset(preprocess).to_dict() if differs else None
    if layout is not None:
        logger.info("%s: recording the model's own layout (%s differ from the preset table)", params_file,
                    ", ".join(differs))
    net = get_model(model.network, model.data_shape, count, layout=layout, preprocess=preprocess)
    net.set_nms(gluoncv_decoding())

    params = net._collect_params_with_prefix()
    mapping = weights.parameter_map(model, params, arrays, params_file)
    carried = weights.apply_weights(net, mapping, arrays)
    worst = weights.check_anchors(_our_anchors(net, model.data_shape), arrays, model.data_shape, model,
                                  params_file)

    vgg = model.base == "vgg16_atrous"
    decoding = net.decoding
    own = f"its own ({', '.join(differs)} differ from the preset table)"
    lines = [f"network: {model.network} ({model.title}) at {model.data_shape}, {count} classes",
             f"layout: {own if layout is not None else 'the preset table'}",
             f"preprocessing: RGB minus ({', '.join(f'{m:g}' for m in preprocess.mean)}), divided by "
             f"({', '.join(f'{s:g}' for s in preprocess.std)}) (GluonCV's ImageNet normalization"
             f"{' times init_scale' if vgg else ''})",
             f"anchors: {model.num_sources} sources equal to the file's (largest difference {worst:.1e} of "
             f"the input side)",
             f"decoding: GluonCV's: per-class scores over {decoding.thresh:g}, the best {decoding.nms_topk} over "
             f"all classes, class-aware NMS at {decoding.nms_thresh:g}, {decoding.keep_topk} kept",
             f"parameters: {len(mapping)} converted, {model.num_sources} anchor grids{' and init_scale' if vgg else ''}"
             f" checked"]
    if carried:
        ours = sorted({str(settings) for settings in carried.values()})
        lines.append(f"batch norms: the extra layers' {len(carried)} ({weights.EXPANDER_BN}, GluonCV's "
                     f"mx.sym.BatchNorm) computed by ours ({', '.join(ours)}) through their gammas, "
                     f"exact at inference")
    return Conversion(net, model, names, layout, lines)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Convert a GluonCV SSD model-zoo .params file into this project's "
                                              "checkpoint.")
    p.add_argument("model_name", help="GluonCV's model-zoo name, e.g. ssd_512_resnet50_v1_voc")
    p.add_argument("params", help="the model's .params file (net.save_parameters)")
    p.add_argument("out_prefix", help="output: OUT_PREFIX-EPOCH.params and OUT_PREFIX-config.json")
    p.add_argument("--class-names", default=None,
                   help="a,b,c or a file with one name per line (default: VOC's 20 names for _voc, COCO's 80 "
                        "for _coco; required for _custom)")
    p.add_argument("--epoch", type=non_negative_int, default=0, help="epoch of the written checkpoint (default 0)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Convert; returns the exit status (0 ok, 1 on any error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        from tools.model_converters.gluoncv_zoo import zoo_model

        try:
            zoo_model(args.model_name)
        except ValueError as err:
            raise UsageError(str(err)) from None
        class_names = parse_class_names(args.class_names)
        if not os.path.isfile(args.params):
            raise UsageError(f"no such file: {args.params}")
    except UsageError as err:
        print_error(PROG, err)
        return 1
    log_to_stderr(args.log_level)
    return write_conversion(PROG, lambda: convert(args.model_name, args.params, class_names=class_names), args.out_prefix, args.epoch)


if __name__ == "__main__":
    sys.exit(main())
