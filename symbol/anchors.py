"""Prior (anchor) boxes: derived from a preset, generated in the graph by MultiBoxPrior.

MultiBoxPrior emits, for every feature-map location in row-major order, one
box per ``sizes[i]`` with ratio 1 and then one box per ``ratios[j]`` (j >= 1)
with ``sizes[0]``. With ``sizes = (min, sqrt(min * max))`` and
``ratios = (1, r1, 1/r1, r2, 1/r2, ...)`` that is exactly Caffe PriorBox's
order: min, sqrt(min * max), then each ratio and its flip. Boxes are corners
``(xmin, ymin, xmax, ymax)`` normalized to the input image, not clipped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from mxnet.gluon import HybridBlock

from .presets import Preset

__all__ = ["AnchorSpec", "anchor_specs", "AnchorGenerator"]


@dataclass(frozen=True)
class AnchorSpec:
    """MultiBoxPrior arguments of one source layer (all normalized to the input)."""

    sizes: tuple[float, ...]
    ratios: tuple[float, ...]
    step: Optional[float]
    offset: float

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map location."""
        return len(self.sizes) + len(self.ratios) - 1


def anchor_specs(preset: Preset, data_shape: int) -> list[AnchorSpec]:
    """Per-source MultiBoxPrior settings for ``preset`` at input size ``data_shape``.

    Sizes are fractions of the input (the preset's own ``sizes``, or its
    pixel ``min_sizes`` / ``max_sizes`` divided by its ``data_shape``), so they
    scale with it. The preset's
    pixel steps hold only at the preset's own size; at any other size the
    step is the input size divided by the feature-map size (MultiBoxPrior's
    default), which is what the steps approximate.
    """
    side = float(preset.data_shape)
    specs = []
    for i in range(preset.num_sources):
        if preset.sizes is not None:
            sizes = tuple(float(s) for s in preset.sizes[i])
        else:
            lo, hi = preset.min_sizes[i], preset.max_sizes[i]
            sizes = (lo / side,) if hi is None else (lo / side, math.sqrt(lo * hi) / side)
        ratios = [1.0]
        for r in preset.ratios[i]:
            ratios += [float(r), 1.0 / r]
        step = None
        if preset.steps is not None and data_shape == preset.data_shape:
            step = preset.steps[i] / side
        specs.append(AnchorSpec(sizes=sizes, ratios=tuple(ratios), step=step, offset=preset.offset))
    return specs


class AnchorGenerator(HybridBlock):
    """Priors for one source layer: ``(1, H * W * num_anchors, 4)`` corner boxes.

    Parameters
    ----------
    spec : AnchorSpec
        Sizes, ratios, step and offset for this layer.
    """

    def __init__(self, spec: AnchorSpec, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        step = -1.0 if spec.step is None else spec.step
        self._kwargs = dict(sizes=spec.sizes, ratios=spec.ratios, steps=(step, step),
                            offsets=(spec.offset, spec.offset), clip=False)

    def hybrid_forward(self, F, feature):
        """``feature``: (B, C, H, W) -> anchors (1, H * W * A, 4)."""
        return F.contrib.MultiBoxPrior(feature, **self._kwargs)
