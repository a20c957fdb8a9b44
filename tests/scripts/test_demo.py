"""demo.py end to end on real photos with a small random checkpoint, and its error handling."""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from symbol import get_model
from symbol.checkpoint import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO.parent / "shared" / "fixtures" / "images"
NAMES = ["cat", "dog", "person"]

pytestmark = pytest.mark.skipif(not (IMAGES / "000001.jpg").is_file(),
                                reason=f"fixture photos not found in {IMAGES}")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """A random MobileNet-0.25 SSD300 checkpoint with three classes."""
    mx.random.seed(1)
    net = get_model("mobilenet", 300, num_classes=3, multiplier=0.25)
    prefix = tmp_path_factory.mktemp("ckpt") / "ssd"
    save_checkpoint(net, prefix, 0, NAMES)
    return prefix


def run_demo(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "demo.py", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=_env())


def _env() -> dict:
    env = dict(os.environ)
    env.pop("DISPLAY", None)  # headless, whatever the machine running the tests has
    env.pop("WAYLAND_DISPLAY", None)
    return env


def demo_main():
    return runpy.run_path(str(REPO / "demo.py"))["main"]


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("demo.py: error: ")
    return lines[0]


def expected_detections(prefix: Path, image_path: Path, thresh: float) -> np.ndarray:
    """The raw network's detections in pixels, from an independent pipeline:
    warp-resize with INTER_LINEAR, RGB 0..255 NCHW float, rows above ``thresh``."""
    net, _ = load_checkpoint(prefix)
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    x = cv2.resize(image, (300, 300), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)[None]
    rows = net(mx.nd.array(x.astype(np.float32))).asnumpy()[0]
    rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= thresh)]
    return np.concatenate([rows[:, :2], rows[:, 2:] * [width, height, width, height]], axis=1)


def test_end_to_end_json_and_pictures(prefix, tmp_path):
    images = [IMAGES / "000001.jpg", IMAGES / "000067.jpg", IMAGES / "004545.jpg"]
    out_dir, out_json = tmp_path / "annotated", tmp_path / "dets.json"
    proc = run_demo("--prefix", prefix, "--images", ",".join(map(str, images)), "--thresh", 0.01,
                    "--batch-size", 2, "--out-dir", out_dir, "--save-json", out_json)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""

    results = json.loads(out_json.read_text())
    assert [r["image"] for r in results] == [str(p) for p in images]
    for path, result in zip(images, results):
        height, width = cv2.imread(str(path)).shape[:2]
        assert (result["width"], result["height"]) == (width, height)
        dets = result["detections"]
        assert dets, "random weights at --thresh 0.01 should give detections"
        scores = [d["score"] for d in dets]
        assert scores == sorted(scores, reverse=True) and min(scores) >= 0.01
        for d in dets:
            assert set(d) == {"class_id", "class_name", "score", "bbox"}
            assert isinstance(d["class_id"], int) and d["class_name"] == NAMES[d["class_id"]]
            xmin, ymin, xmax, ymax = d["bbox"]
            assert 0 <= xmin <= xmax <= width and 0 <= ymin <= ymax <= height
        # Same boxes as the network itself gives, mapped to the original pixels.
        want = expected_detections(prefix, path, 0.01)
        got = np.array([[d["class_id"], d["score"], *d["bbox"]] for d in dets])
        assert got.shape == want.shape
        order = np.lexsort(got.T[::-1])
        np.testing.assert_allclose(got[order], want[np.lexsort(want.T[::-1])], atol=1e-3)

        picture = cv2.imread(str(out_dir / f"{path.stem}-detections.png"))
        assert picture is not None and picture.shape == (height, width, 3)

    lines = proc.stdout.splitlines()
    for path, result in zip(images, results):
        line = next(line for line in lines if line.startswith(str(path)))
        assert f"{len(result['detections'])} detection(s)" in line and " ms" in line
    assert any(line.startswith("total: 3 image(s)") for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated", "dets.json"]  # no temp files


def test_directory_input_headless_show(prefix, tmp_path):
    out_json, names_file = tmp_path / "dets.json", tmp_path / "names.txt"
    names_file.write_text("a\nb\n\nc\n")
    proc = run_demo("--prefix", prefix, "--dir", IMAGES, "--ext", "jpg", "--thresh", 0.2, "--batch-size", 3,
                    "--nms", 0.3, "--force-nms", "--class-names", names_file, "--show",
                    "--save-json", out_json)
    assert proc.returncode == 0, proc.stderr
    # Headless: --show is dropped with one warning, not a crash.
    assert proc.stderr.splitlines() == ["WARNING demo: --show ignored: no interactive matplotlib backend "
                                        "(no display?)"]
    results = json.loads(out_json.read_text())
    assert [Path(r["image"]).name for r in results] == sorted(p.name for p in IMAGES.glob("*.jpg"))
    names = {d["class_name"] for r in results for d in r["detections"]}
    assert names and names <= {"a", "b", "c"}


def test_missing_image_among_good_ones(prefix, tmp_path):
    out_json = tmp_path / "dets.json"
    good = IMAGES / "000067.jpg"
    proc = run_demo("--prefix", prefix, "--images", f"missing.jpg,{good}", "--thresh", 0.01,
                    "--save-json", out_json)
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == "demo.py: error: image not found: missing.jpg"
    results = json.loads(out_json.read_text())
    assert [r["image"] for r in results] == [str(good)]
    assert results[0]["detections"]
    assert "1 error(s)" in proc.stdout


def test_corrupt_images(prefix, tmp_path):
    data = (IMAGES / "000001.jpg").read_bytes()
    bad = {"text.jpg": b"not a jpeg at all", "empty.jpg": b"", "truncated.jpg": data[:2000]}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    paths = [tmp_path / name for name in bad]
    proc = run_demo("--prefix", prefix, "--images", ",".join(map(str, paths)))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"demo.py: error: cannot read image {p}: empty, damaged or not a "
                                        f"supported image format" for p in paths]
    assert "total: 0 image(s)" in proc.stdout


