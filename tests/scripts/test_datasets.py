"""Datasets end to end, as a new user meets them: a labelling tool's folder without ImageSets
trained and evaluated, a validation split carved from it, records that carry their class
names, and the one-line messages of unknown classes, typos, clipped boxes and long class
lists. Every script runs as a user runs it, on a copy of the data."""
from __future__ import annotations

import importlib.util
import json
import logging
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
from dataset.voc import VOCFolder
from symbol.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--network", "mobilenet", "--data-shape", "96", "--multiplier", "0.25", "--batch-norm", "--cpu",
         "--frequent", "0"]


@pytest.fixture
def voc_sample(fixtures_dir, tmp_path) -> Path:
    """A copy of the five-image VOC folder without ImageSets (class ``car``, 12 objects)."""
    return Path(shutil.copytree(fixtures_dir / "voc_sample", tmp_path / "voc_sample"))


def run(*args: object, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, prog: str) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr
    return lines[0]


def set_object(xml: Path, index: int, name: str = None, xmax: str = None) -> None:
    """Rename object ``index`` of a VOC file, or move its ``xmax``."""
    text = xml.read_text()
    start = 0
    for _ in range(index + 1):
        start = text.index("<object>", start) + 1
    end = text.index("</object>", start)
    obj = text[start:end]
    if name is not None:
        obj = obj[:obj.index("<name>") + 6] + name + obj[obj.index("</name>"):]
    if xmax is not None:
        obj = obj[:obj.index("<xmax>") + 6] + xmax + obj[obj.index("</xmax>"):]
    xml.write_text(text[:start] + obj + text[end:])


# --------------------------------------------------------------------------- problem 1
def test_a_folder_without_image_sets_trains_and_evaluates(voc_sample, tmp_path):
    prefix = tmp_path / "model" / "cars"
    proc = run("train.py", "--dataset", "folder", "--data-root", voc_sample, "--class-names", "car",
               "--end-epoch", 1, "--batch-size", 5, "--prefix", prefix, *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert f"{voc_sample} has no ImageSets/Main: image set 'trainval' is every annotated image" in proc.stdout
    assert "(every annotation): 5 images, 12 objects, 1 classes" in proc.stdout
    assert "Epoch[1] Train-loss=" in proc.stdout
    assert load_checkpoint(prefix, 1)[1].class_names == ("car",)

    metrics = tmp_path / "map.json"
    proc = run("evaluate.py", "--prefix", prefix, "--epoch", 1, "--dataset", "folder", "--data-root", voc_sample,
               "--save-metrics", metrics)
    assert proc.returncode == 0, proc.stderr
    assert f"dataset: folder {voc_sample} (test): 5 images, 1 classes" in proc.stdout
    scores = json.loads(metrics.read_text())
    assert scores["metric"] == "voc07" and list(scores["ap"]) == ["car"] and 0 <= scores["mAP"] <= 1


def test_val_split_holds_out_seeded_images(voc_sample, tmp_path):
    proc = run("train.py", "--dataset", "folder", "--data-root", voc_sample, "--val-split", 0.4, "--seed", 3,
               "--end-epoch", 1, "--batch-size", 3, "--prefix", tmp_path / "ssd", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "--val-split 0.4: 3 training and 2 validation images (seed 3)" in proc.stdout
    assert "Validation-voc07=" in proc.stdout


def _train_script():
    """train.py as a module (``import train`` is the train/ package)."""
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, message", [
    (["--dataset", "folder", "--data-root", "{sample}", "--val-set", "test"],
     "{sample} has no ImageSets/Main, so --val-set test would validate on the training images: hold some "
     "out with --val-split 0.1 instead"),
    (["--dataset", "folder", "--data-root", "{sample}", "--val-split", "0.1", "--val-set", "test"],
     "--val-split carves the validation images from the training set"),
    (["--dataset", "folder", "--data-root", "{sample}", "--val-split", "1"], "below 1: got 1"),
    (["--dataset", "folder", "--data-root", "{sample}", "--val-split", "0"], "must be > 0"),
    (["--dataset", "coco", "--data-root", "{sample}", "--skip-unknown"],
     "--skip-unknown only applies with --dataset voc or folder"),
    (["--dataset", "rec", "--train-path", "x.rec", "--val-set", "test"],
     "--val-set with --dataset rec needs --data-root holding VAL_SET.rec, or give --val-path"),
])
def test_dataset_flag_errors_are_one_line(fixtures_dir, capsys, args, message):
    sample = fixtures_dir / "voc_sample"
    argv = [a.format(sample=sample) for a in args] + ["--cpu", "--prefix", "/nonexistent/ssd"]
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        assert _train_script().main(argv) == 1  # all fail before logging is set up
    finally:
        for h in root.handlers[len(handlers):]:
            root.removeHandler(h)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: ") and message.format(sample=sample) in err[0]


