"""Convert one of mxnet-ssd's released models into this project's checkpoint.

    python -m tools.model_converters.mxnet_ssd PREFIX EPOCH OUT_PREFIX [--class-names a,b,...|FILE]
                                               [--data-shape N]
    python -m tools.model_converters.mxnet_ssd model/ssd_300 0 model/vgg16_ssd_300

mxnet-ssd (zhreshold/mxnet-ssd) released four VOC models as
``PREFIX-symbol.json`` + ``PREFIX-EPOCH.params``: VGG16-reduced SSD300 and
SSD512, ResNet-50 SSD512 and Inception-v3 SSD512. The network is recognised
from the parameter names and shapes; the symbol gives the extra layers, the
priors and the decoding settings, and every layer's arguments are checked
against the network built for them (see :mod:`.mxnet_ssd_checks`). The result
is ``OUT_PREFIX-0000.params`` + ``OUT_PREFIX-config.json``, which ``demo.py``,
``evaluate.py``, ``train.py --finetune`` and ``net.export`` read like any
checkpoint of this project: mxnet-ssd's input (RGB minus 123, 117, 104) is its
preprocessing, MultiBoxDetection's settings its decoding, and priors that are
not the preset table's (the VGG16 models' rounded sizes) its ``layout``.

Nothing is written unless everything checks out; any problem is one line on
stderr naming the file, and exit status 1.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from tools.cli import (ArgumentParser, UsageError, log_to_stderr, non_negative_int, number,
                       parse_class_names, print_error)
from tools.model_converters.conversion import Conversion, write_conversion

if TYPE_CHECKING:
    from symbol.presets import Preset

__all__ = ["Conversion", "convert", "main"]

PROG = "mxnet_ssd"
logger = logging.getLogger(__name__)

#: Input size of each released model, by network and number of sources.
NATIVE_SHAPES = {("vgg16_reduced", 6): 300, ("vgg16_reduced", 7): 512, ("resnet50_v2", 6): 512,
                 ("inceptionv3", 6): 512}
BACKBONE_SOURCES = 2


def _anchor_key(preset: "Preset", field: str) -> tuple:
    """One prior property of every source of ``preset`` at its own size, in single precision."""
    from symbol.anchors import anchor_specs
    from tools.model_converters.symbol_json import single

    specs = anchor_specs(preset, preset.data_shape)
    get = {"sizes": lambda a: tuple(map(single, a.sizes)), "ratios": lambda a: tuple(map(single, a.ratios)),
           "steps": lambda a: None if a.step is None else single(a.step), "offset": lambda a: single(a.offset)}[field]
    return tuple(get(a) for a in specs)


def _differences(preset: "Preset", table: "Preset") -> list[str]:
    """Fields in which ``preset`` gives another network than ``table``."""
    fields = [f for f in ("sizes", "ratios", "steps", "offset") if _anchor_key(preset, f) != _anchor_key(table, f)]
    if preset.extras != table.extras:
        fields.append("extras")
    if [s is None for s in preset.normalization] != [s is None for s in table.normalization]:
        fields.append("normalization")
    for name in ("sources", "head_kernel", "preprocess"):
        if getattr(preset, name) != getattr(table, name):
            fields.append(name)
    return fields


def convert(symbol_file: str, params_file: str, class_names: Optional[Sequence[str]] = None,
            data_shape: Optional[int] = None) -> Conversion:
    """Convert an mxnet-ssd symbol and params pair.

    Parameters
    ----------
    symbol_file, params_file : str
        ``PREFIX-symbol.json`` and ``PREFIX-EPOCH.params``.
    class_names : sequence of str, optional
        Default: VOC's 20 names (``dataset.voc.VOC_CLASSES``) for a 20-class model.
    data_shape : int, optional
        Input size (default: the model's own, 300 or 512).

    Raises
    ------
    ValueError
        An unknown network, a params file of another model, missing or
        misshapen parameters, unreadable files, a symbol that is not an SSD, or
        any layer that the network would not compute alike; the message names
        the file.
    """
    from symbol import get_model
    from symbol.presets import MXNET_SSD, PRESETS
    from tools.model_converters import mxnet_ssd_checks as checks
    from tools.model_converters import mxnet_ssd_graph as graphs
    from tools.model_converters import mxnet_ssd_weights as weights
    from tools.model_converters.classes import class_names_for
    from tools.model_converters.symbol_json import read_symbol

    detector = graphs.read_detector(read_symbol(symbol_file))
    needed = weights.expected_keys(detector.graph, detector.prediction_nodes())
    from_symbol = weights.recognise(dict.fromkeys(needed), symbol_file)
    arrays = weights.load_params(params_file)
    sig = weights.recognise({k: tuple(v.shape) for k, v in arrays.items()}, params_file)
    if sig.network != from_symbol.network:
        raise ValueError(f"{params_file} holds mxnet-ssd's {sig.title} but {symbol_file} is its "
                         f"{from_symbol.title}: not a pair")
    missing = sorted(set(needed) - set(arrays))
    if missing:
        raise ValueError(f"{params_file} is missing {len(missing)} parameter(s) that {symbol_file} uses: "
                         f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    weights.check_conv_shapes(detector.graph, detector.prediction_nodes(), arrays, params_file)
    unused = sorted(set(arrays) - set(needed))
    if unused:
        logger.warning("%s: ignoring %d parameter(s) the symbol does not use: %s", params_file, len(unused),
                       ", ".join(unused[:6]))

    for source, want in zip(detector.sources, sig.sources):
        feature = source.feature
        if feature.name != want and want not in (n.name for n in detector.graph.inputs(feature)):
            raise ValueError(f"{symbol_file}: the detector's sources start at {feature.name!r}, not at mxnet-ssd's "
                             f"{want!r}: not a released {sig.title}")
    native = NATIVE_SHAPES.get((sig.network, len(detector.sources)))
    if native is None:
        raise ValueError(f"{symbol_file}: a {sig.title} with {len(detector.sources)} sources is not one of "
                         f"mxnet-ssd's released models")
    side = data_shape or native
    extras = graphs.extra_layers(detector, BACKBONE_SOURCES)
    # The symbol's priors at the converted size: fixed steps stay what they are, as in mxnet-ssd.
    preset = graphs.layout_preset(detector, sig.source_names, extras, side, MXNET_SSD)
    table = PRESETS[sig.network].get(native)
    differs = _differences(preset, table) if table is not None else ["everything"]
    layout = None
    if differs:
        layout = preset.to_dict()
        logger.info("%s: recording the model's own layout (%s differ from the preset table)", symbol_file,
                    ", ".join(differs))
    if side != native and preset.steps is not None:
        logger.warning("%s: the symbol's prior steps, made for a %d input, are kept at %d (as mxnet-ssd would "
                       "run it)", symbol_file, native, side)

    num_classes = detector.num_classes
    class_names = class_names_for(num_classes, class_names, symbol_file)

    sizes = checks.source_sizes(detector, side)
    num_priors = sum(h * w * s.prior.num_anchors for s, (h, w) in zip(detector.sources, sizes))
    decoding = graphs.decoding_settings(detector, num_priors)
    try:
        net = get_model(sig.network, side, num_classes, layout=layout, preprocess=MXNET_SSD, **decoding)
    except ValueError as err:
        raise ValueError(f"{symbol_file}: {err}") from None
    params = net._collect_params_with_prefix()
    mapping = weights.parameter_map(sig.network, list(params), detector, extras)
    lines = checks.check_network(detector, net, mapping, side, BACKBONE_SOURCES)
    fixed = checks.fixed_gammas(net)
    weights.apply_weights(params, mapping, arrays, params_file, fixed)

    own = f"its own ({', '.join(differs)} differ from the preset table)"
    lines = [f"network: {sig.network} (mxnet-ssd's {sig.title}) at {side}, {num_classes} classes",
             *lines,
             f"layout: {own if layout is not None else 'the preset table'}",
             f"decoding: MultiBoxDetection, nms {decoding['nms_thresh']:g} over the top {decoding['nms_topk']}, "
             f"threshold {decoding['thresh']:g}, force_suppress {decoding['force_suppress']}",
             f"parameters: {len(mapping)} converted ({len(fixed & set(mapping))} fixed BatchNorm gammas set to 1)"]
    return Conversion(net, sig.network, list(class_names), layout, lines)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Convert an mxnet-ssd model (PREFIX-symbol.json + PREFIX-EPOCH.params) "
                                              "into this project's checkpoint.")
    p.add_argument("prefix", help="mxnet-ssd's model prefix: PREFIX-symbol.json and PREFIX-EPOCH.params")
    p.add_argument("epoch", type=non_negative_int, help="the epoch of PREFIX-EPOCH.params")
    p.add_argument("out_prefix", help="output: OUT_PREFIX-0000.params and OUT_PREFIX-config.json")
    p.add_argument("--class-names", default=None,
                   help="a,b,c or a file with one name per line (default: VOC's 20 names)")
    p.add_argument("--data-shape", type=number(int, 32), default=None,
                   help="input size (default: the model's, 300 or 512)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Convert; returns the exit status (0 ok, 1 on any error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        class_names = parse_class_names(args.class_names)
        files = [f"{args.prefix}-symbol.json", f"{args.prefix}-{args.epoch:04d}.params"]
        for path in files:
            if not os.path.isfile(path):
                raise UsageError(f"no such file: {path}")
    except UsageError as err:
        print_error(PROG, err)
        return 1
    log_to_stderr(args.log_level)
    return write_conversion(PROG, lambda: convert(*files, class_names=class_names, data_shape=args.data_shape), args.out_prefix)


if __name__ == "__main__":
    sys.exit(main())
