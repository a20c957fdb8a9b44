"""Caffe SSD's training augmentation as pure functions on NumPy arrays.

Conventions shared by every function here:

image
    ``(H, W, 3)`` RGB, normally ``uint8``. Geometric ops keep the dtype;
    :func:`photometric_distort` returns ``uint8``.
boxes
    ``(N, 4)`` float32 pixel corners ``(xmin, ymin, xmax, ymax)`` with
    ``xmin <= xmax`` and ``ymin <= ymax``; ``N`` may be 0. A pixel ``(row, col)``
    covers ``[col, col + 1) x [row, row + 1)``.
labels
    ``(N,)`` integers, kept in their dtype.
rng
    An explicit ``np.random.Generator``: the same seed gives the same output.

No function mutates its inputs; every one returns new arrays.

The order and the parameters follow Caffe SSD's ``ssd_pascal.py``
(``distort_param``, ``expand_param``, ``batch_sampler``, ``resize_param``,
``mirror``). Deliberate differences from Caffe, each documented where it
happens: hue is shifted in degrees on a float HSV image and wraps around
(Caffe adds to OpenCV's 8-bit hue and saturates); the crop's IoU constraint
is checked on the integer pixel crop actually cut (Caffe checks the
continuous one); with no ground-truth boxes a constrained sampler accepts any
crop (Caffe accepts none); the random channel reorder (probability 0 in
``ssd_pascal.py``) is left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike

from symbol.boxes import box_iou

__all__ = ["MEAN_RGB", "INTERPOLATIONS", "Sampler", "CAFFE_SAMPLERS", "photometric_distort",
           "expand", "sample_crop", "random_crop", "resize", "hflip", "train_transform",
           "val_transform"]

#: The ImageNet mean Caffe SSD subtracts and fills expanded canvases with, in RGB order.
MEAN_RGB = (123, 117, 104)

#: The interpolations Caffe SSD's ``resize_param`` draws from.
INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_CUBIC,
                  cv2.INTER_LANCZOS4)


@dataclass(frozen=True)
class Sampler:
    """One Caffe ``batch_sampler``: how to draw a crop and which crops to accept.

    ``scale`` is the crop's side relative to the image's (its area is
    ``scale ** 2`` of the image's); ``aspect_ratio`` is the crop's width over
    height in image-relative units, further limited to
    ``[scale ** 2, 1 / scale ** 2]`` so the crop fits the image (Caffe's
    ``SampleBBox``). A crop is accepted when some ground-truth box has an IoU
    with it within ``[min_iou, max_iou]`` (``None``: no bound; both ``None``:
    every crop is accepted).
    """

    min_scale: float = 1.0
    max_scale: float = 1.0
    min_aspect_ratio: float = 1.0
    max_aspect_ratio: float = 1.0
    min_iou: Optional[float] = None
    max_iou: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got "
                             f"{self.min_scale}, {self.max_scale}")
        if not 0 < self.min_aspect_ratio <= self.max_aspect_ratio:
            raise ValueError(f"need 0 < min_aspect_ratio <= max_aspect_ratio, got "
                             f"{self.min_aspect_ratio}, {self.max_aspect_ratio}")

    @property
    def constrained(self) -> bool:
        return self.min_iou is not None or self.max_iou is not None


_CROP = dict(min_scale=0.3, max_scale=1.0, min_aspect_ratio=0.5, max_aspect_ratio=2.0)

#: ``ssd_pascal.py``'s seven samplers: the whole image; min IoU 0.1, 0.3, 0.5,
#: 0.7, 0.9; max IoU 1.0 with no minimum.
CAFFE_SAMPLERS: tuple[Sampler, ...] = (
    Sampler(),
    *(Sampler(**_CROP, min_iou=t) for t in (0.1, 0.3, 0.5, 0.7, 0.9)),
    Sampler(**_CROP, max_iou=1.0),
)


# --------------------------------------------------------------------------- validation

def _image(image: ArrayLike) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3) with H, W >= 1, got {img.shape}")
    return img


def _boxes(boxes: ArrayLike) -> np.ndarray:
    """A float32 copy of ``boxes``, checked to be (N, 4) finite proper corners."""
    b = np.array(boxes, dtype=np.float32).reshape(-1, 4) if np.size(boxes) == 0 \
        else np.array(boxes, dtype=np.float32)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {b.shape}")
    bad = np.flatnonzero(~np.isfinite(b).all(axis=1) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"box {i} is not finite corners with xmin <= xmax, ymin <= ymax: "
                         f"{b[i].tolist()}")
    return b


def _labels(labels: ArrayLike, n: int) -> np.ndarray:
    lab = np.array(labels).reshape(-1) if np.size(labels) == 0 else np.array(labels)
    if lab.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the boxes, got {lab.shape}")
    return lab


# --------------------------------------------------------------------------- photometric

def _brightness(img: np.ndarray, delta: float) -> np.ndarray:
    return np.clip(img + np.float32(delta), 0, 255)


def _contrast(img: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(img * np.float32(factor), 0, 255)


def _hsv_op(img: np.ndarray, channel: int, op) -> np.ndarray:
    hsv = cv2.cvtColor(img / np.float32(255), cv2.COLOR_RGB2HSV)  # H in [0, 360), S, V in [0, 1]
    hsv[..., channel] = op(hsv[..., channel])
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * np.float32(255), 0, 255)


def photometric_distort(image: ArrayLike, rng: np.random.Generator, *,
                        brightness_prob: float = 0.5, brightness_delta: float = 32.0,
                        contrast_prob: float = 0.5,
                        contrast_range: tuple[float, float] = (0.5, 1.5),
                        saturation_prob: float = 0.5,
                        saturation_range: tuple[float, float] = (0.5, 1.5),
                        hue_prob: float = 0.5, hue_delta: float = 18.0) -> np.ndarray:
    """Caffe's ``RandomDistort``: random brightness, contrast, saturation and hue.

    Each op runs with its probability: brightness adds ``U(-delta, delta)``,
    contrast multiplies by ``U(*contrast_range)``, saturation multiplies HSV's
    S by ``U(*saturation_range)``, hue adds ``U(-hue_delta, hue_delta)``
    degrees to HSV's H (wrapping around). Contrast runs either right after
    brightness or last, with even odds, as in Caffe. The image is clipped to
    0..255 after every op (Caffe saturates its uint8 image likewise).

    Parameters
    ----------
    image : (H, W, 3) RGB, values in 0..255
    rng : the random source

    Returns
    -------
    (H, W, 3) uint8, rounded; equal to ``image`` when every probability is 0.
    """
    img = _image(image).astype(np.float32)  # a copy: the ops below never touch ``image``
    contrast_first = rng.random() > 0.5

    def maybe(prob: float) -> bool:
        return rng.random() < prob

    def contrast(x: np.ndarray) -> np.ndarray:
        return _contrast(x, rng.uniform(*contrast_range)) if maybe(contrast_prob) else x

    if maybe(brightness_prob):
        img = _brightness(img, rng.uniform(-brightness_delta, brightness_delta))
    if contrast_first:
        img = contrast(img)
    if maybe(saturation_prob):
        factor = np.float32(rng.uniform(*saturation_range))
        img = _hsv_op(img, 1, lambda s: np.clip(s * factor, 0, 1))
    if maybe(hue_prob):
        delta = np.float32(rng.uniform(-hue_delta, hue_delta))
        img = _hsv_op(img, 0, lambda h: np.mod(h + delta, np.float32(360)))
    if not contrast_first:
        img = contrast(img)
    return np.rint(img).astype(np.uint8)


# --------------------------------------------------------------------------- geometric

def expand(image: ArrayLike, boxes: ArrayLike, rng: np.random.Generator, max_ratio: float = 4.0,
           fill: Sequence[float] = MEAN_RGB, p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Caffe's ``ExpandImage``: with probability ``p``, zoom out.

    The image is placed at a random integer offset on a canvas ``ratio`` times
    its size, ``ratio ~ U(1, max_ratio)``, filled with ``fill`` (RGB); the boxes
    are shifted by the same offset, so they cover the same pixels of the
    original content. A ratio below 1.01 leaves the image as it is (Caffe).

    Returns
    -------
    (image, boxes): the canvas in ``image``'s dtype, (N, 4) float32 pixel corners.
    """
    img = _image(image)
    b = _boxes(boxes)
    if max_ratio < 1:
        raise ValueError(f"max_ratio must be >= 1, got {max_ratio}")
    if rng.random() >= p:
        return img.copy(), b
    ratio = rng.uniform(1.0, max_ratio)
    if ratio - 1 < 1e-2:
        return img.copy(), b
    h, w = img.shape[:2]
    new_h, new_w = int(h * ratio), int(w * ratio)
    top = int(rng.integers(0, new_h - h + 1))
    left = int(rng.integers(0, new_w - w + 1))
    canvas = np.empty((new_h, new_w, 3), dtype=img.dtype)
    canvas[...] = np.asarray(fill, dtype=img.dtype)
    canvas[top:top + h, left:left + w] = img
    return canvas, b + np.array([left, top, left, top], dtype=np.float32)


def sample_crop(boxes: ArrayLike, width: int, height: int, sampler: Sampler,
                rng: np.random.Generator, max_trials: int = 50
                ) -> Optional[tuple[int, int, int, int]]:
    """One crop of a ``width`` x ``height`` image drawn by ``sampler``, or ``None``.

    Up to ``max_trials`` crops are drawn (Caffe's ``SampleBBox``) and the first
    accepted one returned. A crop is accepted when ANY box's IoU with it lies
    within the sampler's bounds (Caffe's ``SatisfySampleConstraint``); the
    IoU is computed on the integer crop returned. With no boxes every crop is
    accepted (Caffe would accept none for a constrained sampler).

    Returns
    -------
    ``(x0, y0, x1, y1)`` integer pixel corners, ``0 <= x0 < x1 <= width``,
    ``0 <= y0 < y1 <= height``; ``None`` when no trial was accepted.
    """
    b = _boxes(boxes).astype(np.float64)
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}, {height}")
    if max_trials < 1:
        return None
    # All trials are drawn at once (one vectorized IoU instead of a Python loop
    # of up to 50); the first accepted one is returned, as in Caffe's loop.
    n = 1 if not sampler.constrained or len(b) == 0 else max_trials
    scale = rng.uniform(sampler.min_scale, sampler.max_scale, n)
    min_ar = np.maximum(sampler.min_aspect_ratio, scale ** 2)
    max_ar = np.minimum(sampler.max_aspect_ratio, 1 / scale ** 2)
    ar = rng.uniform(min_ar, max_ar)
    bw, bh = np.minimum(scale * np.sqrt(ar), 1.0), np.minimum(scale / np.sqrt(ar), 1.0)
    fx, fy = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
    cw = np.maximum((bw * width).astype(np.int64), 1)
    ch = np.maximum((bh * height).astype(np.int64), 1)
    x0 = np.minimum((fx * width).astype(np.int64), width - cw)
    y0 = np.minimum((fy * height).astype(np.int64), height - ch)
    crops = np.stack([x0, y0, x0 + cw, y0 + ch], axis=1)
    if n == 1:
        return tuple(int(v) for v in crops[0])
    iou = box_iou(crops.astype(np.float64), b)  # (trials, boxes)
    ok = np.ones(iou.shape, dtype=bool)
    if sampler.min_iou is not None:
        ok &= iou >= sampler.min_iou
    if sampler.max_iou is not None:
        ok &= iou <= sampler.max_iou
    accepted = np.flatnonzero(ok.any(axis=1))
    if len(accepted) == 0:
        return None
    return tuple(int(v) for v in crops[accepted[0]])


