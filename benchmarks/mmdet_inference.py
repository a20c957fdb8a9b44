"""mmdetection's own SSD inference, written as ``demo.py --save-json`` writes detections.

Run it with an interpreter that has mmdetection 3 (``pip install torch mmengine
mmcv mmdet``), not this project's: it is the reference side of the check that a
converted mmdetection checkpoint detects exactly as mmdetection does::

    # where mmdetection is installed
    python benchmarks/mmdet_inference.py ssd300_coco ssd300.pth ref.json a.jpg b.png ...
    # here
    python -m tools.model_converters.mmdet ssd300.pth model/ssd300
    python demo.py --prefix model/ssd300 --images a.jpg,b.png --thresh 0.298 --save-json ours.json
    python -m tools.compare_detections ref.json ours.json

CONFIG is an mmdetection config file or one of ``ssd300_coco``, ``ssd512_coco``,
``ssdlite_mobilenetv2_coco`` (the configs installed with mmdetection). The model
is built with ``mmdet.apis.init_detector`` (class names from the checkpoint's
meta) and run on the CPU with ``inference_detector`` on each image path: the
config's own test pipeline (cv2 decoding, resize without keeping the aspect
ratio, RGB, mean/std) and ``test_cfg``. Every detection it returns is written,
in pixels of the original image, best first. It imports nothing of this
project, and this project imports nothing of it.
"""
import argparse
import json
import logging
import os
import sys
import warnings

CONFIGS = {
    "ssd300_coco": "ssd/ssd300_coco.py",
    "ssd512_coco": "ssd/ssd512_coco.py",
    "ssdlite_mobilenetv2_coco": "ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py",
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="an mmdetection config file, or one of " + ", ".join(CONFIGS))
    p.add_argument("checkpoint", help="the .pth file")
    p.add_argument("out", help="the detections, as demo.py --save-json writes them")
    p.add_argument("images", nargs="+")
    args = p.parse_args(argv)

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import mmdet
    import numpy as np
    from mmdet.apis import inference_detector, init_detector

    config = args.config
    if config in CONFIGS:
        config = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs", CONFIGS[config])
    model = init_detector(config, args.checkpoint, device="cpu")
    names = model.dataset_meta["classes"]
    results = []
    for path in args.images:
        sample = inference_detector(model, path)
        height, width = sample.metainfo["ori_shape"][:2]
        pred = sample.pred_instances
        scores = pred.scores.numpy().astype(np.float64)
        labels, boxes = pred.labels.numpy(), pred.bboxes.numpy().astype(np.float64)
        detections = [{"class_id": int(labels[i]), "class_name": names[int(labels[i])], "score": float(scores[i]),
                       "bbox": [float(v) for v in boxes[i]]} for i in np.argsort(-scores, kind="stable")]
        results.append({"image": path, "width": int(width), "height": int(height), "detections": detections})
        print(f"{path}: {len(detections)} detection(s), {int((scores >= 0.3).sum())} >= 0.3", file=sys.stderr)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
