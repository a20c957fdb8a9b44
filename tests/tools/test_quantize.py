"""python -m tools.quantize: INT8 and bfloat16 checkpoints of the embedded model, used as any checkpoint.

The embedded model (MobileNet-0.25 SSD300 trained on the synthetic shapes) is
calibrated through a small synthetic VOC folder made here, as a user's
data set would be; the converted checkpoint is then run by ``demo.py
--save-json``, ``evaluate.py`` and ``Detector.from_checkpoint``, with the
float32 checkpoint as the independent reference.
"""
from __future__ import annotations

import contextlib
import io
import json
import runpy
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from dataset.synthetic import make_synthetic
from evaluate.detector import Detector
from evaluate.parity import match_detections
from symbol.quantization import cpu_has_bf16
from tools.quantize import main

REPO = Path(__file__).resolve().parents[2]
EMBEDDED = REPO / "assets" / "synthetic_model" / "ssd_synthetic"
THRESH, SCORE_TOL, MIN_IOU = 0.5, 0.08, 0.85  # loose for INT8, tight enough to catch a broken graph

pytestmark = pytest.mark.skipif(not mx.runtime.Features().is_enabled("MKLDNN"),
                                reason="INT8 needs MXNet built with oneDNN")


def run(*args: object) -> tuple[int, str, str]:
    """``main(args)`` in process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A VOC-format copy of synthetic scenes: 8 train images to calibrate on, 8 test images."""
    root = tmp_path_factory.mktemp("synth")
    make_synthetic(root, num_images=16, image_size=300, seed=11, test_fraction=0.5, empty_fraction=0.0)
    return root


@pytest.fixture(scope="module")
def int8(synthetic, tmp_path_factory) -> tuple[Path, str]:
    prefix = tmp_path_factory.mktemp("int8") / "ssd_int8"
    status, out, err = run("--prefix", EMBEDDED, "--out", prefix, "--calib-dataset", "folder",
                           "--calib-root", synthetic, "--calib-set", "train", "--num-calib", 8)
    assert status == 0, err
    return prefix, out


def test_int8_checkpoint_says_how_it_was_made(int8, synthetic):
    prefix, out = int8
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["ssd_int8-0000.params", "ssd_int8-config.json",
                                                               "ssd_int8-symbol.json"]
    config = json.loads(Path(f"{prefix}-config.json").read_text())
    embedded = json.loads(Path(f"{EMBEDDED}-config.json").read_text())
    assert {k: config[k] for k in ("network", "data_shape", "class_names", "preprocess", "backbone_kwargs", "nms")} \
        == {k: embedded[k] for k in ("network", "data_shape", "class_names", "preprocess", "backbone_kwargs", "nms")}
    q = config["quantized"]
    assert q["dtype"] == "int8" and config["version"] == 3
    assert q["calibration"] == {"mode": "naive", "num_images": 8, "quantized_dtype": "auto",
                                "source": {"kind": "folder", "root": str(synthetic), "split": "train"}}
    assert q["float_checkpoint"] == {"prefix": str(EMBEDDED), "epoch": 0}
    assert "ssd_mobilenet_preprocess0_concat0" in q["excluded_layers"]
    assert q["float32_ops"]["transpose"] == 12
    assert "int8, naive calibration on 8 image(s)" in out and "float32 layers:" in out


def test_int8_detects_what_float32_detects_in_demo(int8, synthetic, tmp_path, demo_detections):
    test = (synthetic / "ImageSets" / "Main" / "test.txt").read_text().split()
    images = [synthetic / "JPEGImages" / f"{i}.jpg" for i in test]
    reference = demo_detections(EMBEDDED, images, tmp_path / "fp32.json", THRESH - SCORE_TOL)
    ours = demo_detections(int8[0], images, tmp_path / "int8.json", THRESH - SCORE_TOL)
    pairs = 0
    for image, a, b in zip(images, reference, ours):
        parity = match_detections(a, b, THRESH, SCORE_TOL, MIN_IOU)
        assert parity.ok, f"{image.name}: {parity.summary()}"
        pairs += len(parity.pairs)
    assert pairs >= 8


def test_int8_in_detector_and_evaluate(int8, synthetic, tmp_path):
    detector = Detector.from_checkpoint(int8[0], 0, thresh=0.5, nms_thresh=0.3)
    assert detector.config.quantized["dtype"] == "int8" and detector.net.decoding.nms_thresh == 0.3
    image = np.zeros((200, 260, 3), np.uint8)  # an image with nothing on it: no detection
    assert detector.detect([image]) == [[]]
    evaluate = runpy.run_path(str(REPO / "evaluate.py"))["main"]
    maps = {}
    for name, prefix in (("fp32", EMBEDDED), ("int8", int8[0])):
        out = tmp_path / f"{name}.json"
        with contextlib.redirect_stdout(io.StringIO()):
            assert evaluate(["--prefix", str(prefix), "--dataset", "folder", "--data-root", str(synthetic),
                             "--set", "test", "--save-metrics", str(out)]) == 0
        maps[name] = json.loads(out.read_text())["mAP"]
    assert maps["fp32"] > 0.5 and abs(maps["int8"] - maps["fp32"]) < 0.05, maps


