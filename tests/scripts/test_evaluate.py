"""evaluate.py end to end: model mode on a generated VOC set with a small random checkpoint,
file mode with hand-computed mAPs, COCO against pycocotools, and its one-line errors."""
from __future__ import annotations

import contextlib
import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic

REPO = Path(__file__).resolve().parents[2]
NAMES = ("a", "b")
W, H = 100, 80
# The hand-made set of tests/evaluate/test_evaluation.py: image id -> (class, 0-based corners, difficult)
OBJECTS = {
    "a1": [("a", (10, 10, 50, 50), False), ("b", (60, 10, 90, 40), True)],
    "a2": [("a", (20, 20, 60, 70), False), ("b", (5, 5, 45, 35), False)],
    "a3": [],
}



def evaluate_main():
    return runpy.run_path(str(REPO / "evaluate.py"))["main"]


MAIN = evaluate_main()


def run(*args: object) -> tuple[int, str, str]:
    """``main(args)`` in process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = MAIN([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


def one_error_line(status: int, stderr: str) -> str:
    assert status == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("evaluate.py: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    make_synthetic(root, num_images=10, image_size=96, seed=3, test_fraction=0.5, empty_fraction=0.2)
    return root


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """A random MobileNet-0.25 SSD at 128 with the synthetic classes."""
    import mxnet as mx

    from symbol import get_model
    from symbol.checkpoint import save_checkpoint

    mx.random.seed(2)
    net = get_model("mobilenet", 128, num_classes=3, multiplier=0.25)
    prefix = tmp_path_factory.mktemp("ckpt") / "ssd"
    save_checkpoint(net, prefix, 0, SYNTHETIC_CLASSES)
    return prefix


@pytest.fixture
def voc(tmp_path, voc_folder_writer) -> Path:
    return voc_folder_writer(tmp_path / "voc", OBJECTS, W, H)


def voc_record(image_id, name, box, score):
    """A file-mode entry; ``box`` in 0-based corners, written in VOC's 1-based pixels."""
    return {"image_id": image_id, "class_name": name, "score": score,
            "bbox": [box[0] + 1, box[1] + 1, box[2], box[3]]}


HAND_PLACED = [  # see tests/evaluate/test_evaluation.py::test_hand_computed_ap
    voc_record("a1", "a", (10, 10, 50, 50), 0.9), voc_record("a3", "a", (0, 0, 30, 30), 0.8),
    voc_record("a2", "a", (20, 20, 60, 70), 0.7), voc_record("a2", "b", (5, 5, 45, 35), 0.5),
    voc_record("a2", "b", (6, 5, 46, 35), 0.4), voc_record("a1", "b", (60, 10, 90, 40), 0.3),
]


