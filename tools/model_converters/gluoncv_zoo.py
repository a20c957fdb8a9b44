"""GluonCV's SSD model-zoo networks, as this project's presets describe them.

Each supported zoo name (``ssd_512_resnet50_v1_voc``, ...) is one
:class:`ZooModel`: the network of this project that computes it and
GluonCV's own layout, read from GluonCV's ``model_zoo/ssd/presets.py``,
``vgg_atrous.py`` and ``nn/feature.py``:

- ``vgg16_atrous`` (SSD300, SSD512): Caffe's VGG16 with fc6/fc7 reduced, the
  sources conv4_3 (L2-normalized, initial scale 20) and fc7, and
  ``vgg_atrous.extra_spec``'s plain extra layers;
- ``resnet50_v1`` and ``mobilenet1.0`` (SSD512): the model-zoo classifier cut
  at ``stage3_activation5`` / ``stage4_activation2`` (``relu22`` / ``relu26``
  for MobileNet), then ``FeatureExpander``'s extra layers (filters 512, 512,
  256, 256; a 1x1 transition as wide as its 3x3 stride-2 conv; BatchNorm).

GluonCV gives prior sizes as one list of ``n + 1`` pixels, source ``i``
taking ``(sizes[i], sizes[i + 1])`` as Caffe's ``(min_size, max_size)``;
its ratios ``[1, 2, 0.5, 3, 1/3]`` are this project's ``(2, 3)`` (each
ratio and its flip) in the same order. The ``_custom`` names (a model of
one's own classes, made with ``ssd_..._custom``) have the layout of the COCO
model GluonCV builds them from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from symbol.presets import ExtraLayer, PRESETS, Preprocessing, Preset

__all__ = ["DATASETS", "ZOO", "ZooModel", "supported_names", "zoo_model"]

_R2 = (2.0,)
_R23 = (2.0, 3.0)

#: The class names a zoo name's suffix stands for (``custom``: the user's).
DATASETS = ("voc", "coco", "custom")


@dataclass(frozen=True)
class ZooModel:
    """One of GluonCV's SSD model-zoo networks.

    Attributes
    ----------
    name : str
        GluonCV's model-zoo name (``gluoncv.model_zoo.get_model``).
    base : str
        GluonCV's base network: ``vgg16_atrous``, ``resnet50_v1`` or ``mobilenet1.0``.
    network : str
        This project's network (:func:`symbol.get_model`).
    data_shape : int
        GluonCV's ``base_size``, the input side the layout is made for.
    dataset : {'voc', 'coco', 'custom'}
        Whose classes the model detects (``custom``: given by the user).
    sources : tuple of str
        This project's names of GluonCV's backbone outputs.
    extras : tuple of ExtraLayer
        GluonCV's extra layers.
    sizes : tuple of float
        GluonCV's ``sizes``, in pixels, one more than there are sources.
    ratios : tuple of tuple of float
        Per source, the aspect ratios besides 1 (each also flipped).
    steps : tuple of float
        GluonCV's ``steps``, in pixels.
    normalization : tuple of float or None
        Initial L2-normalization scale per source (VGG's conv4_3: 20).
    batch_norm : bool
        Whether the extra layers have BatchNorm (``FeatureExpander``'s ``use_bn``).
    """

    name: str
    base: str
    network: str
    data_shape: int
    dataset: str
    sources: tuple[str, ...]
    extras: tuple[ExtraLayer, ...]
    sizes: tuple[float, ...]
    ratios: tuple[tuple[float, ...], ...]
    steps: tuple[float, ...]
    normalization: tuple[Optional[float], ...]
    batch_norm: bool

    @property
    def title(self) -> str:
        """For messages: ``GluonCV's ssd_512_resnet50_v1_voc``."""
        return f"GluonCV's {self.name}"

    @property
    def num_sources(self) -> int:
        return len(self.sources) + len(self.extras)

    def preset(self, preprocess: Preprocessing) -> Preset:
        """The model's layout as a :class:`Preset` (its priors, extra layers and sources)."""
        return Preset(data_shape=self.data_shape, sources=self.sources, extras=self.extras,
                      min_sizes=tuple(float(s) for s in self.sizes[:-1]),
                      max_sizes=tuple(float(s) for s in self.sizes[1:]),
                      ratios=self.ratios, steps=tuple(float(s) for s in self.steps),
                      normalization=self.normalization, preprocess=preprocess, batch_norm=self.batch_norm)

    def differences(self, preset: Preset) -> list[str]:
        """The fields in which this model's layout differs from ``preset`` (the
        preprocessing aside, which a checkpoint records on its own)."""
        own = self.preset(preset.preprocess)
        return [name for name in ("sources", "extras", "min_sizes", "max_sizes", "ratios", "steps", "normalization",
                                  "batch_norm", "head_kernel", "offset", "sizes")
                if getattr(own, name) != getattr(preset, name)]

    def table_preset(self) -> Optional[Preset]:
        """This project's preset for the network at the model's size, if there is one."""
        return PRESETS[self.network].get(self.data_shape)


# vgg_atrous.extra_spec: (1x1 filters, then filters, kernel, stride, pad of the second conv).
_VGG_EXTRAS = {
    300: (ExtraLayer(256, 512), ExtraLayer(128, 256), ExtraLayer(128, 256, stride=1, pad=0),
          ExtraLayer(128, 256, stride=1, pad=0)),
    512: (ExtraLayer(256, 512), ExtraLayer(128, 256), ExtraLayer(128, 256), ExtraLayer(128, 256),
          ExtraLayer(128, 256, kernel=4, stride=1, pad=1)),
}
# FeatureExpander(num_filters=[512, 512, 256, 256], use_1x1_transition, use_bn, reduce_ratio 1,
# min_depth 128): 1x1 to max(128, f) channels, then 3x3 stride 2 pad 1 to f.
_EXPANDER_EXTRAS = (ExtraLayer(512, 512), ExtraLayer(512, 512), ExtraLayer(256, 256), ExtraLayer(256, 256))

_VGG300_SIZES = {"voc": (30, 60, 111, 162, 213, 264, 315), "coco": (21, 45, 99, 153, 207, 261, 315)}
_VGG512_SIZES = (51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6)
_SSD512_SIZES = {"voc": (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492),
                 "coco": (51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72)}


def _models() -> dict[str, ZooModel]:
    models = []
    for dataset in DATASETS:
        sizes = "voc" if dataset == "voc" else "coco"  # _custom is built like the COCO model
        models += [
            ZooModel(f"ssd_300_vgg16_atrous_{dataset}", "vgg16_atrous", "vgg16_reduced", 300, dataset,
                     ("conv4_3", "fc7"), _VGG_EXTRAS[300], _VGG300_SIZES[sizes],
                     (_R2, _R23, _R23, _R23, _R2, _R2), (8, 16, 32, 64, 100, 300), (20.0,) + (None,) * 5, False),
            ZooModel(f"ssd_512_vgg16_atrous_{dataset}", "vgg16_atrous", "vgg16_reduced", 512, dataset,
                     ("conv4_3", "fc7"), _VGG_EXTRAS[512], _VGG512_SIZES,
                     (_R2, _R23, _R23, _R23, _R23, _R2, _R2), (8, 16, 32, 64, 128, 256, 512),
                     (20.0,) + (None,) * 6, False),
            ZooModel(f"ssd_512_resnet50_v1_{dataset}", "resnet50_v1", "resnet50", 512, dataset,
                     ("stage3", "stage4"), _EXPANDER_EXTRAS, _SSD512_SIZES[sizes],
                     (_R2, _R23, _R23, _R23, _R2, _R2), (16, 32, 64, 128, 256, 512), (None,) * 6, True),
            # GluonCV builds every SSD512 MobileNet with the VOC sizes.
            ZooModel(f"ssd_512_mobilenet1.0_{dataset}", "mobilenet1.0", "mobilenet", 512, dataset,
                     ("conv11", "conv13"), _EXPANDER_EXTRAS, _SSD512_SIZES["voc"],
                     (_R2, _R23, _R23, _R23, _R2, _R2), (16, 32, 64, 128, 256, 512), (None,) * 6, True),
        ]
    return {m.name: m for m in models}


#: Every supported model by its zoo name.
ZOO: dict[str, ZooModel] = _models()


def supported_names() -> list[str]:
    """The supported model-zoo names, sorted."""
    return sorted(ZOO)


def zoo_model(name: str) -> ZooModel:
    """The :class:`ZooModel` of GluonCV's zoo name ``name``.

    Raises
    ------
    ValueError
        A name that is not a supported GluonCV SSD (the message lists those).
    """
    try:
        return ZOO[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a supported GluonCV SSD; supported names: "
                         f"{', '.join(supported_names())}") from None
