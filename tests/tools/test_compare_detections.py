"""tools.compare_detections: two demo.py --save-json files compared image by image."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.compare_detections import main


def write(path: Path, images: dict[str, list[tuple[str, float, list[float]]]]) -> Path:
    data = [{"image": image, "width": 200, "height": 100,
             "detections": [{"class_id": 0, "class_name": c, "score": s, "bbox": b} for c, s, b in dets]}
            for image, dets in images.items()]
    path.write_text(json.dumps(data))
    return path


REFERENCE = {"/data/a.jpg": [("cat", 0.9, [10, 10, 50, 60]), ("dog", 0.5, [100, 20, 180, 90]),
                             ("dog", 0.1, [0, 0, 5, 5])],
             "/data/b.png": [("person", 0.301, [20, 30, 40, 90])]}


def run(capsys, *argv) -> tuple[int, list[str], str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err


def test_the_same_detections_agree_across_folders(tmp_path, capsys):
    ref = write(tmp_path / "ref.json", REFERENCE)
    # Ours: another folder, scores within the tolerance (the 0.301 one just below 0.3),
    # the dog's box a pixel narrower (IoU 79/80).
    ours = {"/tmp/x/a.jpg": [("dog", 0.5015, [101, 20, 180, 90]), ("cat", 0.899, [10, 10, 50, 60])],
            "/tmp/x/b.png": [("person", 0.2995, [20, 30, 40, 90])]}
    code, out, err = run(capsys, ref, write(tmp_path / "ours.json", ours), "--verbose")
    assert code == 0, out
    assert err == ""
    assert out[-1] == ("2 image(s): 3 detection(s) >= 0.3 matched, 0 missing, 0 extra; worst score "
                       f"difference 1.5e-03, worst IoU {79 * 70 / (80 * 70):.6f}: the same")
    assert out[0].startswith("/data/a.jpg: 2 matched")


@pytest.mark.parametrize("change, expect", [
    (lambda d: d["/data/a.jpg"].pop(0), "1 missing, 0 extra"),
    (lambda d: d["/data/b.png"].append(("cat", 0.4, [0, 0, 10, 10])), "0 missing, 1 extra"),
    (lambda d: d["/data/a.jpg"].__setitem__(0, ("cat", 0.9, [11, 10, 51, 60])), "worst IoU 0.951"),
    (lambda d: d["/data/a.jpg"].__setitem__(0, ("cat", 0.895, [10, 10, 50, 60])), "score difference 5.0e-03"),
    (lambda d: d["/data/a.jpg"].__setitem__(0, ("dog", 0.9, [10, 10, 50, 60])), "1 missing, 1 extra"),
])
def test_differences_are_found(tmp_path, capsys, change, expect):
    ours = {k: list(v) for k, v in REFERENCE.items()}
    change(ours)
    code, out, _ = run(capsys, write(tmp_path / "ref.json", REFERENCE), write(tmp_path / "ours.json", ours))
    assert code == 2
    assert expect in out[-1] and out[-1].endswith("DIFFERENT")
    assert len(out) == 2 and out[0].startswith("/data/")  # the image that differs


def test_bad_files_are_one_line(tmp_path, capsys):
    ref = write(tmp_path / "ref.json", REFERENCE)
    code, out, err = run(capsys, ref, tmp_path / "none.json")
    assert code == 1 and err.count("\n") == 1 and "none.json" in err and out == []
    (tmp_path / "bad.json").write_text('[{"image": "a.jpg"}]')
    code, _, err = run(capsys, ref, tmp_path / "bad.json")
    assert code == 1 and err.startswith("compare_detections: error: ") and "image entry 0" in err
    code, _, err = run(capsys, ref, write(tmp_path / "other.json", {"/data/c.jpg": []}))
    assert code == 1 and "has no detections of /data/a.jpg" in err
    code, _, err = run(capsys, ref, ref, "--min-iou", "2")
    assert code == 1 and "--min-iou" in err
