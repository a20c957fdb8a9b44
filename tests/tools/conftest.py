"""Fixtures of the converter tests: the real Caffe deploy prototxts with random weights.

There are no real caffemodels here: the weights are random, written with the
project's own protobuf schema, and the heads are rescaled (on a real photo, in
OpenCV) so that class scores spread out and only some priors beat the
background.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import pytest

from symbol.presets import find_preset
from tools.caffe_converter import reader, writer
from tools.caffe_converter.converter import detect_network


def caffe_input(network: str, side: int) -> tuple[tuple[float, ...], float]:
    """(BGR mean, scale) of the network's Caffe recipe, as cv2.dnn.blobFromImage takes them."""
    pre = find_preset(network, side).preprocess
    return pre.mean, 1.0 / pre.std[0]


def make_caffemodel(prototxt: Path, out: Path, image: Path, seed: int = 0) -> Path:
    """Random weights for ``prototxt`` with spread-out scores on ``image``, written to ``out``."""
    net = reader.read_prototxt(prototxt)
    blobs = writer.random_blobs(net, seed)
    side = net.input_shape[2]
    mean, scale = caffe_input(detect_network(net), side)
    bgr = cv2.resize(cv2.imread(str(image)), (side, side), interpolation=cv2.INTER_LINEAR)
    writer.spread_head_scores(prototxt, net, blobs, bgr, mean, scale, workdir=out.parent)
    return writer.write_caffemodel(out, net, blobs)


@pytest.fixture(scope="session")
def make_caffe_model() -> Callable[..., Path]:
    """:func:`make_caffemodel` (test modules cannot import conftest under importlib mode)."""
    return make_caffemodel


@pytest.fixture(scope="session")
def caffe_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "caffe"


@pytest.fixture(scope="session")
def images(fixtures_dir: Path) -> list[Path]:
    return sorted((fixtures_dir / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def mobilenet_model(caffe_dir, images, tmp_path_factory) -> tuple[Path, Path]:
    """(MobileNetSSD_deploy.prototxt, random caffemodel)."""
    prototxt = caffe_dir / "MobileNetSSD_deploy.prototxt"
    out = tmp_path_factory.mktemp("mobilenet_caffe") / "MobileNetSSD.caffemodel"
    return prototxt, make_caffemodel(prototxt, out, images[0])


@pytest.fixture(scope="session")
def vgg300_model(caffe_dir, images, tmp_path_factory) -> tuple[Path, Path]:
    """(VGG_VOC0712_SSD_300x300_deploy.prototxt, random caffemodel, about 100 MB)."""
    prototxt = caffe_dir / "VGG_VOC0712_SSD_300x300_deploy.prototxt"
    out = tmp_path_factory.mktemp("vgg300_caffe") / "VGG_SSD_300x300.caffemodel"
    return prototxt, make_caffemodel(prototxt, out, images[0])
