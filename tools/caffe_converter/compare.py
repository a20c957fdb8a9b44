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

__all__ = ["Comparison", "compare", "main", "match_detections", "opencv_outputs"]

logger = logging.getLogger(__name__)
PROG = "compare.py"


@dataclass
class Comparison:
    """Largest absolute differences between OpenCV (Caffe) and the converted model."""

    priors: float
    loc: float
    conf: float
    score: float
    box: float
    num_opencv: int
    num_ours: int
    unmatched: int

    def lines(self) -> list[str]:
        return [f"priors:     max |diff| {self.priors:.3g}",
                f"loc head:   max |diff| {self.loc:.3g}",
                f"conf head:  max |diff| {self.conf:.3g} (probabilities after softmax)",
                f"detections: {self.num_opencv} from OpenCV, {self.num_ours} from the converted model, "
                f"{self.unmatched} unmatched; max |diff| score {self.score:.3g}, box {self.box:.3g}"]


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


def match_detections(ref: np.ndarray, ours: np.ndarray, thresh: float, tol: float = 2e-3):
    """Pair detections ``[class, score, x1, y1, x2, y2]`` of the same class by score order.

    Rows scoring at least ``thresh`` in either list take part; one within
    ``tol`` of the threshold may lack a partner. Returns
    ``(pairs, unmatched)`` with pairs of rows.
    """
    pairs, unmatched = [], 0
    for cls in sorted(set(ref[:, 0].tolist()) | set(ours[:, 0].tolist())):
        a = ref[(ref[:, 0] == cls) & (ref[:, 1] >= thresh - tol)]
        b = ours[(ours[:, 0] == cls) & (ours[:, 1] >= thresh - tol)]
        a, b = a[np.argsort(-a[:, 1], kind="stable")], b[np.argsort(-b[:, 1], kind="stable")]
        used = np.zeros(len(b), bool)
        for row in a:
            dist = [np.abs(row[1:] - other[1:]).max() if not used[j] else np.inf for j, other in enumerate(b)]
            j = int(np.argmin(dist)) if len(dist) else -1
            if j >= 0 and dist[j] < 0.05:
                used[j] = True
                pairs.append((row, b[j]))
            elif row[1] >= thresh + tol:
                unmatched += 1
        unmatched += int(sum(1 for j, row in enumerate(b) if not used[j] and row[1] >= thresh + tol))
    return pairs, unmatched


def compare(prototxt: str, caffemodel: str, prefix: str, image: str, epoch: int = 0,
            thresh: float = 0.3) -> Comparison:
    """Run both models on ``image`` and measure the differences (see the module docstring)."""
    import cv2
    import mxnet as mx
    from mxnet import autograd

    from symbol.checkpoint import load_checkpoint

    from tools.caffe_converter.converter import CaffeGraph
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

    graph = CaffeGraph(read_prototxt(prototxt))
    det = [l for l in graph.net.layers if l.type == "DetectionOutput"]
    if len(det) != 1:
        raise ValueError(f"{prototxt}: expected one DetectionOutput layer")
    det = det[0]
    names = [graph.producer[b].name for b in det.bottom] + [det.name]
    loc, conf, priors, dets = opencv_outputs(prototxt, caffemodel, resized, pre.mean, 1.0 / pre.std[0], names)

    x = mx.nd.array(resized[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32))
    with autograd.predict_mode():
        cls_preds, box_preds, anchors = net.raw_predictions(x)
    ours_det = net(x)[0].asnumpy()
    ours_det = ours_det[ours_det[:, 0] >= 0]
    prob = mx.nd.softmax(cls_preds, axis=-1).asnumpy().reshape(-1)

    ref = dets.reshape(-1, 7)
    ref = ref[ref[:, 2] > 0]  # OpenCV pads with a row of zeros / -1 when there are no detections
    ref = np.concatenate([ref[:, 1:2] - 1, ref[:, 2:3], np.clip(ref[:, 3:7], 0.0, 1.0)], axis=1)
    pairs, unmatched = match_detections(ref, ours_det, thresh)
    score = max((abs(a[1] - b[1]) for a, b in pairs), default=0.0)
    box = max((float(np.abs(a[2:] - b[2:]).max()) for a, b in pairs), default=0.0)
    keep = lambda d: int((d[:, 1] >= thresh).sum())  # noqa: E731
    return Comparison(priors=float(np.abs(priors[0, 0].reshape(-1) - anchors.asnumpy().reshape(-1)).max()),
                      loc=float(np.abs(loc.reshape(-1) - box_preds.asnumpy().reshape(-1)).max()),
                      conf=float(np.abs(conf.reshape(-1) - prob).max()), score=float(score), box=box,
                      num_opencv=keep(ref), num_ours=keep(ours_det), unmatched=unmatched)


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
        result = compare(args.prototxt, args.caffemodel, args.prefix, args.image, args.epoch, args.thresh)
    except (UsageError, ValueError, FileNotFoundError) as err:
        print_error(PROG, err)
        return 1
    for line in result.lines():
        print(line)
    if result.unmatched or max(result.score, result.box) > args.tolerance:
        print_error(PROG, f"the converted model differs from Caffe's by more than {args.tolerance}")
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
