"""Where to run: a context that exists, or a one-line reason why not."""
from __future__ import annotations

from typing import Optional

import mxnet as mx

__all__ = ["resolve_context"]


def resolve_context(gpu: Optional[int] = None) -> mx.Context:
    """``mx.gpu(gpu)``, or ``mx.cpu()`` when ``gpu`` is None, checked to exist.

    Raises
    ------
    RuntimeError
        A GPU was asked for but MXNet is a CPU-only build (install
        ``mxnet-cu112``), or there is no GPU with that index.
    ValueError
        A negative index.
    """
    if gpu is None:
        return mx.cpu()
    if gpu < 0:
        raise ValueError(f"GPU index must be non-negative, got {gpu}")
    if not mx.runtime.Features().is_enabled("CUDA"):
        raise RuntimeError(f"GPU {gpu} requested but this MXNet ({mx.__version__}) is a CPU-only build; "
                           f"install mxnet-cu112=={mx.__version__} (CUDA 11.2) in place of mxnet, "
                           f"or run on the CPU")
    try:
        count = mx.context.num_gpus()
    except mx.base.MXNetError as err:
        raise RuntimeError(f"GPU {gpu} requested but CUDA is not usable: "
                           f"{str(err).strip().splitlines()[0]}") from None
    if gpu >= count:
        raise RuntimeError(f"GPU {gpu} requested but {count} GPU(s) are visible")
    return mx.gpu(gpu)
