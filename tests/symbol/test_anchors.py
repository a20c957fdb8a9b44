"""Priors against Caffe's own PriorBox, run by OpenCV's Caffe importer on the real prototxts."""
from __future__ import annotations

import re
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from symbol import find_preset, get_model
from symbol.anchors import anchor_specs


def _layer_blocks(prototxt: str) -> list[str]:
    """Top-level ``layer { ... }`` blocks of a prototxt, by brace matching."""
    blocks, i = [], 0
    while True:
        m = re.compile(r"^layer\s*\{", re.M).search(prototxt, i)
        if not m:
            return blocks
        depth, j = 0, m.start()
        while True:
            if prototxt[j] == "{":
                depth += 1
            elif prototxt[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        blocks.append(prototxt[m.start():j + 1])
        i = j + 1


def caffe_priors(prototxt_path: Path, feature_sizes: dict[str, int], side: int) -> np.ndarray:
    """Run only the PriorBox layers (and their Concat) of a deploy prototxt in cv2.dnn.

    The feature maps PriorBox looks at become network inputs of the given
    sizes, so no weights are needed. Returns (N, 4) normalized corners.
    """
    cv2 = pytest.importorskip("cv2")
    text = prototxt_path.read_text()
    blocks = [b for b in _layer_blocks(text) if re.search(r'type:\s*"PriorBox"', b)]
    concat = [b for b in _layer_blocks(text) if re.search(r'top:\s*"mbox_priorbox"', b)]
    assert len(blocks) == len(feature_sizes) and len(concat) == 1
    header = [f'input: "data"\ninput_shape {{ dim: 1 dim: 3 dim: {side} dim: {side} }}']
    for name, size in feature_sizes.items():
        header.append(f'input: "{name}"\ninput_shape {{ dim: 1 dim: 1 dim: {size} dim: {size} }}')
    proto = "\n".join(header + blocks + concat)
    net = cv2.dnn.readNetFromCaffe(np.frombuffer(proto.encode(), np.uint8), np.zeros(0, np.uint8))
    net.setInput(np.zeros((1, 3, side, side), np.float32), "data")
    for name, size in feature_sizes.items():
        net.setInput(np.zeros((1, 1, size, size), np.float32), name)
    out = net.forward("mbox_priorbox")
    assert out.shape[:2] == (1, 2), f"unexpected PriorBox output {out.shape} from {prototxt_path}"
    variances = out[0, 1].reshape(-1, 4)
    np.testing.assert_allclose(variances, np.tile([0.1, 0.1, 0.2, 0.2], (len(variances), 1)), rtol=1e-6)
    return out[0, 0].reshape(-1, 4)


def our_priors(network: str, side: int, **kwargs) -> np.ndarray:
    net = get_model(network, side, num_classes=2, **kwargs)
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, side, side)))
    return anchors[0].asnumpy()


def test_vgg16_reduced_300_priors_equal_caffe(fixtures_dir: Path) -> None:
    sizes = {"conv4_3_norm": 38, "fc7": 19, "conv6_2": 10, "conv7_2": 5, "conv8_2": 3, "conv9_2": 1}
    expected = caffe_priors(fixtures_dir / "caffe" / "VGG_VOC0712_SSD_300x300_deploy.prototxt", sizes, 300)
    ours = our_priors("vgg16_reduced", 300)
    assert ours.shape == expected.shape == (8732, 4)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_mobilenet_300_priors_equal_caffe(fixtures_dir: Path) -> None:
    sizes = {"conv11": 19, "conv13": 10, "conv14_2": 5, "conv15_2": 3, "conv16_2": 2, "conv17_2": 1}
    expected = caffe_priors(fixtures_dir / "caffe" / "MobileNetSSD_deploy.prototxt", sizes, 300)
    ours = our_priors("mobilenet", 300, multiplier=0.25, batch_norm=False)
    assert ours.shape == expected.shape == (1917, 4)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_first_location_of_ssd300_by_hand() -> None:
    """Caffe order at the top-left cell of conv4_3: min, sqrt(min*max), ratio 2, ratio 1/2."""
    ours = our_priors("vgg16_reduced", 300)[:4]
    c = 0.5 * 8 / 300
    half = np.array([30, np.sqrt(30 * 60), 30 * np.sqrt(2), 30 / np.sqrt(2)]) / 300 / 2
    half_h = np.array([30, np.sqrt(30 * 60), 30 / np.sqrt(2), 30 * np.sqrt(2)]) / 300 / 2
    expected = np.stack([c - half, c - half_h, c + half, c + half_h], axis=1)
    np.testing.assert_allclose(ours, expected, atol=1e-6)


@pytest.mark.parametrize("network,side,counts", [
    ("vgg16_reduced", 300, [4, 6, 6, 6, 4, 4]),
    ("vgg16_reduced", 512, [4, 6, 6, 6, 6, 4, 4]),
    ("mobilenet", 300, [3, 6, 6, 6, 6, 6]),
    ("ssdlite_mobilenetv2", 320, [6] * 6),
])
def test_anchors_per_location_derived_from_preset(network: str, side: int, counts: list[int]) -> None:
    assert [s.num_anchors for s in anchor_specs(find_preset(network, side), side)] == counts


def test_ssd512_sizes_are_caffe_integers() -> None:
    spec = anchor_specs(find_preset("vgg16_reduced", 512), 512)
    assert [round(s.sizes[0] * 512, 6) for s in spec] == [35, 76, 153, 230, 307, 384, 460]
    assert spec[-1].sizes[1] == pytest.approx(np.sqrt(460 * 537) / 512)
    assert [round(s.step * 512, 6) for s in spec] == [8, 16, 32, 64, 128, 256, 512]


def test_steps_only_hold_at_the_preset_size() -> None:
    assert all(s.step is None for s in anchor_specs(find_preset("vgg16_reduced", 400), 400))
    assert find_preset("vgg16_reduced", 400).data_shape == 300
    assert find_preset("vgg16_reduced", 450).data_shape == 512
