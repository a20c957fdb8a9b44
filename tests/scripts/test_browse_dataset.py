"""tools/browse_dataset.py: pictures of augmented training samples, as train.py feeds them."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from common.images import load_image
from dataset.factory import open_dataset
from dataset.loader import DetectionDataset
from evaluate.visualize import draw_boxes
from tools.browse_dataset import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def voc_sample(fixtures_dir, tmp_path) -> Path:
    return Path(shutil.copytree(fixtures_dir / "voc_sample", tmp_path / "voc_sample"))


def test_writes_pictures_with_boxes_drawn(voc_sample, tmp_path):
    out = tmp_path / "viz"
    proc = subprocess.run([sys.executable, "-m", "tools.browse_dataset", "--dataset", "folder", "--data-root",
                           str(voc_sample), "--augment", "none", "--data-shape", "300", "--out-dir", str(out),
                           "--num", "3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote 3 pictures (300x300, --augment none, epoch 0, seed 0) to {out}" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["0000_1.png", "0001_2.png", "0002_3.png"]
    picture = load_image(out / "0000_1.png")
    assert picture.shape == (300, 300, 3)
    # 1.xml's first car, (296, 274, 322, 291) in the 500 px image, is (177.6, 164.4, 193.2, 174.6) at 300:
    # its bottom edge is drawn in class 0's colour where the plain resized image is not
    plain = load_image(voc_sample / "JPEGImages" / "1.jpg")
    blue = np.array(matplotlib.colormaps["tab10"](0)[:3]) * 255
    edge = picture[173:177, 182:189].reshape(-1, 3).astype(float)
    assert np.abs(edge - blue).max(axis=1).min() < 25
    import cv2

    resized = cv2.resize(plain, (300, 300)).astype(float)[173:177, 182:189].reshape(-1, 3)
    assert np.abs(resized - blue).max(axis=1).min() > 40


@pytest.mark.parametrize("augment, expand", [("caffe", True), ("photometric", False)])
def test_pictures_are_the_samples_train_py_draws(voc_sample, tmp_path, augment, expand):
    out = tmp_path / augment
    base = ["--dataset", "folder", "--data-root", str(voc_sample), "--augment", augment, "--data-shape", "128",
            "--seed", "5"] + ([] if expand else ["--no-expand"])
    assert main(base + ["--epoch", "2", "--num", "2", "--out-dir", str(out)]) == 0
    samples = DetectionDataset(open_dataset("folder", voc_sample, "trainval"), 128, train=True, seed=5,
                               expand=expand, augment=augment)
    samples.set_epoch(2)
    for k, name in enumerate(["0000_1.png", "0001_2.png"]):
        image, label = samples[k]
        expected = tmp_path / f"expected{k}.png"
        draw_boxes(np.clip(np.rint(image.transpose(1, 2, 0)), 0, 255).astype(np.uint8), label[:, 1:5] * 128,
                   label[:, 0].astype(int), ["car"], expected, difficult=label[:, 5] > 0.5)
        np.testing.assert_array_equal(load_image(out / name), load_image(expected))
    other = tmp_path / "epoch3"
    assert main(base + ["--epoch", "3", "--num", "1", "--out-dir", str(other)]) == 0
    assert not np.array_equal(load_image(other / "0000_1.png"), load_image(out / "0000_1.png"))


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "folder", "--data-root", "/no/such/dir"], "data root not found: /no/such/dir"),
    (["--dataset", "folder", "--data-root", "{root}", "--class-names", "person"],
     "1.xml: object 0 has unknown class 'car'"),
    (["--dataset", "folder", "--data-root", "{root}", "--augment", "mosaic"], "invalid choice: 'mosaic'"),
    (["--dataset", "folder", "--data-root", "{root}", "--num", "0"], "must be >= 1"),
    (["--dataset", "rec", "--data-root", "{root}"], "record file not found"),
])
def test_bad_input_is_one_line_and_writes_nothing(voc_sample, tmp_path, capsys, argv, message):
    out = tmp_path / "viz"
    assert main([a.format(root=voc_sample) for a in argv] + ["--out-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("browse_dataset: error: ") and message in err[0], err
    assert not out.exists()


def test_out_dir_must_be_a_folder(voc_sample, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["--dataset", "folder", "--data-root", str(voc_sample), "--out-dir", str(tmp_path / "file")]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err
