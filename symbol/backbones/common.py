"""Helpers shared by the backbone builders."""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import mxnet as mx
from mxnet.gluon import Block, HybridBlock, nn

__all__ = ["load_base", "FeatureStages", "slice_sources", "reject_options", "zoo_backbone"]


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


class FeatureStages(HybridBlock):
    """Consecutive slices of a network's layers, returning the output of each slice.

    The backbones cut out of a model-zoo classifier: slice ``i`` runs from the
    end of slice ``i - 1`` to the source layer ``i``, so the outputs are the
    source feature maps in order.

    Parameters
    ----------
    stages : sequence of sequence of HybridBlock
        The layers of each slice, in order (existing blocks, parameters shared).
    source_channels : sequence of int
        Channels of each slice's output.
    """

    def __init__(self, stages: Sequence[Sequence[HybridBlock]], source_channels: Sequence[int],
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if len(stages) != len(source_channels):
            raise ValueError(f"{len(stages)} stages but {len(source_channels)} source channel counts")
        self.source_channels = tuple(int(c) for c in source_channels)
        with self.name_scope():
            self.stages = nn.HybridSequential(prefix="")
            for layers in stages:
                stage = nn.HybridSequential(prefix="")
                stage.add(*layers)
                self.stages.add(stage)

    def hybrid_forward(self, F, x):
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def slice_sources(layers: Sequence[HybridBlock], sources: Sequence[str],
                  table: Mapping[str, tuple[int, int]], network: str) -> FeatureStages:
    """Cut ``layers`` (a classifier's ``features``) after each source layer.

    Parameters
    ----------
    layers : sequence of HybridBlock
        The classifier's feature layers in order.
    sources : sequence of str
        Source names in network order (a preset's ``sources``).
    table : mapping
        Source name -> (index in ``layers`` just after that source, channels).
    network : str
        Name for error messages.

    Raises
    ------
    ValueError
        Unknown source names (the message lists the valid ones), or sources not
        in network order.
    """
    unknown = [s for s in sources if s not in table]
    if unknown:
        raise ValueError(f"unknown {network} source layers {unknown}; valid: {sorted(table)}")
    ends = [table[s][0] for s in sources]
    if not ends or any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(f"{network} sources must be distinct and in network order, got {list(sources)}")
    layers = list(layers)
    starts = [0] + ends[:-1]
    return FeatureStages([layers[a:b] for a, b in zip(starts, ends)], [table[s][1] for s in sources])


def reject_options(network: str, kwargs: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming any backbone options ``network`` does not take."""
    if kwargs:
        raise ValueError(f"{network} got unknown backbone options {sorted(kwargs)}")


def zoo_backbone(classifier: HybridBlock, sources: Sequence[str], table: Mapping[str, tuple[int, int]],
                 network: str, pretrained_base: Optional[str] = None,
                 ctx: Optional[mx.Context] = None) -> FeatureStages:
    """Cut a model-zoo classifier's ``features`` into SSD sources.

    ``pretrained_base``, when given, is loaded into the whole classifier first
    (the zoo's own ``.params`` format); see :func:`slice_sources` for the rest.
    """
    if pretrained_base:
        load_base(classifier, pretrained_base, ctx)
    return slice_sources(classifier.features, sources, table, network)
