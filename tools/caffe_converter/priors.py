"""Caffe's PriorBox and blob-shape arithmetic in NumPy, to check a preset against a prototxt."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["caffe_aspect_ratios", "caffe_priors", "conv_output", "pool_output"]


def caffe_aspect_ratios(param: Any) -> list[float]:
    """PriorBox's ratio list: 1, then each new ratio and (with ``flip``) its inverse."""
    ratios = [1.0]
    for r in param.aspect_ratio:
        if any(abs(r - a) < 1e-6 for a in ratios):
            continue
        ratios.append(float(r))
        if param.flip:
            ratios.append(1.0 / r)
    return ratios


def caffe_priors(param: Any, layer_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """Priors of one PriorBox layer as Caffe computes them: ``(H * W * A, 4)`` normalized corners.

    As in weiliu89/caffe's ``prior_box_layer.cpp``: min and max sizes are
    truncated to integers, steps default to image size / feature size, boxes
    are clipped only with ``clip``. Order per location: each min size, its
    ``sqrt(min * max)``, then the ratios other than 1.
    """
    lh, lw = layer_hw
    img_h = param.img_h or param.img_size or image_hw[0]
    img_w = param.img_w or param.img_size or image_hw[1]
    if param.step_h or param.step_w:
        step_h, step_w = param.step_h, param.step_w
    elif param.step:
        step_h = step_w = param.step
    else:
        step_h, step_w = img_h / lh, img_w / lw
    ratios = caffe_aspect_ratios(param)
    sizes = []  # (width, height) per prior of a location
    for s, min_size in enumerate(param.min_size):
        mn = int(min_size)
        sizes.append((mn, mn))
        if len(param.max_size):
            mx = int(param.max_size[s])
            sizes.append((math.sqrt(mn * mx), math.sqrt(mn * mx)))
        for r in ratios:
            if abs(r - 1.0) < 1e-6:
                continue
            sizes.append((mn * math.sqrt(r), mn / math.sqrt(r)))
    wh = np.array(sizes, dtype=np.float64)
    ys, xs = np.meshgrid(np.arange(lh), np.arange(lw), indexing="ij")
    cx = ((xs.reshape(-1, 1) + param.offset) * step_w)
    cy = ((ys.reshape(-1, 1) + param.offset) * step_h)
    boxes = np.stack([(cx - wh[:, 0] / 2) / img_w, (cy - wh[:, 1] / 2) / img_h,
                      (cx + wh[:, 0] / 2) / img_w, (cy + wh[:, 1] / 2) / img_h], axis=-1)
    boxes = boxes.reshape(-1, 4)
    if param.clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    return boxes


def conv_output(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Caffe's convolution output size (floor)."""
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def pool_output(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's pooling output size (ceil, the last window starting inside the input)."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out