# --------------------------------------------------------------------------- model mode
def test_model_mode_round_trip_and_plots(synthetic, prefix, tmp_path):
    dets, metrics, plots = tmp_path / "dets.json", tmp_path / "map.json", tmp_path / "plots"
    proc = subprocess.run([sys.executable, "evaluate.py", "--prefix", str(prefix), "--dataset", "folder",
                           "--data-root", str(synthetic), "--set", "test", "--batch-size", "2",
                           "--metric", "voc10", "--save-detections", str(dets), "--save-metrics",
                           str(metrics), "--plot-dir", str(plots), "--progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "img/s" in proc.stderr and "5/5" in proc.stderr  # the progress bar
    assert "detected 5 images" in proc.stdout and "img/s" in proc.stdout
    for name in SYNTHETIC_CLASSES:
        assert any(line.split()[:1] == [name] for line in proc.stdout.splitlines())
    model = json.loads(metrics.read_text())
    assert model["metric"] == "voc10" and set(model["ap"]) == set(SYNTHETIC_CLASSES)
    assert sorted(p.name for p in plots.iterdir()) == [f"pr_{n}.png" for n in SYNTHETIC_CLASSES]
    saved = json.loads(dets.read_text())
    assert 0 < len(saved) <= 5 * 200 and set(saved[0]) == {"image_id", "class_name", "score", "bbox"}

    again = tmp_path / "again.json"
    status, out, err = run("--detections", dets, "--dataset", "folder", "--data-root", synthetic,
                           "--metric", "voc10", "--save-metrics", again)
    assert status == 0, err
    rescored = json.loads(again.read_text())
    assert rescored["mAP"] == pytest.approx(model["mAP"], abs=1e-12)
    assert rescored["ap"] == pytest.approx(model["ap"], abs=1e-12)


def test_model_mode_opens_the_dataset_first_and_skips_unknown_classes(prefix, fixtures_dir, tmp_path):
    import shutil

    cars = shutil.copytree(fixtures_dir / "voc_sample", tmp_path / "cars")  # no ImageSets, class car
    status, out, err = run("--prefix", prefix, "--dataset", "folder", "--data-root", cars)
    line = one_error_line(status, err)
    assert "1.xml: object 0 has unknown class 'car'" in line and "--skip-unknown" in line
    assert not any(s.startswith("model ") for s in out.splitlines())  # failed before loading the model
    status, out, err = run("--prefix", prefix, "--dataset", "folder", "--data-root", cars, "--skip-unknown")
    assert status == 0, err
    assert f"dataset: folder {cars} (test): 5 images, 3 classes" in out
    assert "detected 5 images" in out


def test_model_mode_nms_options(synthetic, prefix, tmp_path):
    dets = tmp_path / "dets.json"
    status, out, err = run("--prefix", prefix, "--dataset", "folder", "--data-root", synthetic,
                           "--nms-mode", "caffe", "--nms", 0.3, "--nms-topk", 50, "--keep-topk", 20,
                           "--thresh", 0.2, "--save-detections", dets)
    assert status == 0, err
    assert "NMS caffe 0.3, top 50, keep 20" in out
    saved = json.loads(dets.read_text())
    assert all(d["score"] >= 0.2 for d in saved)
    per_image = np.bincount(np.unique([d["image_id"] for d in saved], return_inverse=True)[1])
    assert per_image.max() <= 20


# --------------------------------------------------------------------------- file mode, VOC
def test_ground_truth_detections_score_one(voc, tmp_path):
    records = [voc_record("a1", "a", (10, 10, 50, 50), 0.9), voc_record("a2", "a", (20, 20, 60, 70), 0.8),
               voc_record("a2", "b", (5, 5, 45, 35), 0.7), voc_record("a1", "b", (60, 10, 90, 40), 0.6)]
    path, metrics = tmp_path / "dets.json", tmp_path / "m.json"
    path.write_text(json.dumps(records))
    for metric in ("voc07", "voc10"):
        status, out, err = run("--detections", path, "--dataset", "folder", "--data-root", voc,
                               "--class-names", ",".join(NAMES), "--metric", metric,
                               "--save-metrics", metrics)
        assert status == 0, err
        m = json.loads(metrics.read_text())
        assert m["metric"] == metric and m["mAP"] == pytest.approx(1.0)


@pytest.mark.parametrize("extra, metric, expected", [
    ((), "voc10", {"a": 0.5 + 0.5 * 2 / 3, "b": 1.0}),
    ((), "voc07", {"a": (6 + 5 * 2 / 3) / 11, "b": 1.0}),
    (("--use-difficult",), "voc10", {"a": 0.5 + 0.5 * 2 / 3, "b": 0.5 + 0.5 * 2 / 3}),
])
def test_hand_placed_errors(voc, tmp_path, extra, metric, expected):
    path, metrics = tmp_path / "dets.json", tmp_path / "m.json"
    path.write_text(json.dumps(HAND_PLACED))
    status, out, err = run("--detections", path, "--dataset", "voc", "--data-root", voc,
                           "--class-names", ",".join(NAMES), "--metric", metric, "--save-metrics",
                           metrics, *extra)
    assert status == 0, err
    m = json.loads(metrics.read_text())
    assert m["ap"] == pytest.approx(expected)
    assert m["mAP"] == pytest.approx(np.mean(list(expected.values())))
    assert f"mAP {np.mean(list(expected.values())):.4f}".split() == [
        line for line in out.splitlines() if line.startswith("mAP")][0].split()[:2]


def test_empty_detection_list_scores_zero(voc, tmp_path):
    path, metrics = tmp_path / "dets.json", tmp_path / "m.json"
    path.write_text("[]\n")
    status, out, err = run("--detections", path, "--dataset", "folder", "--data-root", voc,
                           "--save-metrics", metrics)
    assert status == 0, err
    assert json.loads(metrics.read_text()) == {"metric": "voc07", "mAP": 0.0, "ap": {"a": 0.0, "b": 0.0}}


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("   \n", "is empty"),
    ('[{"image_id": "a1", "class_name": "a"', "is not valid JSON"),
    ('{"image_id": "a1"}', "must hold a JSON list"),
    (json.dumps([voc_record("a9", "a", (1, 1, 5, 5), 0.5)]), "no annotation for image_id 'a9'"),
    (json.dumps([voc_record("a1", "cow", (1, 1, 5, 5), 0.5)]), "unknown class_name 'cow'"),
])
def test_bad_detection_files(voc, tmp_path, content, message):
    path = tmp_path / "dets.json"
    path.write_text(content)
    status, out, err = run("--detections", path, "--dataset", "folder", "--data-root", voc)
    assert message in one_error_line(status, err)
    assert str(path) in err


