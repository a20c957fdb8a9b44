"""Shared test fixtures: the read-only fixture folder beside the repository."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures`` (real Caffe prototxts, VOC photos); skips if absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


def _write_voc_folder(root: Path, objects: dict, width: int, height: int, image_set: str = "test") -> Path:
    import cv2
    import numpy as np

    from dataset.synthetic import write_voc_xml

    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, objs in objects.items():
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), np.full((height, width, 3), 127, np.uint8))
        write_voc_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", width, height,
                      np.array([o[1] for o in objs]).reshape(-1, 4), [o[0] for o in objs],
                      [o[2] for o in objs])
    (root / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(objects) + "\n")
    return root


@pytest.fixture(scope="session")
def voc_folder_writer():
    """``write(root, objects, width, height, image_set="test") -> root``: a VOC-format folder of
    blank ``width`` x ``height`` images; ``objects`` maps an image id to ``(class name,
    0-based continuous corners, difficult)`` triples; every image is listed in the set."""
    return _write_voc_folder


def _demo_detections(prefix: Path, images: list, out: Path, thresh: float = 0.298) -> list:
    """``demo.py --save-json`` run as a user runs it (its ``main``): per image an ``(N, 6)``
    array of rows ``[class_id, score, x1, y1, x2, y2]``, boxes normalized to the image."""
    import runpy

    import numpy as np

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "demo.py"))["main"]
    status = main(["--prefix", str(prefix), "--images", ",".join(map(str, images)), "--cpu",
                   "--thresh", str(thresh), "--save-json", str(out)])
    assert status == 0
    import json

    result = []
    for entry in json.loads(Path(out).read_text()):
        w, h = entry["width"], entry["height"]
        rows = [[d["class_id"], d["score"], *np.divide(d["bbox"], [w, h, w, h])] for d in entry["detections"]]
        result.append(np.array(rows, dtype=np.float64).reshape(-1, 6))
    return result


@pytest.fixture(scope="session")
def demo_detections():
    """``run(prefix, images, out_json, thresh=0.298) -> [array (N, 6)]``: the detections
    ``demo.py --save-json`` writes, boxes normalized (the parity tests' view of a model)."""
    return _demo_detections
