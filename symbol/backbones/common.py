"""Helpers shared by the backbone builders."""
from __future__ import annotations

import os
from typing import Optional

import mxnet as mx
from mxnet.gluon import Block

__all__ = ["load_base"]


def load_base(block: Block, path: str, ctx: Optional[mx.Context] = None) -> None:
    """Load ImageNet weights from a local ``.params`` file into ``block``.

    Extra entries in the file (a classifier's output layer) are ignored; a
    missing or mismatched entry is an error naming the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained base weights not found: {path}")
    try:
        block.load_parameters(path, ctx=ctx or mx.cpu(), ignore_extra=True)
    except (AssertionError, mx.base.MXNetError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} does not hold weights for {type(block).__name__}: {first}") from None
