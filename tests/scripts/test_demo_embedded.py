"""``python demo.py`` with no arguments: the embedded model on the bundled synthetic scenes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from symbol.checkpoint import read_config

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"


def test_embedded_model_is_small_and_self_described():
    params = ASSETS / "synthetic_model" / "ssd_synthetic-0000.params"
    assert params.stat().st_size < 4 * 2 ** 20  # "a few MB at most"
    config = read_config(ASSETS / "synthetic_model" / "ssd_synthetic")
    assert config.class_names == ("circle", "square", "triangle")
    assert (config.network, config.data_shape) == ("mobilenet", 300)


def test_demo_without_arguments(tmp_path):
    """The README's first command: every bundled scene gets a detection with score >= 0.5,
    and the annotated images and detections.json land in ./demo_output."""
    images = sorted(p.name for p in (ASSETS / "demo_images").glob("*.jpg"))
    assert len(images) >= 4
    proc = subprocess.run([sys.executable, str(REPO / "demo.py")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "demo_output"
    results = json.loads((out / "detections.json").read_text())
    assert sorted(Path(r["image"]).name for r in results) == images
    for r in results:
        assert r["detections"], r["image"]
        assert max(d["score"] for d in r["detections"]) >= 0.5, r
        assert all(d["score"] >= 0.5 for d in r["detections"])  # the default --thresh
    assert sorted(p.name for p in out.glob("*-detections.png")) == \
        sorted(f"{Path(n).stem}-detections.png" for n in images)
