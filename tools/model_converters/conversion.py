"""What the model converters share: the converted model, reading MXNet params
files, and writing the result as the command lines do."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from common.fileio import PathLike
from tools.cli import print_error

if TYPE_CHECKING:
    import mxnet as mx

    from symbol.ssd import SSD

__all__ = ["Conversion", "load_named_params", "write_conversion"]


@dataclass
class Conversion:
    """A converted model, ready for :func:`symbol.checkpoint.save_checkpoint`.

    Attributes
    ----------
    net : SSD
        The network with the converted weights and the source's decoding.
    model : object
        What the source model is: a network name (mxnet-ssd), an
        :class:`~.mmdet_models.MmdetModel` or a :class:`~.gluoncv_zoo.ZooModel`.
    class_names : list of str
    layout : dict or None
        The layout recorded in the checkpoint (None: the preset table's).
    lines : list of str
        A summary for the user.
    """

    net: "SSD"
    model: Any
    class_names: list[str]
    layout: Optional[dict]
    lines: list[str]


def load_named_params(path: PathLike, kind: str) -> dict[str, "mx.nd.NDArray"]:
    """The named arrays of an MXNet ``.params`` file (``mx.nd.save`` of a dict).

    Parameters
    ----------
    kind : str
        What the file should be, for messages (``"a GluonCV params file"``).

    Raises
    ------
    ValueError
        Unreadable, damaged or truncated, or a file of unnamed arrays.
    """
    import mxnet as mx

    name = os.fspath(path)
    try:
        loaded = mx.nd.load(name)
    except mx.base.MXNetError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        raise ValueError(f"cannot read params file {name}: {lines[-1].strip() if lines else 'MXNetError'}; "
                         f"not an MXNet .params file, or damaged (truncated?)") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ValueError(f"{name} is not {kind}: it holds "
                         f"{'nothing' if not loaded else 'an unnamed list of arrays'}")
    return loaded


def write_conversion(prog: str, convert: Callable[[], Conversion], out_prefix: str, epoch: int = 0) -> int:
    """Run ``convert()`` and save its result as ``OUT_PREFIX-EPOCH.params`` + ``-config.json``.

    Prints the conversion's summary and what was written; any error is one
    line on stderr (``PROG: error: ...``) and nothing is written.

    Returns
    -------
    int
        The exit status: 0, or 1 on an error.
    """
    try:
        from symbol.checkpoint import save_checkpoint

        result = convert()
        written = save_checkpoint(result.net, out_prefix, epoch, result.class_names)
    except (ValueError, FileNotFoundError, OSError) as err:
        print_error(prog, err)
        return 1
    for line in result.lines + [f"wrote {written[0]} and {written[1]}"]:
        print(line)
    return 0