def test_missing_detection_file_subprocess(voc, tmp_path):
    proc = subprocess.run([sys.executable, "evaluate.py", "--detections", str(tmp_path / "nope.json"),
                           "--dataset", "folder", "--data-root", str(voc)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "detection file not found" in one_error_line(proc.returncode, proc.stderr)


@pytest.mark.parametrize("args, message", [
    (("--detections", "d.json", "--dataset", "folder"), "needs --data-root"),
    (("--detections", "d.json", "--dataset", "coco", "--data-root", "."), "needs a VOC metric"),
    (("--detections", "d.json", "--dataset", "folder", "--data-root", ".", "--nms", "0.5"),
     "only applies when running a model"),
    (("--detections", "d.json", "--dataset", "rec", "--rec-path", "x.rec"), "record file not found: x.rec"),
    (("--detections", "d.json", "--dataset", "coco", "--annotations", "a.json", "--skip-unknown"),
     "--skip-unknown only applies with --dataset voc or folder"),
    (("--detections", "d.json", "--prefix", "m"), "not allowed with argument"),
    (("--dataset", "folder"), "one of the arguments --prefix --detections is required"),
    (("--prefix", "m", "--dataset", "folder", "--data-root", "/no/such/dir"), "data root not found"),
])
def test_bad_command_lines(args, message):
    if "needs a VOC metric" in message:
        args = args + ("--plot-dir", "plots")
    status, out, err = run(*args)
    assert message in one_error_line(status, err)


# --------------------------------------------------------------------------- file mode, COCO
def coco_set(tmp_path: Path) -> tuple[Path, Path]:
    """Ground truth with non-contiguous category ids and a crowd box, and jittered detections."""
    rng = np.random.default_rng(0)
    cats = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 12, "name": "bird"}]
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 320, "height": 240} for i in (5, 9, 20, 33)]
    anns, results = [], []
    for img in images:
        for _ in range(rng.integers(1, 5)):
            w, h = rng.uniform(10, 150), rng.uniform(10, 120)
            x, y = rng.uniform(0, 320 - w), rng.uniform(0, 240 - h)
            cid = int(rng.choice([3, 7, 12]))
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": cid,
                         "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                         "area": round(w * h * 0.8, 2), "iscrowd": int(len(anns) == 3)})
            for _ in range(rng.integers(0, 3)):
                jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
                results.append({"image_id": img["id"], "category_id": cid if rng.random() < 0.8 else 7,
                                "bbox": [round(float(v), 2) for v in np.array([x, y, w, h]) + jitter],
                                "score": round(float(rng.random()), 3)})
        results.append({"image_id": img["id"], "category_id": 12, "bbox": [1.0, 2.0, 30.0, 40.0],
                        "score": 0.05})
    gt, dt = tmp_path / "instances_val.json", tmp_path / "results.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dt.write_text(json.dumps(results))
    return gt, dt