def test_calibration_from_a_folder_of_images(synthetic, tmp_path):
    status, out, err = run("--prefix", EMBEDDED, "--out", tmp_path / "m", "--calib-dir", synthetic / "JPEGImages",
                           "--num-calib", 3, "--calib-mode", "entropy")
    assert status == 0, err
    q = json.loads((tmp_path / "m-config.json").read_text())["quantized"]
    assert q["calibration"]["mode"] == "entropy" and q["calibration"]["num_images"] == 3
    assert q["calibration"]["source"] == {"kind": "dir", "root": str(synthetic / "JPEGImages")}


@pytest.mark.skipif(cpu_has_bf16() is False, reason="this CPU has no bfloat16 instructions")
def test_bfloat16(tmp_path):
    status, out, err = run("--prefix", EMBEDDED, "--out", tmp_path / "bf16", "--dtype", "bfloat16",
                           "--out-epoch", 3)
    assert status == 0, err
    config = json.loads((tmp_path / "bf16-config.json").read_text())
    assert config["quantized"]["dtype"] == "bfloat16" and config["quantized"]["calibration"] is None
    assert (tmp_path / "bf16-0003.params").is_file()
    detector = Detector.from_checkpoint(tmp_path / "bf16", 3, thresh=0.5)
    reference = Detector.from_checkpoint(EMBEDDED, 0, thresh=0.5)
    rng = np.random.default_rng(4)
    from dataset.synthetic import draw_sample

    images = [draw_sample(rng, 300, empty_fraction=0.0)[0][:, :, ::-1].copy() for _ in range(3)]
    for a, b in zip(reference.detect(images), detector.detect(images)):
        rows = [np.array([[d.class_id, d.score, *d.bbox] for d in dets]).reshape(-1, 6) for dets in (a, b)]
        assert match_detections(rows[0], rows[1], THRESH, 0.12, MIN_IOU).ok


def _broken_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


@pytest.mark.parametrize("case, message", [
    ("no checkpoint", "checkpoint params not found"),
    ("unwritable output", "is not a folder"),
    ("unreadable image", "cannot read image"),
    ("empty calibration set", "no calibration images in"),
    ("no calibration", "int8 needs calibration images"),
    ("same prefix", "own prefix"),
    ("split missing", "image set 'val' not found"),
    ("bad flag", "argument --calib-mode: invalid choice"),
])
def test_bad_input_is_one_line_and_writes_nothing(case, message, synthetic, tmp_path):
    out = tmp_path / "out" / "m_int8"
    out.parent.mkdir()
    calib = ["--calib-dir", synthetic / "JPEGImages"]
    args = {
        "no checkpoint": ["--prefix", tmp_path / "nope", "--out", out, *calib],
        "unwritable output": ["--prefix", EMBEDDED, "--out", Path(f"{EMBEDDED}-config.json") / "m", *calib],
        "unreadable image": ["--prefix", EMBEDDED, "--out", out, "--calib-dir", _broken_folder(tmp_path)],
        "empty calibration set": ["--prefix", EMBEDDED, "--out", out, "--calib-dir", tmp_path / "out"],
        "no calibration": ["--prefix", EMBEDDED, "--out", out],
        "same prefix": ["--prefix", EMBEDDED, "--out", EMBEDDED, *calib],
        "split missing": ["--prefix", EMBEDDED, "--out", out, "--calib-dataset", "folder", "--calib-root",
                          synthetic, "--calib-set", "val"],
        "bad flag": ["--prefix", EMBEDDED, "--out", out, *calib, "--calib-mode", "kl"],
    }[case]
    before = sorted(EMBEDDED.parent.iterdir())
    status, stdout, stderr = run(*args)
    assert status == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("quantize: error: ") and message in lines[0], stderr
    assert list((tmp_path / "out").iterdir()) == []  # nothing written, not even a temporary file
    assert sorted(EMBEDDED.parent.iterdir()) == before


def test_int8_cannot_be_fine_tuned(int8):
    from train.trainer import finetune_model

    with pytest.raises(ValueError, match=f"cannot be trained: fine-tune the float checkpoint it was made from "
                                         f"\\({EMBEDDED}, epoch 0\\)"):
        finetune_model(int8[0], 0, ["a", "b"])
