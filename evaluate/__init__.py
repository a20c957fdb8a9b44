"""Inference and scoring: ``detector`` (run a checkpoint on images), ``metrics`` (VOC and COCO
mAP), ``evaluation`` (a detector or saved detections over a dataset reader: what
``evaluate.py`` and training's validation call), ``plots`` (precision/recall curves),
``visualize`` (draw detections)."""
