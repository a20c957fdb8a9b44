"""dataset/factory.py: open_dataset, the one way the scripts open data, over every kind; the
folder splits, unknown classes, clipped boxes and look-alike names it reports."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataset.coco import COCODetection
from dataset.factory import open_dataset
from dataset.voc import VOCFolder


@pytest.fixture
def sample(fixtures_dir, tmp_path) -> Path:
    """A copy of the five-image VOC folder without ImageSets (class ``car``, 12 objects)."""
    return Path(shutil.copytree(fixtures_dir / "voc_sample", tmp_path / "voc_sample"))


def _rename_objects(xml: Path, old: str, new: str, count: int = 1) -> None:
    xml.write_text(xml.read_text().replace(f"<name>{old}</name>", f"<name>{new}</name>", count))


def _messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_folder_without_image_sets_reads_every_annotation(sample, caplog):
    caplog.set_level(logging.INFO, logger="dataset")
    for split in ("trainval", "test", None):
        caplog.clear()
        ds = open_dataset("folder", sample, split)
        assert isinstance(ds, VOCFolder) and ds.image_set is None
        assert ds.ids == ("1", "2", "3", "4", "5") and ds.class_names == ("car",)
        assert [a.num_objects for a in ds] == [3, 2, 2, 4, 1]
        notes = [m for m in _messages(caplog, logging.INFO) if "no ImageSets/Main" in m]
        assert notes == ([] if split is None else
                         [f"{sample} has no ImageSets/Main: image set {split!r} is every annotated image"])
    # a voc dataset that is a plain folder is read as one
    assert open_dataset("voc", sample, "test").ids == ds.ids


def test_folder_with_image_sets_needs_the_split(sample):
    main = sample / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("1\n2\n4\n")
    (main / "test.txt").write_text("3\n5\n")
    (main / "car_train.txt").write_text("1 1\n2 1\n4 1\n")  # VOC's per-class lists are not sets
    assert open_dataset("folder", sample, "train").ids == ("1", "2", "4")
    assert open_dataset("folder", sample, "test").image_set == "test"
    with pytest.raises(FileNotFoundError) as err:
        open_dataset("folder", sample, "trainval")
    assert str(err.value) == (f"image set 'trainval' not found: no {main / 'trainval.txt'}; the sets in "
                              f"{main} are: test, train")


def test_unknown_classes_error_or_one_warning(sample, caplog):
    with pytest.raises(ValueError) as err:
        open_dataset("folder", sample, None, ["person"])
    message = str(err.value)
    assert message.startswith(f"{sample / 'Annotations' / '1.xml'}: object 0 has unknown class 'car'")
    assert "--skip-unknown" in message and "--class-names" in message and "skip_unknown=True" not in message

    _rename_objects(sample / "Annotations" / "2.xml", "car", "truck", count=2)
    caplog.set_level(logging.WARNING, logger="dataset")
    ds = open_dataset("folder", sample, None, ["car"], skip_unknown=True)
    assert [a.num_objects for a in ds] == [3, 0, 2, 4, 1]
    assert _messages(caplog, logging.WARNING) == [
        f"{sample} (every annotation): dropped 2 objects of classes not in the class names (2 'truck'; "
        f"e.g. in {sample / 'Annotations' / '2.xml'})"]


def test_clipped_boxes_give_one_warning(sample, caplog):
    # 4.xml's and 5.xml's first boxes reach past the 500 px image
    for name in ("4.xml", "5.xml"):
        xml = sample / "Annotations" / name
        text = xml.read_text()
        start = text.index("<xmax>") + len("<xmax>")
        xml.write_text(text[:start] + "530" + text[text.index("</xmax>"):])
    caplog.set_level(logging.WARNING, logger="dataset")
    ds = open_dataset("folder", sample)
    assert ds[3].boxes[0, 2] == 500 and ds[4].boxes[0, 2] == 500
    assert _messages(caplog, logging.WARNING) == [
        f"{sample} (every annotation): clipped 2 boxes reaching outside the image to it (e.g. object 0 of "
        f"{sample / 'Annotations' / '4.xml'})"]


def test_inferred_lookalike_names_are_an_error(sample):
    _rename_objects(sample / "Annotations" / "3.xml", "car", "Car")
    with pytest.raises(ValueError) as err:
        open_dataset("folder", sample)
    assert str(err.value) == (
        f"{sample} (every annotation): class names 'Car' and 'car' look like the same class: 'Car' in 3.xml; "
        f"'car' in 1.xml, 2.xml, 3.xml and 2 more; fix the annotation, or pass --class-names (class_names) "
        f"to list the classes")
    # given class names are the user's word: two classes
    assert [a.labels.tolist() for a in open_dataset("folder", sample, None, ["car", "Car"])][2] == [1, 0]


def test_coco(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val").mkdir()
    data = {"images": [{"id": 4, "file_name": "a.jpg", "width": 50, "height": 40}],
            "categories": [{"id": 3, "name": "cat"}, {"id": 9, "name": "dog"}],
            "annotations": [{"id": 1, "image_id": 4, "category_id": 9, "bbox": [1, 2, 10, 10], "iscrowd": 0},
                            {"id": 2, "image_id": 4, "category_id": 3, "bbox": [5, 5, 9, 9], "iscrowd": 1}]}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))
    ds = open_dataset("coco", root, "val")
    assert isinstance(ds, COCODetection) and ds.class_names == ("cat", "dog")
    assert ds[0].image == str(root / "val" / "a.jpg") and ds[0].labels.tolist() == [1]
    kept = open_dataset("coco", annotations=root / "annotations" / "instances_val.json", keep_crowd=True)
    assert kept[0].image == str(root / "annotations" / "a.jpg")  # images beside the JSON without a root
    assert kept[0].labels.tolist() == [1, 0] and kept[0].difficult.tolist() == [False, True]
    with pytest.raises(FileNotFoundError, match="instances_test.json"):
        open_dataset("coco", root, "test")


def test_records_carry_their_class_names(sample, tmp_path):
    from dataset.recordio import make_records

    names = ("car",)
    make_records(open_dataset("folder", sample), tmp_path / "rec" / "cars", class_names=names)
    assert (tmp_path / "rec" / "cars.names").read_text() == "car\n"
    ds = open_dataset("rec", tmp_path / "rec", "cars")
    assert ds.class_names == names and len(ds) == 5
    assert open_dataset("rec", rec_path=tmp_path / "rec" / "cars.rec", class_names=["car"]).class_names == names
    with pytest.raises(ValueError) as err:
        open_dataset("rec", rec_path=tmp_path / "rec" / "cars.rec", class_names=["truck", "car"])
    assert str(err.value) == (f"class names truck,car differ from car stored in {tmp_path / 'rec' / 'cars.names'}: "
                              f"drop --class-names to use the stored ones, or fix cars.names")
    # packed again without names: the stale file goes, and the names must be given
    make_records(open_dataset("folder", sample), tmp_path / "rec" / "cars")
    assert not (tmp_path / "rec" / "cars.names").exists()
    with pytest.raises(ValueError, match="there is no .*cars.names to name them: pass --class-names"):
        open_dataset("rec", rec_path=tmp_path / "rec" / "cars.rec")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"kind": "kitti", "root": "."}, ValueError, "unknown dataset kind 'kitti'; choose from voc, folder, coco, rec"),
    ({"kind": "folder"}, ValueError, "a folder dataset needs a root folder"),
    ({"kind": "rec", "root": "."}, ValueError, "needs its .rec file, or a root folder and a split"),
    ({"kind": "coco"}, ValueError, "needs its instances JSON, or a root folder and a split"),
    ({"kind": "voc", "root": "/no/such/devkit"}, FileNotFoundError, "VOCdevkit folder not found"),
    ({"kind": "rec", "root": "/no", "split": "train"}, FileNotFoundError, "record file not found: /no/train.rec"),
])
def test_errors(kwargs, error, message):
    with pytest.raises(error, match=message.replace(".", r"\.").replace("(", r"\(")):
        open_dataset(**kwargs)


def test_voc_devkit_default_split_and_classes(tmp_path, voc_folder_writer):
    devkit = tmp_path / "VOCdevkit"
    voc_folder_writer(devkit / "VOC2007", {"000001": [("dog", (1, 1, 20, 20), False)]}, 40, 30,
                      image_set="trainval")
    ds = open_dataset("voc", devkit)
    assert ds.ids == ("VOC2007/000001",) and len(ds.class_names) == 20 and ds[0].labels.tolist() == [11]
    np.testing.assert_array_equal(ds[0].boxes, [[1, 1, 20, 20]])
