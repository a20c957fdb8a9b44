"""Run an exported detector on image files with ONNX Runtime, NumPy and OpenCV only.

    python onnx_standalone.py MODEL.onnx [--batch 3] IMAGE...

Prints a JSON list with one list of rows ``[class_id, score, xmin, ymin, xmax,
ymax]`` (normalized corners) per image. It is what a user of the exported file
writes, and imports nothing of the project nor MXNet: the tests run it in a
separate interpreter and it checks, at the end, that neither was loaded.
"""
import argparse
import json
import sys

import cv2
import numpy as np
import onnxruntime as ort


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    side = session.get_inputs()[0].shape[2]
    pixels = []
    for path in args.images:
        rgb = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        pixels.append(cv2.resize(rgb, (side, side), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1))
    pixels = np.asarray(pixels, dtype=np.float32)  # (N, 3, side, side), RGB 0..255

    results = []
    for start in range(0, len(pixels), args.batch):
        (detections,) = session.run(None, {"data": pixels[start:start + args.batch]})
        results += [rows[rows[:, 0] >= 0].tolist() for rows in detections]

    loaded = {"mxnet", "symbol", "evaluate", "common", "tools", "train", "dataset"} & set(sys.modules)
    assert not loaded, f"the ONNX run loaded {sorted(loaded)}"
    print(json.dumps(results))


if __name__ == "__main__":
    main()
