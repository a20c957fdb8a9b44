"""Compare a converted model with Caffe's own computation, run by OpenCV's dnn module.

    python tools/caffe_converter/compare.py DEPLOY.prototxt WEIGHTS.caffemodel PREFIX IMAGE [--epoch 0]

OpenCV implements Caffe's SSD layers (PriorBox, Permute, Normalize,
DetectionOutput). Both networks get the same resized image; the script
reports the largest differences in the priors, the loc and conf head outputs
(the conf ones after softmax) and the detections (matched by class and rank;
OpenCV's boxes, which Caffe does not clip, are clipped to the image as ours
are), and exits with status 1 when a difference exceeds ``--tolerance``.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from evaluate.parity import Parity, match_detections

__all__ = ["Comparison", "compare", "detection_inputs", "main", "opencv_outputs", "opencv_rows"]

logger = logging.getLogger(__name__)
PROG = "compare.py"


@dataclass
class Comparison:
    """Largest absolute differences between OpenCV (Caffe) and the converted model,
    and how their detections pair up."""

    priors: float
    loc: float
    conf: float
    parity: Parity

    def lines(self) -> list[str]:
        return [f"priors:     max |diff| {self.priors:.3g}",
                f"loc head:   max |diff| {self.loc:.3g}",
                f"conf head:  max |diff| {self.conf:.3g} (probabilities after softmax)",
                f"detections: {self.parity.summary()}"]


def opencv_outputs(prototxt: str, caffemodel: str, image_bgr: np.ndarray, mean: Sequence[float],
                   scale: float, outputs: Sequence[str]) -> list[np.ndarray]:
    """Run the Caffe net in cv2.dnn on an already resized BGR image; the named layers' outputs."""
    import cv2

    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    blob = cv2.dnn.blobFromImage(image_bgr, scale, (image_bgr.shape[1], image_bgr.shape[0]), tuple(mean),
                                 swapRB=False, crop=False)
    net.setInput(blob)
    return [np.asarray(o) for o in net.forward(list(outputs))]


def opencv_rows(detection_out: np.ndarray) -> np.ndarray:
    """DetectionOutput's ``(1, 1, K, 7)`` as rows ``[class (0-based), score, x1, y1, x2, y2]``,
    boxes clipped to the image as the converted model's are (OpenCV pads with empty rows)."""
    rows = np.asarray(detection_out).reshape(-1, 7)
    rows = rows[rows[:, 2] > 0]
    return np.concatenate([rows[:, 1:2] - 1, rows[:, 2:3], np.clip(rows[:, 3:7], 0.0, 1.0)], axis=1)


def detection_inputs(net_def) -> list[str]:
    """Names of the layers whose outputs DetectionOutput reads (loc, conf, priors), then its own."""
    det = [l for l in net_def.layers if l.type == "DetectionOutput"]
    if len(det) != 1 or len(det[0].bottom) != 3:
        raise ValueError(f"{net_def.path}: expected one DetectionOutput layer with 3 inputs")
    names = []
    for blob in det[0].bottom:
        writers = [l.name for l in net_def.layers if blob in l.top and l is not det[0]]
        if not writers:
            raise ValueError(f"{net_def.path}: no layer writes {blob!r}")
        names.append(writers[-1])
    return names + [det[0].name]


def compare(prototxt: str, caffemodel: str, prefix: str, image: str, epoch: int = 0,
            thresh: float = 0.3, tolerance: float = 2e-3) -> Comparison:
    """Run both models on ``image`` and measure the differences (see the module docstring)."""
    import cv2
    import mxnet as mx
    from mxnet import autograd

    from symbol.checkpoint import load_checkpoint

    from tools.caffe_converter.reader import read_prototxt

    net, config = load_checkpoint(prefix, epoch)
    pre = config.preprocess
    if not pre.bgr or len(set(pre.std)) != 1:
        raise ValueError(f"{prefix}: the checkpoint's preprocessing {pre.to_dict()} is not Caffe's "
                         f"(BGR, one scale for all channels)")
    bgr = cv2.imread(image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {image}")
    side = config.data_shape
    resized = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_LINEAR)
    names = detection_inputs(read_prototxt(prototxt))
    loc, conf, priors, dets = opencv_outputs(prototxt, caffemodel, resized, pre.mean, 1.0 / pre.std[0], names)

    x = mx.nd.array(resized[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32))
    with autograd.predict_mode():
        cls_preds, box_preds, anchors = net.raw_predictions(x)
        ours = net(x)[0].asnumpy()
    prob = mx.nd.softmax(cls_preds, axis=-1).asnumpy().reshape(-1)
    parity = match_detections(opencv_rows(dets), ours[ours[:, 0] >= 0], thresh, tolerance)
    return Comparison(priors=float(np.abs(priors[0, 0].reshape(-1) - anchors.asnumpy().reshape(-1)).max()),
                      loc=float(np.abs(loc.reshape(-1) - box_preds.asnumpy().reshape(-1)).max()),
                      conf=float(np.abs(conf.reshape(-1) - prob).max()), parity=parity)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from tools.cli import ArgumentParser, UsageError, non_negative_int, print_error

    parser = ArgumentParser(prog=PROG, description="Compare a converted SSD with OpenCV running the Caffe model.")
    parser.add_argument("prototxt", help="the Caffe deploy prototxt")
    parser.add_argument("caffemodel", help="the Caffe weights")
    parser.add_argument("prefix", help="the converted checkpoint's prefix")
    parser.add_argument("image", help="an image to run both on")
    parser.add_argument("--epoch", type=non_negative_int, default=0, help="checkpoint epoch (default 0)")
    parser.add_argument("--thresh", type=float, default=0.3, help="compare detections scoring at least this")
    parser.add_argument("--tolerance", type=float, default=2e-3,
                        help="largest acceptable score and box difference (default 2e-3)")
    try:
        args = parser.parse_args(argv)
        for path in (args.prototxt, args.caffemodel, args.image):
            if not os.path.isfile(path):
                raise UsageError(f"no such file: {path}")
        result = compare(args.prototxt, args.caffemodel, args.prefix, args.image, args.epoch, args.thresh,
                         args.tolerance)
    except (UsageError, ValueError, FileNotFoundError) as err:
        print_error(PROG, err)
        return 1
    for line in result.lines():
        print(line)
    if not result.parity.ok:
        print_error(PROG, f"the converted model's detections differ from Caffe's: {result.parity.summary()}")
        return 1
    return 0


if __name__ == "__main__":
    from tools.cli import log_to_stderr

    log_to_stderr(logging.WARNING)
    sys.exit(main())