# --------------------------------------------------------------------------- problem 4
def test_packed_records_carry_their_class_names(tmp_path):
    root = tmp_path / "synthetic"
    make_synthetic(root, num_images=6, image_size=96, seed=1, test_fraction=0.34)
    train_ids = VOCFolder(root, SYNTHETIC_CLASSES, image_set="train").ids
    target = tmp_path / "data" / "syn_train"
    # the README's example: the training split packed for training
    proc = run("-m", "tools.prepare_dataset", "--dataset", "folder", "--data-root", root, "--set", "train",
               "--target", target)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "syn_train.names").read_text() == "circle\nsquare\ntriangle\n"
    assert len((tmp_path / "data" / "syn_train.lst").read_text().splitlines()) == len(train_ids) == 4

    prefix = tmp_path / "model" / "ssd"
    proc = run("train.py", "--dataset", "rec", "--train-path", f"{target}.rec", "--end-epoch", 1,
               "--batch-size", 4, "--prefix", prefix, *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(prefix, 1)[1].class_names == tuple(SYNTHETIC_CLASSES)

    proc = run("evaluate.py", "--prefix", prefix, "--epoch", 1, "--dataset", "rec", "--rec-path", f"{target}.rec")
    assert proc.returncode == 0, proc.stderr
    assert "(test): 4 images, 3 classes" in proc.stdout

    line = one_error_line(run("train.py", "--dataset", "rec", "--train-path", f"{target}.rec", "--class-names",
                              "circle,square", "--prefix", tmp_path / "other", *SMALL), "train.py")
    assert (f"class names circle,square differ from circle,square,triangle stored in "
            f"{tmp_path / 'data' / 'syn_train.names'}") in line


# --------------------------------------------------------------------------- problem 7
def test_unknown_class_error_names_the_file_and_the_flags(voc_sample, tmp_path):
    line = one_error_line(run("-m", "tools.prepare_dataset", "--dataset", "folder", "--data-root", voc_sample,
                              "--class-names", "person", "--target", tmp_path / "rec" / "x"), "prepare_dataset")
    assert f"{voc_sample / 'Annotations' / '1.xml'}: object 0 has unknown class 'car'" in line
    assert "pass --skip-unknown to drop objects of other classes, or --class-names to list every class" in line
    assert not (tmp_path / "rec").exists()


def test_skipped_objects_and_clipped_boxes_give_one_warning_each(voc_sample, tmp_path):
    set_object(voc_sample / "Annotations" / "2.xml", 0, name="truck")
    set_object(voc_sample / "Annotations" / "2.xml", 1, name="truck")
    set_object(voc_sample / "Annotations" / "4.xml", 2, xmax="530")  # past the 500 px image
    proc = run("-m", "tools.prepare_dataset", "--dataset", "folder", "--data-root", voc_sample, "--class-names",
               "car", "--skip-unknown", "--target", tmp_path / "rec" / "cars")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"WARNING dataset.voc: {voc_sample} (every annotation): clipped 1 box reaching outside the image to "
        f"it (e.g. object 2 of {voc_sample / 'Annotations' / '4.xml'})",
        f"WARNING dataset.voc: {voc_sample} (every annotation): dropped 2 objects of classes not in the class "
        f"names (2 'truck'; e.g. in {voc_sample / 'Annotations' / '2.xml'})"]
    assert "5 images, 10 objects" in proc.stdout


def test_a_typo_in_an_inferred_class_is_an_error(voc_sample, tmp_path):
    set_object(voc_sample / "Annotations" / "4.xml", 1, name="Car")
    line = one_error_line(run("train.py", "--dataset", "folder", "--data-root", voc_sample, "--end-epoch", 1,
                              "--prefix", tmp_path / "ssd", *SMALL), "train.py")
    assert ("class names 'Car' and 'car' look like the same class: 'Car' in 4.xml; 'car' in 1.xml, 2.xml, "
            "3.xml and 2 more; fix the annotation, or pass --class-names") in line
    assert not (tmp_path / "ssd-config.json").exists()


def test_eighty_comma_separated_class_names(voc_sample, tmp_path):
    names = ["car"] + [f"a_rather_long_class_name_{k:02d}" for k in range(79)]
    assert len(",".join(names)) > 255  # longer than a file name can be
    detections, metrics = tmp_path / "dets.json", tmp_path / "m.json"
    detections.write_text("[]")
    main = runpy.run_path(str(REPO / "evaluate.py"))["main"]
    assert main(["--detections", str(detections), "--dataset", "folder", "--data-root", str(voc_sample),
                 "--class-names", ",".join(names), "--save-metrics", str(metrics)]) == 0
    scores = json.loads(metrics.read_text())
    assert list(scores["ap"]) == names and scores["ap"]["car"] == 0.0
