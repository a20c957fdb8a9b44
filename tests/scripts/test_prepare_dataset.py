"""tools/prepare_dataset.py: folder -> RecordIO -> RecordDetection round trips and errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dataset.recordio import RecordDetection
from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic, write_voc_xml
from dataset.voc import VOCFolder
from tools.prepare_dataset import main

REPO = Path(__file__).resolve().parents[2]
SIZE = 96


def test_synthetic_folder_round_trip(tmp_path, capsys):
    root = tmp_path / "syn"
    make_synthetic(root, num_images=6, image_size=SIZE, empty_fraction=0.3, seed=5)
    target = tmp_path / "rec" / "train"
    assert main(["--dataset", "folder", "--data-root", str(root), "--target", str(target),
                 "--class-names", ",".join(SYNTHETIC_CLASSES), "--no-shuffle"]) == 0
    assert "6 images" in capsys.readouterr().out
    for ext in ("lst", "rec", "idx"):
        assert (tmp_path / "rec" / f"train.{ext}").is_file()
    assert (tmp_path / "rec" / "train.names").read_text() == "circle\nsquare\ntriangle\n"
    lines = (tmp_path / "rec" / "train.lst").read_text().splitlines()
    assert [line.split("\t")[-1] for line in lines] == [f"JPEGImages/{i:06d}.jpg" for i in range(6)]
    assert len({len(line.split("\t")) for line in lines}) == 1  # same width on every line

    original = VOCFolder(root, class_names=SYNTHETIC_CLASSES)
    rec = RecordDetection(f"{target}.rec", class_names=SYNTHETIC_CLASSES)
    assert len(rec) == len(original) == 6
    for i, want in enumerate(original):
        got = rec[i]
        assert (got.width, got.height) == (SIZE, SIZE)
        assert got.labels.tolist() == want.labels.tolist()
        assert got.difficult.tolist() == want.difficult.tolist()
        np.testing.assert_allclose(got.boxes / SIZE, want.boxes / SIZE, atol=1.0 / SIZE)
        image = rec.image(i)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        # Pass-through: the stored bytes are the original JPEG, decoded identically.
        disk = cv2.cvtColor(cv2.imread(want.image), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(image, disk)
    assert any(a.num_objects == 0 for a in original)


def _many_objects_folder(root: Path, n: int = 70) -> None:
    """Image 000000 with ``n`` tiny boxes (every other one difficult), 000001 without objects."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    width, height = 160, 120
    for image_id, count in (("000000", n), ("000001", 0)):
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"),
                    np.full((height, width, 3), 90, dtype=np.uint8))
        boxes = [[(k % 14) * 10 + 1, (k // 14) * 10 + 2, (k % 14) * 10 + 6, (k // 14) * 10 + 8]
                 for k in range(count)]
        names = [SYNTHETIC_CLASSES[k % 3] for k in range(count)]
        write_voc_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", width, height,
                      np.asarray(boxes).reshape(-1, 4), names,
                      [k % 2 == 1 for k in range(count)] if count else None)


def test_more_than_57_objects_and_empty_image_survive(tmp_path):
    root = tmp_path / "many"
    _many_objects_folder(root)
    target = tmp_path / "many_rec"
    assert main(["--dataset", "folder", "--data-root", str(root), "--target", str(target),
                 "--class-names", ",".join(SYNTHETIC_CLASSES), "--seed", "3"]) == 0
    lines = (tmp_path / "many_rec.lst").read_text().splitlines()
    assert {len(line.split("\t")) for line in lines} == {1 + 2 + 6 * 70 + 1}
    original = {Path(a.image).name: a for a in VOCFolder(root, class_names=SYNTHETIC_CLASSES)}
    rec = RecordDetection(f"{target}.rec", class_names=SYNTHETIC_CLASSES)
    assert len(rec) == 2
    for i, line in enumerate(lines):
        want = original[Path(line.split("\t")[-1]).name]
        image, got = rec.load(i)
        assert image.shape == (120, 160, 3)
        assert got.num_objects == want.num_objects
        assert got.labels.tolist() == want.labels.tolist()
        assert got.difficult.tolist() == want.difficult.tolist()
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
    assert sorted(rec[i].num_objects for i in range(2)) == [0, 70]


def test_no_use_difficult_drops_difficult_objects(tmp_path):
    root = tmp_path / "many"
    _many_objects_folder(root, n=10)
    target = tmp_path / "easy"
    assert main(["--dataset", "folder", "--data-root", str(root), "--target", str(target),
                 "--no-use-difficult", "--no-shuffle"]) == 0
    rec = RecordDetection(f"{target}.rec")  # the class names found, from easy.names
    assert rec.class_names == tuple(SYNTHETIC_CLASSES)
    assert rec[0].num_objects == 5 and not rec[0].difficult.any()
    assert rec[1].num_objects == 0


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "folder", "--data-root", "/no/such/dir", "--target", "x"], "data root not found"),
    (["--dataset", "imagenet", "--data-root", ".", "--target", "x"], "invalid choice: 'imagenet'"),
    (["--dataset", "coco", "--target", "x"], "needs --annotations and --images"),
    (["--dataset", "voc", "--data-root", "{tmp}", "--target", "{tmp}/x"], "VOC2007 folder not found"),
    (["--dataset", "folder", "--data-root", "{tmp}", "--target", "{tmp}/x"], "Annotations folder"),
    (["--dataset", "coco", "--annotations", "a.json", "--images", "{tmp}", "--target", "x", "--skip-unknown"],
     "--skip-unknown only applies with --dataset voc or folder"),
])
def test_bad_input_is_one_stderr_line(tmp_path, capsys, argv, message):
    assert main([a.format(tmp=tmp_path) for a in argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("prepare_dataset: error:") and message in lines[0]


def test_module_entry_point_reports_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tools.prepare_dataset", "--dataset", "folder",
                           "--data-root", str(tmp_path / "missing"), "--target", str(tmp_path / "x")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"prepare_dataset: error: data root not found: {tmp_path / 'missing'}"]
