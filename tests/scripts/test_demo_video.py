"""demo.py --video / --camera: frames in, detections per frame, annotated video out.

The video is made here from the bundled synthetic scenes (the embedded model
detects their shapes); the reference detections come from an independent
path: OpenCV's own VideoCapture, a warp-resize and the raw network.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from common.video import VideoOutput, open_video
from evaluate.detector import Detection
from evaluate.parity import match_detections
from evaluate.visualize import class_color, draw_on_frame
from symbol.checkpoint import load_checkpoint
from tools.cli import ProgressBar

REPO = Path(__file__).resolve().parents[2]
EMBEDDED = REPO / "assets" / "synthetic_model" / "ssd_synthetic"
SCENES = sorted((REPO / "assets" / "demo_images").glob("*.jpg"))
SIZE = (320, 240)
FPS = 7.5
THRESH = 0.3


def make_video(path: Path, frames: int, size: tuple[int, int] = SIZE, fps: float = FPS) -> Path:
    """``frames`` frames cycling through the bundled scenes, written by OpenCV directly."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    scenes = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in SCENES]
    for k in range(frames):
        writer.write(scenes[k % len(scenes)])
    writer.release()
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    """RGB frames as OpenCV decodes them."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def reference(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The raw network on each frame: rows [class, score, x1, y1, x2, y2] in pixels."""
    net, config = load_checkpoint(EMBEDDED)
    side = config.data_shape
    out = []
    for frame in frames:
        height, width = frame.shape[:2]
        x = cv2.resize(frame, (side, side), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)[None]
        rows = net(mx.nd.array(x.astype(np.float32))).asnumpy()[0]
        rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= THRESH - 0.01)]
        out.append(np.concatenate([rows[:, :2], rows[:, 2:] * [width, height, width, height]], axis=1))
    return out


def run_demo(*args: object, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "demo.py", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env, **kwargs)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo.py: error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "in.mp4", 14)


def test_video_in_video_and_json_out(video, tmp_path):
    out, dets = tmp_path / "out" / "annotated.mp4", tmp_path / "frames.json"
    proc = run_demo("--video", video, "--out-video", out, "--save-json", dets, "--thresh", THRESH,
                    "--batch-size", 4)
    assert proc.returncode == 0, proc.stderr
    assert f"{video}: 320x240 at 7.5 frames/s, 14 frames" in proc.stdout
    assert "total: 14 frame(s)" in proc.stdout and f"wrote {out} (14 frames at 7.5 frames/s)" in proc.stdout
    assert "frames 14/14 [" in proc.stderr and "frames/s" in proc.stderr  # the progress line
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"]  # no temporary file left

    # Per-frame detections equal the raw network's on the frames OpenCV decodes (14 of them, in
    # batches of 4: the last batch padded), frame numbers and times at the input's rate.
    frames = read_frames(video)
    entries = json.loads(dets.read_text())
    assert [e["frame"] for e in entries] == list(range(14))
    assert [e["time"] for e in entries] == pytest.approx([k / FPS for k in range(14)], abs=1e-6)
    assert all(e["image"] == f"{video}#{e['frame']}" and (e["width"], e["height"]) == SIZE for e in entries)
    found = 0
    for entry, want in zip(entries, reference(frames), strict=True):
        names = json.loads((EMBEDDED.parent / "ssd_synthetic-config.json").read_text())["class_names"]
        ours = np.array([[names.index(d["class_name"]), d["score"], *d["bbox"]] for d in entry["detections"]],
                        np.float64).reshape(-1, 6)
        parity = match_detections(want, ours, thresh=THRESH, score_tol=1e-4, min_iou=0.999)
        assert parity.ok, parity.summary()
        found += len(parity.pairs)
    assert found >= 14  # the scenes have shapes in every frame

    # The output: same frame count, rate and size; boxes drawn where the detections are.
    written = open_video(out)
    assert (written.fps, written.size, written.frame_count) == (FPS, SIZE, 14)
    annotated = list(written.frames())
    assert len(annotated) == 14
    for frame, drawn, entry in zip(frames, annotated, entries):
        diff = np.abs(drawn.astype(np.int32) - frame.astype(np.int32)).sum(axis=2)
        mask = np.zeros(diff.shape, bool)
        for d in entry["detections"]:
            x1, y1, x2, y2 = (int(round(v)) for v in d["bbox"])
            mask[max(y1 - 2, 0):y2 + 3, max(x1 - 2, 0):x2 + 3] = True
            for y in (y1, y2):  # the label: above, inside the top, below or inside the bottom
                mask[max(y - 40, 0):y + 40, max(x1 - 2, 0):x2 + 200] = True
        edge = diff[max(int(entry["detections"][0]["bbox"][1]), 0), :] if entry["detections"] else diff[0]
        assert edge.max() > 60  # the best box's top edge is drawn
        assert np.percentile(diff[~mask], 99) < 40  # elsewhere: only compression noise


