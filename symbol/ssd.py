"""The SSD detector: backbone sources, extra layers, prediction heads, priors, decoding.

One hybridizable block serves training and inference:

- under ``autograd.is_training()`` it returns the raw predictions
  ``(cls_preds, box_preds, anchors)`` for MultiBoxTarget and the loss;
- otherwise it decodes with MultiBoxDetection, runs NMS in the graph and
  returns ``(B, keep_topk, 6)`` detections.
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import HybridBlock, nn

from .anchors import AnchorGenerator, AnchorSpec
from .detection import VARIANCES, DecodeConfig, DetectionOutput
from .layers import Identity, L2Normalization, Preprocess, conv_block, separable_conv
from .presets import ExtraLayer, Preprocessing

__all__ = ["SSD", "SSDBase"]

logger = logging.getLogger(__name__)

EXTRA_STYLES = ("plain", "bn", "ssdlite")
#: mmdetection's SSDLite BatchNorm: eps 1e-3, momentum 0.03 in PyTorch's convention.
SSDLITE_BN = dict(bn_eps=1e-3, bn_momentum=0.97)
HEAD_STYLES = ("conv", "separable")


def _extra_layer(spec: ExtraLayer, style: str, in_channels: int) -> nn.HybridSequential:
    """1x1 reduction then the strided conv, in one of three styles:
    ``plain`` conv + bias + ReLU (Caffe, mxnet-ssd), ``bn`` conv + BN + ReLU
    (GluonCV), ``ssdlite`` 1x1 + depthwise-separable with BN (eps 1e-3) and ReLU6."""
    block = nn.HybridSequential(prefix="")
    if style == "ssdlite":
        block.add(conv_block(spec.mid, 1, in_channels=in_channels, batch_norm=True, act="relu6",
                             **SSDLITE_BN))
        block.add(separable_conv(spec.mid, spec.out, spec.stride, act="relu6", **SSDLITE_BN))
        return block
    bn = style == "bn"
    block.add(conv_block(spec.mid, 1, in_channels=in_channels, batch_norm=bn))
    block.add(conv_block(spec.out, spec.kernel, spec.stride, spec.pad, in_channels=spec.mid,
                         batch_norm=bn))
    return block


def _head(in_channels: int, out_channels: int, style: str, kernel: int) -> HybridBlock:
    if style == "separable":
        return separable_conv(in_channels, out_channels, act="relu6", pointwise_act=False, **SSDLITE_BN)
    return nn.Conv2D(out_channels, kernel, padding=kernel // 2, in_channels=in_channels)


class SSDBase(HybridBlock):
    """What every SSD of the project shares, whatever computes its predictions.

    A subclass builds its layers and implements :meth:`_predict`, which maps
    the preprocessed image to the raw predictions. This class switches between
    the two modes (under ``autograd.is_training()`` the raw predictions, else
    the decoded detections), owns the in-graph input normalization and the
    decoding (:class:`DetectionOutput`), and exports the inference graph.

    Parameters
    ----------
    num_classes : int
        Foreground classes; the class predictions have ``num_classes + 1``
        entries with background at index 0.
    data_shape : int
        Input side length the network was laid out for (used by :meth:`export`).
    preprocess : Preprocessing
        In-graph input normalization.
    decoding : DecodeConfig, optional
        Decoding defaults (:class:`DecodeConfig`'s when omitted).
    nms_thresh, nms_topk, keep_topk, thresh, force_suppress, nms_mode
        Single decoding settings, applied over ``decoding``.
    variances : four floats
        The box coder's variances (training targets and decoding).

    Attributes
    ----------
    class_head_prefixes : tuple of str
        Structural parameter-name prefixes of the per-class weights (what
        fine-tuning to other classes re-initializes).
    """

    class_head_prefixes: tuple[str, ...] = ("class_heads.",)

    def __init__(self, num_classes: int, data_shape: int, preprocess: Preprocessing, *,
                 decoding: Optional[DecodeConfig] = None, variances: Sequence[float] = VARIANCES,
                 **kwargs) -> None:
        settings = {k: kwargs.pop(k) for k in DecodeConfig.names() if k in kwargs}
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.data_shape = int(data_shape)
        self._traced_training: Optional[bool] = None
        with self.name_scope():
            self.detector = DetectionOutput(decoding, num_classes=num_classes, variances=variances, **settings)
            self.preprocess = Preprocess(preprocess)

    @property
    def variances(self) -> tuple[float, float, float, float]:
        """The box coder's variances (center x, center y, width, height)."""
        return self.detector.variances

    def _predict(self, F, x, levels: bool = False):
        """The raw predictions ``(cls_preds, box_preds, anchors)`` of input ``x`` (RGB 0..255,
        not yet preprocessed), as :class:`SSD` documents them; with ``levels`` also the
        (1, N) feature level of every anchor, for networks that know them."""
        raise NotImplementedError

    # ------------------------------------------------------------------ decoding
    def set_nms(self, decoding: Optional[DecodeConfig] = None, **settings: Any) -> None:
        """Set the inference-mode decoding (see :class:`DetectionOutput`).

        As GluonCV's ``set_nms``: the settings not given take
        :class:`DecodeConfig`'s defaults (or ``decoding``'s, when given), not
        the current ones. Invalid values raise ``ValueError`` and change
        nothing. The cached graph is cleared, so the next call rebuilds it.
        """
        decoding = (decoding or DecodeConfig()).replace(**settings)
        if decoding.nms_mode == "mmdet" and not self.detector.num_levels:
            raise ValueError(f"nms_mode 'mmdet' decodes feature level by level, and {type(self).__name__} does "
                             f"not know its priors' levels (a network built from a preset does)")
        self.detector.configure(decoding)
        self._clear_cached_op()

    @property
    def decoding(self) -> DecodeConfig:
        """The current decoding settings."""
        return self.detector.decoding

    @property
    def nms_config(self) -> dict:
        """The decoding settings as keyword arguments of :meth:`set_nms`."""
        return self.detector.config

    # ------------------------------------------------------------------ graph
    def forward(self, x, *args):
        # The traced graph depends on autograd's training flag: rebuild it when
        # the flag differs from the one it was traced with.
        if isinstance(x, mx.nd.NDArray):
            training = autograd.is_training()
            if self._active and self._traced_training is not None and self._traced_training != training:
                self._clear_cached_op()
            self._traced_training = training
        return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        if autograd.is_training():
            return self._predict(F, x)
        if self.detector.nms_mode == "mmdet":  # decodes level by level
            return self.detector(*self._predict(F, x, levels=True))
        return self.detector(*self._predict(F, x))

    def raw_predictions(self, x: mx.nd.NDArray):
        """The training-mode outputs ``(cls_preds, box_preds, anchors)``, computed
        imperatively in the current autograd mode: under ``predict_mode`` batch
        norm uses its running statistics (a validation loss), nothing is cached."""
        return self._predict(mx.nd, x)

    def export(self, path: str, epoch: int = 0, remove_amp_cast: bool = True) -> None:
        """Write ``path-symbol.json`` and ``path-EPOCH.params`` of the inference graph.

        The files load with ``mx.gluon.SymbolBlock.imports(json, ['data'], params)``
        and need none of this project's code.
        """
        if not self._active:
            self.hybridize()
        # Run once in inference mode unless a hybridized inference call already
        # built the cached op (a graph traced only for shape inference has no
        # parameters attached, and a training graph has no decoding).
        if not self._cached_graph or self._cached_op is None or self._traced_training:
            self._clear_cached_op()
            side = self.data_shape
            with autograd.predict_mode():
                self(mx.nd.zeros((1, 3, side, side), ctx=self._param_ctx()))
        super().export(path, epoch, remove_amp_cast=remove_amp_cast)

    # ------------------------------------------------------------------ helpers
    def _param_ctx(self) -> mx.Context:
        for p in self.collect_params().values():
            try:
                return p.list_ctx()[0]
            except Exception:  # uninitialized parameter
                continue
        return mx.cpu()


class SSD(SSDBase):
    """Single Shot MultiBox Detector built from a preset: backbone, extras, heads, priors.

    Parameters
    ----------
    backbone : HybridBlock
        Maps the preprocessed image to a list of source feature maps; must
        expose ``source_channels`` (channels of each map).
    extras : sequence of ExtraLayer
        Layers appended after the last backbone source, each a further source.
    anchors : sequence of AnchorSpec
        One per source (backbone sources then extras).
    data_shape : int
        Input side length the anchors were laid out for (used by :meth:`export`).
    num_classes : int
        Foreground classes; the class predictions have ``num_classes + 1``
        entries with background at index 0.
    preprocess : Preprocessing
        In-graph input normalization.
    normalization : sequence of float or None
        Initial L2-normalization scale per source (None: no normalization).
    extra_style : {'plain', 'bn', 'ssdlite'}
    head_style : {'conv', 'separable'}
    head_kernel : int
        Kernel of the ``conv`` heads.
    **kwargs
        Decoding defaults and variances, see :class:`SSDBase`.

    Input
    -----
    ``(B, 3, H, W)`` float RGB pixel values in 0..255.

    Output
    ------
    Training: ``cls_preds (B, N, num_classes + 1)``, ``box_preds (B, N * 4)``
    (Caffe's (dx, dy, dw, dh) encoding per anchor), ``anchors (1, N, 4)``
    (normalized corners). Inference: ``(B, keep_topk, 6)`` rows
    ``[class_id, score, xmin, ymin, xmax, ymax]``, normalized corners, sorted by
    score, ``class_id`` -1 for empty rows.
    """

    def __init__(self, backbone: HybridBlock, extras: Sequence[ExtraLayer], anchors: Sequence[AnchorSpec],
                 num_classes: int, data_shape: int, preprocess: Preprocessing,
                 normalization: Sequence[Optional[float]], *, extra_style: str = "plain",
                 head_style: str = "conv", head_kernel: int = 3, **kwargs) -> None:
        super().__init__(num_classes, data_shape, preprocess, **kwargs)
        if extra_style not in EXTRA_STYLES:
            raise ValueError(f"extra_style must be one of {EXTRA_STYLES}, got {extra_style!r}")
        if head_style not in HEAD_STYLES:
            raise ValueError(f"head_style must be one of {HEAD_STYLES}, got {head_style!r}")
        channels = list(backbone.source_channels) + [e.out for e in extras]
        if not len(channels) == len(anchors) == len(normalization):
            raise ValueError(f"{len(channels)} sources but {len(anchors)} anchor specs and "
                             f"{len(normalization)} normalization entries")
        self.anchor_specs = tuple(anchors)
        with self.name_scope():
            self.backbone = backbone
            self.extras = nn.HybridSequential()
            for i, spec in enumerate(extras):
                self.extras.add(_extra_layer(spec, extra_style, channels[len(backbone.source_channels) + i - 1]))
            self.norms = nn.HybridSequential()
            for c, scale in zip(channels, normalization):
                self.norms.add(L2Normalization(c, scale) if scale is not None else Identity())
            self.class_heads = nn.HybridSequential()
            self.box_heads = nn.HybridSequential()
            self.anchor_generators = nn.HybridSequential()
            for c, spec in zip(channels, anchors):
                self.class_heads.add(_head(c, spec.num_anchors * (num_classes + 1), head_style, head_kernel))
                self.box_heads.add(_head(c, spec.num_anchors * 4, head_style, head_kernel))
                self.anchor_generators.add(AnchorGenerator(spec))
        self.detector.num_levels = len(anchors)

    def _predict(self, F, x, levels: bool = False):
        x = self.preprocess(x)
        sources = list(self.backbone(x))
        for extra in self.extras:
            sources.append(extra(sources[-1]))
        cls_preds, box_preds, anchors = [], [], []
        for feat, norm, cls_head, box_head, gen in zip(sources, self.norms, self.class_heads,
                                                        self.box_heads, self.anchor_generators):
            feat = norm(feat)
            cls_preds.append(F.flatten(F.transpose(cls_head(feat), axes=(0, 2, 3, 1))))
            box_preds.append(F.flatten(F.transpose(box_head(feat), axes=(0, 2, 3, 1))))
            anchors.append(gen(feat))
        cls_preds = F.reshape(F.concat(*cls_preds, dim=1), shape=(0, -1, self.num_classes + 1))
        out = cls_preds, F.concat(*box_preds, dim=1), F.concat(*anchors, dim=1)
        if levels:
            ids = [F.zeros_like(F.slice_axis(a, axis=2, begin=0, end=1)) + i for i, a in enumerate(anchors)]
            out += (F.reshape(F.concat(*ids, dim=1), shape=(1, -1)),)
        return out
