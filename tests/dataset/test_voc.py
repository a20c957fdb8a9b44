"""Tests of dataset/voc.py: the XML parser, VOCDetection over a VOCdevkit, VOCFolder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from dataset.synthetic import write_voc_xml
from dataset.voc import VOC_CLASSES, VOCDetection, VOCFolder, parse_voc_xml

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "voc_sample"


def _xml(width: int = 100, height: int = 80, objects: str = "", filename: str = "x.jpg") -> str:
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>")


def _obj(name: str, box: tuple, difficult: object = 0) -> str:
    x1, y1, x2, y2 = box
    return (f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
            f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
            f"</bndbox></object>")


def _write(tmp_path: Path, text: str, name: str = "a.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the shared real-world fixture ---------------------------------------------------------

@pytest.fixture(scope="module")
def sample() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip(f"VOC sample fixture not found at {SAMPLE}")
    return SAMPLE


def test_voc_sample_folder(sample: Path) -> None:
    ds = VOCFolder(sample)
    assert ds.class_names == ("car",)
    assert ds.ids == ("1", "2", "3", "4", "5")
    assert len(ds) == 5
    assert [a.num_objects for a in ds] == [3, 2, 2, 4, 1]
    first = ds[0]
    assert Path(first.image) == sample / "JPEGImages" / "1.jpg"
    assert (first.width, first.height) == (500, 500)
    # 1.xml: (297, 275, 322, 291), (214, 270, 248, 293), (336, 273, 360, 290), 1-based inclusive
    np.testing.assert_array_equal(first.boxes, [[296, 274, 322, 291], [213, 269, 248, 293],
                                                [335, 272, 360, 290]])
    assert first.labels.tolist() == [0, 0, 0] and not first.difficult.any()
    # 3.xml's second car starts at xmin=1, the left image border: 0 after conversion.
    np.testing.assert_array_equal(ds[2].boxes[1], [0, 265, 68, 317])


def test_voc_sample_with_voc_classes_gives_car_label(sample: Path) -> None:
    ann = parse_voc_xml(sample / "Annotations" / "5.xml", VOC_CLASSES)
    assert ann.labels.tolist() == [VOC_CLASSES.index("car")] == [6]
    np.testing.assert_array_equal(ann.boxes, [[247, 275, 260, 286]])


def test_voc_sample_unknown_class_skipped_gives_empty_images(sample: Path) -> None:
    ds = VOCFolder(sample, class_names=["person"], skip_unknown=True)
    assert len(ds) == 5 and all(a.num_objects == 0 for a in ds)
    with pytest.raises(ValueError, match=r"1\.xml.*unknown class 'car'"):
        VOCFolder(sample, class_names=["person"])


# --- parse_voc_xml ---------------------------------------------------------------------------

def test_parse_converts_coordinates_and_resolves_image(tmp_path: Path) -> None:
    path = _write(tmp_path, _xml(objects=_obj("dog", (1, 1, 100, 80)) + _obj("cat", (5, 6, 7, 8), 1)))
    ann = parse_voc_xml(path, ["cat", "dog"])
    np.testing.assert_array_equal(ann.boxes, [[0, 0, 100, 80], [4, 5, 7, 8]])
    assert ann.labels.tolist() == [1, 0] and ann.difficult.tolist() == [False, True]
    assert Path(ann.image) == tmp_path.parent / "JPEGImages" / "x.jpg"
    assert parse_voc_xml(path, ["cat", "dog"], image="given.png").image == "given.png"


def test_parse_drops_difficult_when_asked(tmp_path: Path) -> None:
    path = _write(tmp_path, _xml(objects=_obj("dog", (1, 1, 9, 9)) + _obj("cat", (5, 6, 7, 8), 1)))
    ann = parse_voc_xml(path, ["cat", "dog"], use_difficult=False)
    assert ann.labels.tolist() == [1] and ann.difficult.tolist() == [False]


def test_parse_image_without_objects(tmp_path: Path) -> None:
    ann = parse_voc_xml(_write(tmp_path, _xml()), ["cat"])
    assert ann.boxes.shape == (0, 4) and ann.labels.shape == (0,)


def test_box_outside_image_is_clipped(tmp_path: Path) -> None:
    path = _write(tmp_path, _xml(objects=_obj("cat", (-5, 0, 120, 90.5))))
    ann = parse_voc_xml(path, ["cat"])
    np.testing.assert_array_equal(ann.boxes, [[0, 0, 100, 80]])


@pytest.mark.parametrize("box", [(50, 10, 40, 20), (101, 10, 130, 20), (10, 90, 20, 95)])
def test_degenerate_box_names_file_and_object(tmp_path: Path, box: tuple) -> None:
    path = _write(tmp_path, _xml(objects=_obj("cat", (1, 1, 5, 5)) + _obj("cat", box)), "bad.xml")
    with pytest.raises(ValueError, match=r"bad\.xml: object 1 \(cat\) has an empty box"):
        parse_voc_xml(path, ["cat"])


def test_single_pixel_box_is_valid(tmp_path: Path) -> None:
    ann = parse_voc_xml(_write(tmp_path, _xml(objects=_obj("cat", (3, 4, 3, 4)))), ["cat"])
    np.testing.assert_array_equal(ann.boxes, [[2, 3, 3, 4]])


@pytest.mark.parametrize("text, match", [
    ("<annotation><size>", "malformed XML"),
    ("<annotation><object/></annotation>", "missing <size>"),
    ("<annotation><size><width>10</width></size></annotation>", "no <height>"),
    (_xml(width=0), "positive"),
    (_xml(objects=_obj("horse", (1, 1, 5, 5))), "unknown class 'horse'"),
    (_xml(objects="<object><name>cat</name></object>"), "no <bndbox>"),
    (_xml(objects=_obj("cat", (1, "a", 5, 5))), "not a number"),
    (_xml(objects=_obj("cat", (1, 1, 5, 5), difficult="yes")), "difficult> must be 0 or 1"),
])
def test_bad_annotation_errors_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, text, "broken.xml")
    with pytest.raises(ValueError, match=match) as info:
        parse_voc_xml(path, ["cat"])
    assert str(path) in str(info.value)


def test_unknown_class_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path, _xml(objects=_obj("horse", (1, 1, 5, 5)) + _obj("cat", (2, 2, 6, 6))))
    ann = parse_voc_xml(path, ["cat"], skip_unknown=True)
    assert ann.labels.tolist() == [0]
    np.testing.assert_array_equal(ann.boxes, [[1, 1, 6, 6]])


def test_missing_xml_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        parse_voc_xml(tmp_path / "nope.xml", ["cat"])


# --- VOCDetection over a VOCdevkit layout -------------------------------------------------

def _devkit_image(voc: Path, image_id: str, objects: list, names: Optional[list] = None) -> None:
    (voc / "JPEGImages" / f"{image_id}.jpg").write_bytes(b"not decoded here")
    write_voc_xml(voc / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 64, 48,
                  np.asarray([o[1] for o in objects]).reshape(-1, 4), [o[0] for o in objects])


@pytest.fixture()
def devkit(tmp_path: Path) -> Path:
    root = tmp_path / "VOCdevkit"
    for year, ids in ((2007, ["000005", "000007"]), (2012, ["2008_000001"])):
        voc = root / f"VOC{year}"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (voc / sub).mkdir(parents=True)
        (voc / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(ids) + "\n")
    _devkit_image(root / "VOC2007", "000005", [("dog", (0, 0, 10, 10)), ("person", (5, 5, 64, 48))])
    _devkit_image(root / "VOC2007", "000007", [])
    _devkit_image(root / "VOC2012", "2008_000001", [("tvmonitor", (1, 2, 3, 4))])
    return root


def test_voc_detection_reads_years_in_order(devkit: Path) -> None:
    ds = VOCDetection(devkit, years=(2007, 2012))
    assert ds.class_names == VOC_CLASSES and len(ds) == 3
    assert ds.ids == ("VOC2007/000005", "VOC2007/000007", "VOC2012/2008_000001")
    assert ds[0].labels.tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")]
    np.testing.assert_array_equal(ds[0].boxes, [[0, 0, 10, 10], [5, 5, 64, 48]])
    assert ds[1].num_objects == 0
    assert ds[2].labels.tolist() == [19]
    assert Path(ds[2].image) == devkit / "VOC2012" / "JPEGImages" / "2008_000001.jpg"


def test_voc_detection_class_subset(devkit: Path) -> None:
    ds = VOCDetection(devkit, class_names=["person", "dog"], skip_unknown=True)
    assert len(ds) == 2 and ds[0].labels.tolist() == [1, 0]


def test_voc_detection_missing_files_are_named(devkit: Path) -> None:
    with pytest.raises(FileNotFoundError, match="VOC2010"):
        VOCDetection(devkit, years=(2010,))
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Main/test\.txt"):
        VOCDetection(devkit, image_set="test")
    (devkit / "VOC2007" / "JPEGImages" / "000007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"000007\.jpg"):
        VOCDetection(devkit)
    (devkit / "VOC2007" / "Annotations" / "000005.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"000005\.xml"):
        VOCDetection(devkit)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VOCDetection(devkit / "nowhere")


def test_voc_folder_with_and_without_image_set(devkit: Path) -> None:
    voc = devkit / "VOC2007"
    everything = VOCFolder(voc)
    assert everything.class_names == ("dog", "person") and everything.ids == ("000005", "000007")
    listed = VOCFolder(voc, image_set="trainval", class_names=["person", "dog"])
    assert listed.ids == ("000005", "000007") and listed[0].labels.tolist() == [1, 0]
    with pytest.raises(FileNotFoundError, match="Annotations"):
        VOCFolder(voc / "JPEGImages")
