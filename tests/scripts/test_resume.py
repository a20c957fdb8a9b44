"""Exact resume, as a user meets it: train.py interrupted by Ctrl-C in the middle of an epoch,
or killed outright, then ``--resume latest`` with the dataset flags alone, ends on the very
weights (the same bytes) of a run that was never interrupted."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dataset.synthetic import make_synthetic

REPO = Path(__file__).resolve().parents[2]
BATCHES = 8  # per epoch: 16 training images, batches of 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    make_synthetic(root, num_images=20, image_size=96, seed=3, test_fraction=0.2, empty_fraction=0.1)
    return root


def dataset_flags(data_root: Path, prefix: Path) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(data_root), "--train-set", "train", "--val-set", "test",
            "--prefix", str(prefix)]


def first_run(data_root: Path, prefix: Path) -> list[str]:
    """The settings of the run: all of them must come back on resume."""
    return [sys.executable, "train.py", *dataset_flags(data_root, prefix), "--network", "mobilenet",
            "--multiplier", "0.25", "--batch-norm", "--data-shape", "96", "--batch-size", "2", "--lr", "0.02",
            "--lr-steps", "2", "--lr-factor", "0.5", "--momentum", "0.8", "--wd", "0.001", "--seed", "7",
            "--augment", "caffe", "--end-epoch", "3", "--frequent", "1"]


def train_until(argv: list[str], line: str, sig: signal.Signals) -> tuple[int, str]:
    """Run ``argv``, send ``sig`` once ``line`` has been logged; (exit status, output)."""
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        for text in proc.stdout:
            out.append(text)
            if line in text:
                proc.send_signal(sig)
                break
        out.append(proc.communicate(timeout=120)[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(out)


def resume(data_root: Path, prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *dataset_flags(data_root, prefix), "--resume", "latest"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory) -> bytes:
    prefix = tmp_path_factory.mktemp("whole") / "ssd"
    proc = subprocess.run(first_run(data_root, prefix), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return Path(f"{prefix}-0003.params").read_bytes()


def test_ctrl_c_in_the_middle_of_an_epoch_loses_nothing(data_root, uninterrupted, tmp_path):
    prefix = tmp_path / "ssd"
    status, out = train_until(first_run(data_root, prefix), f"Epoch[2] Batch [2/{BATCHES}]", signal.SIGINT)
    assert status == 130, out[-3000:]
    assert "train.py: error: interrupted" in out and "Traceback" not in out
    state = json.loads(Path(f"{prefix}-0002-state.json").read_text())
    assert state["complete"] is False and 2 <= state["batch"] < BATCHES and state["batches"] == BATCHES

    # evaluate.py and demo.py say so when they load it
    proc = subprocess.run([sys.executable, "evaluate.py", "--prefix", str(prefix), "--epoch", "2",
                           "--dataset", "folder", "--data-root", str(data_root), "--set", "test", "--cpu"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    note = f"saved in the middle of epoch 2 (after batch {state['batch']} of {BATCHES})"
    assert note in proc.stderr
    image = next((data_root / "JPEGImages").iterdir())
    proc = subprocess.run([sys.executable, "demo.py", "--prefix", str(prefix), "--epoch", "2", "--images", str(image),
                           "--no-show", "--out-dir", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert note in proc.stderr

    proc = resume(data_root, prefix)
    assert proc.returncode == 0, proc.stderr
    assert f"in epoch 2, after batch {state['batch']} of {BATCHES}" in proc.stdout  # where it resumed
    assert "overrides the saved" not in proc.stdout
    assert Path(f"{prefix}-0003.params").read_bytes() == uninterrupted
    final = json.loads(Path(f"{prefix}-0003-state.json").read_text())
    assert final["complete"] is True and final["step"] == 3 * BATCHES


def test_kill_9_loses_only_the_work_since_the_last_checkpoint(data_root, uninterrupted, tmp_path):
    prefix = tmp_path / "ssd"
    status, out = train_until(first_run(data_root, prefix), f"Epoch[2] Batch [1/{BATCHES}]", signal.SIGKILL)
    assert status == -signal.SIGKILL, out[-3000:]
    assert not Path(f"{prefix}-0002-state.json").exists()  # epoch 1's checkpoint is the latest
    proc = resume(data_root, prefix)
    assert proc.returncode == 0, proc.stderr
    assert "after epoch 1" in proc.stdout
    assert Path(f"{prefix}-0003.params").read_bytes() == uninterrupted