def test_max_frames_and_batches(video, tmp_path):
    dets = tmp_path / "f.json"
    proc = run_demo("--video", video, "--max-frames", 5, "--batch-size", 3, "--save-json", dets)
    assert proc.returncode == 0, proc.stderr
    assert [e["frame"] for e in json.loads(dets.read_text())] == [0, 1, 2, 3, 4]
    assert "frames 5/5 [" in proc.stderr


def test_ctrl_c_keeps_what_was_written(tmp_path):
    """SIGINT midway: the frames detected so far are a whole video and a whole JSON; exit 130."""
    long = make_video(tmp_path / "long.mp4", 3000, size=(96, 72), fps=25)
    out, dets = tmp_path / "out.mp4", tmp_path / "f.json"
    out.write_bytes(b"previous")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "demo.py", "--video", str(long), "--out-video", str(out),
                             "--save-json", str(dets)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            # Ctrl-C as at a terminal, also when the tests run in the background
                            # (where SIGINT is inherited ignored, and Python then keeps it so).
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.mp4.*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the temporary output exists once the model is loaded
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopped: Ctrl-C" in stdout and "Traceback" not in stderr
    entries = json.loads(dets.read_text())
    written = read_frames(out)
    assert 0 < len(entries) < 3000 and len(written) == len(entries)
    assert [e["frame"] for e in entries] == list(range(len(entries)))
    assert not list(tmp_path.glob(".out.mp4.*"))


@pytest.mark.parametrize("args, message", [
    (["--video", "{tmp}/none.mp4"], "video not found: {tmp}/none.mp4"),
    (["--video", "{tmp}/text.mp4"], "cannot read video {tmp}/text.mp4"),
    (["--video", "{video}", "--out-video", "{tmp}/out.gif"], "unknown extension '.gif'"),
    (["--video", "{video}", "--out-video", "{video}"], "would overwrite the --video being read"),
    (["--video", "{video}", "--out-dir", "{tmp}"], "for a video use --out-video"),
    (["--images", "a.jpg", "--out-video", "{tmp}/o.mp4"], "--out-video only applies with --video or --camera"),
    (["--images", "a.jpg", "--max-frames", "3"], "--max-frames only applies with --video or --camera"),
    (["--video", "{video}", "--images", "a.jpg"], "not allowed with argument"),
    (["--camera", "9"], "cannot open camera 9"),
])
def test_bad_input_is_one_line_and_writes_nothing(video, tmp_path, args, message):
    (tmp_path / "text.mp4").write_text("not a video\n")
    fill = {"tmp": tmp_path, "video": video}
    proc = run_demo(*[a.format(**fill) for a in args], "--save-json", tmp_path / "f.json")
    assert proc.returncode == 1
    assert message.format(**fill) in one_error_line(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.mp4"]


def test_video_output_is_whole_or_absent(tmp_path):
    path = tmp_path / "v.avi"
    path.write_bytes(b"old")
    frame = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(KeyError):
        with VideoOutput(path, 10, (64, 48)) as out:
            out.write(frame)
            raise KeyError("stop")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]
    with pytest.raises(ValueError, match="frame of 32x48 for a 64x48 video"):
        with VideoOutput(path, 10, (64, 48)) as out:
            out.write(np.zeros((48, 32, 3), np.uint8))
    with VideoOutput(path, 10, (64, 48)) as out:
        for k in range(5):
            out.write(frame + 40 * k)
    video = open_video(path)
    assert (video.fps, video.size, video.frame_count) == (10, (64, 48), 5)
    assert [int(round(f.mean())) for f in video.frames()] == [0, 40, 80, 120, 160]


def test_draw_on_frame_colours_and_labels():
    frame = np.full((120, 160, 3), 255, np.uint8)
    dets = [Detection(1, "square", 0.9, (20.0, 50.0, 100.0, 110.0))]
    drawn = draw_on_frame(frame, dets)
    want = np.array([round(255 * c) for c in class_color(1)[:3]])
    assert np.abs(drawn[80, 20].astype(int) - want).max() <= 1  # the left edge, in the class colour
    assert np.abs(drawn[110, 60].astype(int) - want).max() <= 1  # the bottom edge
    assert (drawn[80, 60] == 255).all()  # the inside untouched
    label = drawn[30:50, 20:100]  # the label sits above the box
    assert (np.abs(label.astype(int) - 255).sum(axis=2) > 100).mean() > 0.5
    assert (frame == 255).all()  # the input is not modified


def test_progress_bar_text():
    bar = ProgressBar(300)
    bar.count, bar._start = 120, time.perf_counter() - 5.0
    text = bar.text()
    assert text.startswith("frames 120/300 [=========>") and "40%" in text
    assert "24.0 frames/s" in text and text.endswith("ETA 0:07")
    bar = ProgressBar(None)
    bar.count, bar._start = 50, time.perf_counter() - 2.0
    assert bar.text().startswith("frames 50 25.0 frames/s")
