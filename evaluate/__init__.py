"""Inference and scoring: ``detector`` (run a checkpoint on images), ``metrics`` (VOC and COCO
mAP), ``evaluation`` (a detector or saved detections over a dataset reader: what
``evaluate.py`` and training's validation call), ``plots`` (precision/recall curves),
``visualize`` (draw detections), ``video`` (detection on video frames), ``parity`` (do two
detectors agree), ``onnx_runtime`` (run an exported ONNX detector), ``calibration`` (the images
an INT8 model is calibrated on, and making a low-precision checkpoint from a float one)."""
