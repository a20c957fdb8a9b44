"""Run an exported detector (``python -m tools.export_onnx``) in ONNX Runtime, without MXNet.

>>> session = onnx_session("ssd_300.onnx")                       # doctest: +SKIP
>>> rows = run_onnx(session, batch)    # (B, 3, S, S) RGB 0..255 -> (B, keep_topk, 6)   # doctest: +SKIP

Nothing here imports MXNet or ONNX Runtime at import time; ONNX Runtime is the
``onnx`` extra (``pip install -e '.[onnx]'``).
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional, Union

import numpy as np

from common.fileio import PathLike

__all__ = ["model_metadata", "onnx_session", "run_onnx"]


def onnx_session(path: PathLike, threads: Optional[int] = None) -> Any:
    """An ``onnxruntime.InferenceSession`` of the file on the CPU.

    Parameters
    ----------
    path : str or path
        An exported detector.
    threads : int, optional
        Intra-op threads (default: ONNX Runtime's, one per core).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        ONNX Runtime cannot load it (the message names the file).
    """
    import onnxruntime as ort

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"ONNX model not found: {name}")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(name, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValueError(f"cannot load ONNX model {name}: {' '.join(str(err).split())}") from None


def run_onnx(model: Union[PathLike, Any], batch: np.ndarray) -> np.ndarray:
    """Detect objects in a batch with an exported detector.

    Parameters
    ----------
    model : str, path or onnxruntime.InferenceSession
        The file (a session is built for this call) or a session of :func:`onnx_session`.
    batch : (B, 3, S, S) array
        RGB pixel values in 0..255, NCHW, each image resized to the model's ``S`` x ``S``
        (as :class:`evaluate.detector.Detector` feeds the MXNet model). ``B`` must be 1
        unless the model was exported with a free batch dimension.

    Returns
    -------
    (B, keep_topk, 6) float32 array
        Rows ``[class_id, score, xmin, ymin, xmax, ymax]``, corners normalized to [0, 1],
        by descending score; empty rows are all -1.
    """
    session = onnx_session(model) if isinstance(model, (str, os.PathLike)) else model
    data = np.ascontiguousarray(batch, dtype=np.float32)
    if data.ndim != 4 or data.shape[1] != 3:
        raise ValueError(f"batch must have shape (B, 3, S, S), got {data.shape}")
    name = session.get_inputs()[0].name
    return session.run(None, {name: data})[0]


def model_metadata(session: Any) -> dict:
    """What :mod:`symbol.onnx_export` records in the file: ``data_shape`` (int), ``decoding``
    (dict), ``num_classes`` (int), ``class_names`` (list, when recorded), ``preprocess``,
    ``variances``."""
    raw = dict(session.get_modelmeta().custom_metadata_map)
    out: dict = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
