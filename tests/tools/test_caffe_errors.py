"""Bad input to convert_model.py: one line naming the file and the layer, status 1, nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tools.caffe_converter import reader, writer
from tools.caffe_converter.convert_model import main as convert_main


def run_failing(capsys, prototxt: Path, caffemodel: Path, prefix: Path, *flags: str) -> str:
    status = convert_main([str(prototxt), str(caffemodel), str(prefix), *flags])
    err = capsys.readouterr().err
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convert_model.py: error: "), err
    assert "Traceback" not in err
    assert not list(prefix.parent.glob(prefix.name + "*")), "something was written at PREFIX"
    return lines[0]


@pytest.fixture(scope="module")
def mobilenet_blobs(fixtures_dir) -> tuple[Path, reader.CaffeNet, dict]:
    prototxt = fixtures_dir / "caffe" / "MobileNetSSD_deploy.prototxt"
    net = reader.read_prototxt(prototxt)
    return prototxt, net, writer.random_blobs(net, 5)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_caffemodel(mobilenet_model, tmp_path, capsys, damage):
    prototxt, good = mobilenet_model
    bad = tmp_path / "bad.caffemodel"
    data = good.read_bytes()
    bad.write_bytes({"truncated": data[:len(data) // 2 + 7],
                     "garbage": np.random.default_rng(0).bytes(100_000),
                     "empty": b""}[damage])
    line = run_failing(capsys, prototxt, bad, tmp_path / "out")
    assert str(bad) in line and ("not a valid caffemodel" in line or "needs" in line)


def test_prototxt_syntax_error(mobilenet_model, tmp_path, capsys):
    prototxt, caffemodel = mobilenet_model
    broken = tmp_path / "broken.prototxt"
    broken.write_text(prototxt.read_text().replace('name: "conv3/dw"\n  type: "Convolution"',
                                                   'name: "conv3/dw"\n  type: "Convolution" {', 1))
    line = run_failing(capsys, broken, caffemodel, tmp_path / "out")
    assert str(broken) in line and "syntax error" in line


def test_missing_blob(mobilenet_blobs, tmp_path, capsys):
    prototxt, net, blobs = mobilenet_blobs
    caffemodel = writer.write_caffemodel(tmp_path / "m.caffemodel", net,
                                         {k: v for k, v in blobs.items() if k != "conv5/dw"})
    line = run_failing(capsys, prototxt, caffemodel, tmp_path / "out")
    assert str(caffemodel) in line or str(prototxt) in line
    assert "'conv5/dw'" in line and "the caffemodel has 0" in line


def test_blob_of_the_wrong_shape(mobilenet_blobs, tmp_path, capsys):
    prototxt, net, blobs = mobilenet_blobs
    wrong = dict(blobs)
    wrong["conv14_2"] = [np.zeros((512, 128, 3, 3), np.float32), blobs["conv14_2"][1]]  # in: 256
    caffemodel = writer.write_caffemodel(tmp_path / "m.caffemodel", net, wrong)
    line = run_failing(capsys, prototxt, caffemodel, tmp_path / "out")
    assert "'conv14_2'" in line and "[512, 128, 3, 3]" in line and "[512, 256, 3, 3]" in line


@pytest.mark.parametrize("network", ["auto", "mobilenet", "caffe"])
def test_unsupported_layer(mobilenet_model, tmp_path, capsys, network):
    """Presets and the graph alike refuse a layer type by name."""
    prototxt, caffemodel = mobilenet_model
    text = prototxt.read_text()
    extra = 'layer {\n  name: "conv0/lrn"\n  type: "LRN"\n  bottom: "conv0"\n  top: "conv0"\n}\n'
    at = text.index('layer {\n  name: "conv1/dw"')
    changed = tmp_path / "lrn.prototxt"
    changed.write_text(text[:at] + extra + text[at:])
    line = run_failing(capsys, changed, caffemodel, tmp_path / "out", "--network", network)
    assert str(changed) in line and "'conv0/lrn'" in line and "unsupported type 'LRN'" in line


@pytest.mark.parametrize("old,new,layer,message", [
    ("min_size: 60.0", "min_size: 70.0", "conv11_mbox_priorbox", "priors differ"),
    ("    clip: false\n    variance: 0.1\n", "    clip: true\n    variance: 0.1\n", "conv11_mbox_priorbox", "clip"),
    ("share_location: true", "share_location: false", "detection_out", "share_location"),
    ("background_label_id: 0", "background_label_id: 3", "detection_out", "background_label_id"),
])
def test_settings_the_preset_cannot_reproduce(mobilenet_model, tmp_path, capsys, old, new, layer, message):
    prototxt, caffemodel = mobilenet_model
    changed = tmp_path / "changed.prototxt"
    text = prototxt.read_text()
    assert old in text
    changed.write_text(text.replace(old, new, 1))
    line = run_failing(capsys, changed, caffemodel, tmp_path / "out", "--network", "mobilenet")
    assert f"'{layer}'" in line and message in line


@pytest.mark.parametrize("old,new", [("min_size: 60.0", "min_size: 70.0"),
                                     ("    clip: false\n    variance: 0.1\n", "    clip: true\n    variance: 0.1\n")])
def test_auto_falls_back_to_the_caffe_graph(mobilenet_model, tmp_path, capsys, old, new):
    """Priors no preset reproduces: --network auto converts the graph as it is, and says why."""
    prototxt, caffemodel = mobilenet_model
    changed = tmp_path / "changed.prototxt"
    changed.write_text(prototxt.read_text().replace(old, new, 1))
    assert convert_main([str(changed), str(caffemodel), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "not the mobilenet preset" in out and "'conv11_mbox_priorbox'" in out
    assert "network caffe (the Caffe graph as it is)" in out and "parameters left unset: none" in out
    assert json.loads((tmp_path / "out-config.json").read_text())["network"] == "caffe"


def test_missing_files_and_bad_flags(mobilenet_model, tmp_path, capsys):
    prototxt, caffemodel = mobilenet_model
    line = run_failing(capsys, prototxt, tmp_path / "nope.caffemodel", tmp_path / "out")
    assert "no such file" in line
    line = run_failing(capsys, prototxt, caffemodel, tmp_path / "out", "--data-shape", "big")
    assert "--data-shape" in line
    line = run_failing(capsys, prototxt, caffemodel, tmp_path / "out", "--network", "resnet50")
    assert "--network" in line
    line = run_failing(capsys, prototxt, caffemodel, tmp_path / "out", "--data-shape", "400",
                       "--network", "mobilenet")
    assert "preset" in line


@pytest.mark.parametrize("network", ["auto", "caffe"])
def test_a_graph_that_is_not_an_ssd(caffe_dir, tmp_path, capsys, network):
    """The ImageNet VGG16 (no DetectionOutput) without --base: one line, nothing written."""
    prototxt = caffe_dir / "VGG_ILSVRC_16_layers_fc_reduced_deploy.prototxt"
    net_def = reader.read_prototxt(prototxt)
    caffemodel = writer.write_caffemodel(tmp_path / "base.caffemodel", net_def, writer.random_blobs(net_def, 0))
    line = run_failing(capsys, prototxt, caffemodel, tmp_path / "out", "--network", network)
    assert str(prototxt) in line and "not an SSD deploy graph: it has no DetectionOutput layer" in line
    assert "--base" in line