def test_coco_file_mode_matches_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dt = coco_set(tmp_path)
    metrics = tmp_path / "m.json"
    status, out, err = run("--detections", dt, "--dataset", "coco", "--annotations", gt,
                           "--save-metrics", metrics)
    assert status == 0, err
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt))
        ev = COCOeval(coco, coco.loadRes(str(dt)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    keys = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")
    m = json.loads(metrics.read_text())
    assert m["metric"] == "coco"
    assert [m[k] for k in keys] == pytest.approx(list(ev.stats[:9]), abs=1e-9)
    assert 0 < m["AP"] < 1
    assert "Average Precision" in out


def test_coco_bad_inputs(tmp_path):
    gt, dt = coco_set(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 5, "category_id": 4, "bbox": [1, 1, 5, 5], "score": 1}]))
    status, _, err = run("--detections", bad, "--dataset", "coco", "--annotations", gt)
    assert "unknown category_id 4" in one_error_line(status, err)
    bad.write_text(json.dumps([{"image_id": 6, "category_id": 3, "bbox": [1, 1, 5, 5], "score": 1}]))
    status, _, err = run("--detections", bad, "--dataset", "coco", "--annotations", gt)
    assert "no annotation for image_id 6" in one_error_line(status, err)
    bad.write_text("[]")
    status, out, err = run("--detections", bad, "--dataset", "coco", "--annotations", gt,
                           "--save-metrics", tmp_path / "m.json")
    assert status == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == 0.0


def test_coco_model_mode_round_trip(synthetic, prefix, tmp_path):
    """COCO model mode on the synthetic images (non-contiguous category ids), then the saved
    results re-scored in file mode."""
    import shutil

    from dataset.voc import VOCFolder

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val").mkdir()
    reader = VOCFolder(synthetic, SYNTHETIC_CLASSES, image_set="test")
    images, anns, cats = [], [], (4, 8, 15)
    for i in range(len(reader)):
        a = reader[i]
        name = Path(a.image).name
        shutil.copy(a.image, root / "val" / name)
        images.append({"id": 100 + 7 * i, "file_name": name, "width": a.width, "height": a.height})
        for (x1, y1, x2, y2), label in zip(a.boxes.tolist(), a.labels.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": 100 + 7 * i, "category_id": cats[label],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    categories = [{"id": c, "name": n} for c, n in zip(cats, SYNTHETIC_CLASSES)]
    gt = root / "annotations" / "instances_val.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))

    dets, m1, m2 = tmp_path / "results.json", tmp_path / "m1.json", tmp_path / "m2.json"
    status, out, err = run("--prefix", prefix, "--dataset", "coco", "--data-root", root, "--set", "val",
                           "--save-detections", dets, "--save-metrics", m1)
    assert status == 0, err
    saved = json.loads(dets.read_text())
    assert saved and {d["category_id"] for d in saved} <= set(cats)
    assert {d["image_id"] for d in saved} <= {img["id"] for img in images}
    status, out, err = run("--detections", dets, "--dataset", "coco", "--annotations", gt,
                           "--save-metrics", m2)
    assert status == 0, err
    first, second = json.loads(m1.read_text()), json.loads(m2.read_text())
    assert first["metric"] == "coco" and second == pytest.approx(first, abs=1e-12)