# In-process from here on: the same main(), without paying for a new interpreter each time.
def test_existing_output_is_not_touched_when_nothing_succeeds(prefix, tmp_path, capsys):
    out_json = tmp_path / "dets.json"
    out_json.write_text("previous results\n")
    status = demo_main()(["--prefix", str(prefix), "--images", "missing.jpg", "--save-json", str(out_json)])
    assert status == 1
    assert one_error_line(capsys.readouterr().err) == "demo.py: error: image not found: missing.jpg"
    assert out_json.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dets.json"]


@pytest.mark.parametrize("args, message", [
    (["--network", "resnet18"], "unknown network 'resnet18'; valid names: "),
    (["--network", "vgg16_reduced"], "'mobilenet' checkpoint"),
    (["--epoch", "3"], "checkpoint params not found: "),
    (["--class-names", "a,b"], "2 class names given"),
    (["--gpu", "0"], "mxnet-cu112"),
])
def test_model_errors(prefix, capsys, args, message):
    if args[0] == "--gpu" and mx.runtime.Features().is_enabled("CUDA"):
        pytest.skip("this MXNet build has CUDA")
    status = demo_main()(["--prefix", str(prefix), "--images", str(IMAGES / "000001.jpg"), *args])
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert message in one_error_line(err)


def test_missing_checkpoint(tmp_path):
    proc = run_demo("--prefix", tmp_path / "nothing", "--images", IMAGES / "000001.jpg")
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == (
        f"demo.py: error: checkpoint params not found: {tmp_path / 'nothing'}-0000.params "
        f"(check the prefix and the epoch)")


@pytest.mark.parametrize("args, message", [
    (["--thresh", "2"], "argument --thresh: must be in [0, 1], got 2"),
    (["--thresh", "high"], "argument --thresh: expected a number"),
    (["--nms", "0"], "argument --nms: must be in (0, 1]"),
    (["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (["--epoch", "-1"], "argument --epoch"),
    (["--data-shape", "16"], "argument --data-shape: must be at least 32"),
    (["--dir", "x"], "not allowed with argument --images"),
    (["--ext", ".png"], "--ext only applies with --dir"),
    (["--cpu", "--gpu", "0"], "not allowed with argument"),
    (["--class-names", "a,,b"], "empty name"),
    (["--force-nms=yes"], "ignored explicit argument"),
])
def test_bad_flags(capsys, args, message):
    status = demo_main()(["--prefix", "p", "--images", "a.jpg", *args])
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert message in one_error_line(err)


def test_a_named_model_needs_named_images(capsys):
    assert demo_main()(["--prefix", "p"]) == 1
    assert "one of the arguments --images --dir --video --camera is required with --prefix" in \
        one_error_line(capsys.readouterr().err)
    assert demo_main()(["--ext", ".png"]) == 1  # the bundled scenes are not a --dir of the user's
    assert "--ext only applies with --dir" in one_error_line(capsys.readouterr().err)


def test_missing_directory(capsys, tmp_path):
    assert demo_main()(["--prefix", "p", "--dir", str(tmp_path / "nope")]) == 1
    assert "image directory not found" in one_error_line(capsys.readouterr().err)
    assert demo_main()(["--prefix", "p", "--dir", str(tmp_path), "--ext", ".png"]) == 1
    assert "no .png images in" in one_error_line(capsys.readouterr().err)