def random_crop(image: ArrayLike, boxes: ArrayLike, labels: ArrayLike, rng: np.random.Generator,
                samplers: Sequence[Sampler] = CAFFE_SAMPLERS, max_trials: int = 50
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Caffe's ``batch_sampler`` crop.

    Each sampler contributes its first accepted crop (see :func:`sample_crop`);
    one of the collected crops is chosen uniformly (the image is kept whole if
    none was collected). The boxes whose centre lies in the crop (edges
    included) are kept, clipped to it and shifted to its origin; boxes that
    clip to zero area are dropped.

    Returns
    -------
    (image, boxes, labels): the crop in ``image``'s dtype, (K, 4) float32
    pixel corners inside it, (K,) labels of the kept boxes.
    """
    img = _image(image)
    b = _boxes(boxes)
    lab = _labels(labels, len(b))
    h, w = img.shape[:2]
    crops = [c for c in (sample_crop(b, w, h, s, rng, max_trials) for s in samplers)
             if c is not None]
    if not crops:
        return img.copy(), b, lab
    x0, y0, x1, y1 = crops[int(rng.integers(len(crops)))]
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    inside = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
    lo = np.array([x0, y0, x0, y0], dtype=np.float32)
    hi = np.array([x1, y1, x1, y1], dtype=np.float32)
    kept = np.clip(b[inside], lo, hi) - lo
    nonempty = (kept[:, 2] > kept[:, 0]) & (kept[:, 3] > kept[:, 1])
    return img[y0:y1, x0:x1].copy(), kept[nonempty], lab[inside][nonempty]


def resize(image: ArrayLike, boxes: ArrayLike, size: int,
           rng: Optional[np.random.Generator] = None) -> tuple[np.ndarray, np.ndarray]:
    """Warp to ``size`` x ``size`` (aspect ratio not kept) and scale the boxes.

    The interpolation is drawn from :data:`INTERPOLATIONS` when ``rng`` is
    given (Caffe's ``resize_param.interp_mode``), bilinear otherwise.

    Returns
    -------
    (image, boxes): (size, size, 3) in ``image``'s dtype, (N, 4) float32 pixel
    corners clipped to ``[0, size]``.
    """
    img = _image(image)
    b = _boxes(boxes)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    interp = (cv2.INTER_LINEAR if rng is None
              else INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))])
    h, w = img.shape[:2]
    out = cv2.resize(img, (size, size), interpolation=interp)
    scale = np.array([size / w, size / h, size / w, size / h])
    return out, np.clip(b.astype(np.float64) * scale, 0, size).astype(np.float32)


def hflip(image: ArrayLike, boxes: ArrayLike, rng: Optional[np.random.Generator] = None,
          p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right with probability ``p`` (always when ``p >= 1``; ``rng`` may then be None).

    A box ``(x0, y0, x1, y1)`` becomes ``(W - x1, y0, W - x0, y1)``, computed in
    float32; flipping twice gives the input back exactly whenever ``W - x`` is
    exact in float32 (e.g. for integer or dyadic coordinates).

    Returns
    -------
    (image, boxes): in ``image``'s dtype, (N, 4) float32 pixel corners.
    """
    img = _image(image)
    b = _boxes(boxes)
    if p < 1:
        if rng is None:
            raise ValueError("hflip needs an rng when p < 1")
        if rng.random() >= p:
            return img.copy(), b
    w = np.float32(img.shape[1])
    flipped = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
    return img[:, ::-1].copy(), flipped


# --------------------------------------------------------------------------- pipelines

def _normalize(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return (boxes / np.array([width, height, width, height], dtype=np.float32)).astype(np.float32)


def train_transform(image: ArrayLike, boxes: ArrayLike, labels: ArrayLike, size: int,
                    rng: np.random.Generator, expand_image: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Caffe SSD's training pipeline: distort, expand, crop, resize, flip.

    ``expand_image=False`` skips the zoom-out (whose objects, up to 4 times
    smaller, suit datasets of large objects) and draws nothing for it.

    Returns
    -------
    (image, boxes, labels): (size, size, 3) uint8 RGB; (K, 4) float32 corners
    NORMALIZED to [0, 1] by the output size; (K,) labels of the kept boxes.
    """
    img = photometric_distort(image, rng)
    img, b = expand(img, boxes, rng) if expand_image else (img, _boxes(boxes))
    img, b, lab = random_crop(img, b, labels, rng)
    img, b = resize(img, b, size, rng)
    img, b = hflip(img, b, rng)
    return img, _normalize(b, size, size), lab


def photometric_transform(image: ArrayLike, boxes: ArrayLike, labels: ArrayLike, size: int,
                          rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shape-preserving part of Caffe's pipeline: distort colours, warp-resize
    (random interpolation), flip. No crop or zoom, so a square stays a square:
    for data whose classes differ by shape, such as :mod:`dataset.synthetic`.

    Returns
    -------
    (image, boxes, labels): (size, size, 3) uint8 RGB; (N, 4) float32 corners
    NORMALIZED to [0, 1]; a copy of ``labels``.
    """
    img = photometric_distort(image, rng)
    b = _boxes(boxes)
    lab = _labels(labels, len(b))
    img, b = resize(img, b, size, rng)
    img, b = hflip(img, b, rng)
    return img, _normalize(b, size, size), lab.copy()


def val_transform(image: ArrayLike, boxes: ArrayLike, labels: ArrayLike, size: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation pipeline: bilinear warp to ``size`` x ``size`` only.

    Returns
    -------
    (image, boxes, labels): (size, size, 3) in ``image``'s dtype; (N, 4)
    float32 ``boxes / [W, H, W, H]`` (normalized to the input image, which the
    warp maps onto [0, 1]); a copy of ``labels``.
    """
    img = _image(image)
    b = _boxes(boxes)
    lab = _labels(labels, len(b))
    out, _ = resize(img, b, size)
    h, w = img.shape[:2]
    return out, _normalize(b, w, h), lab
