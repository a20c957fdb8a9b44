"""Checkpoints: PREFIX-EPOCH.params + PREFIX-config.json, written atomically, rebuilt by load_checkpoint."""
from __future__ import annotations

import dataclasses
import json
import os

import mxnet as mx
import numpy as np
import pytest

from evaluate.detector import Detector
from symbol import find_preset, get_model
from common.fileio import atomic_path
from symbol.checkpoint import (FORMAT_VERSION, ModelConfig, config_path, load_checkpoint,
                               params_path, save_checkpoint)

NAMES = ("cat", "dog", "person")


@pytest.fixture(scope="module")
def net():
    mx.random.seed(0)
    return get_model("mobilenet", 300, num_classes=3, multiplier=0.25)


@pytest.fixture(scope="module")
def batch():
    return mx.nd.array(np.random.RandomState(0).uniform(0, 255, (2, 3, 300, 300)))


def _outputs(net, x):
    with mx.autograd.predict_mode():
        return net(x).asnumpy()


def _listing(path):
    return sorted(p.name for p in path.iterdir())


# ---------------------------------------------------------------------- round trip
def test_round_trip_same_detections_and_config(net, batch, tmp_path):
    prefix = tmp_path / "run" / "ssd"
    params_file, config_file = save_checkpoint(net, prefix, 7, list(NAMES))
    assert params_file == tmp_path / "run" / "ssd-0007.params"
    assert config_file == tmp_path / "run" / "ssd-config.json"

    loaded, config = load_checkpoint(prefix, 7)
    assert config == ModelConfig.from_net(net, NAMES)
    assert config.network == "mobilenet" and config.data_shape == 300
    assert config.class_names == NAMES and config.num_classes == 3
    assert dict(config.backbone_kwargs) == {"multiplier": 0.25, "batch_norm": False}
    assert dict(config.nms) == net.nms_config
    assert loaded.build_args == net.build_args
    np.testing.assert_array_equal(_outputs(loaded, batch), _outputs(net, batch))

    # The detector on the reloaded checkpoint finds exactly what one on the original does.
    images = [np.random.RandomState(i).randint(0, 256, (240 + 40 * i, 320, 3), dtype=np.uint8)
              for i in range(3)]
    original = get_model("mobilenet", 300, num_classes=3, multiplier=0.25)
    original.load_parameters(str(params_file))
    expected = Detector(original, ModelConfig.from_net(original, NAMES), thresh=0.2).detect(images)
    got = Detector.from_checkpoint(prefix, 7, thresh=0.2, batch_size=2).detect(images)
    assert got == expected
    assert sum(len(d) for d in got) > 0
    # Random weights score about 1 / (num_classes + 1): nothing passes 0.9, and that is no error.
    assert Detector.from_checkpoint(prefix, 7, thresh=0.9).detect(images) == [[], [], []]


def test_config_file_records_everything(net, tmp_path):
    save_checkpoint(net, tmp_path / "ssd", 0, list(NAMES))
    data = json.loads(config_path(tmp_path / "ssd").read_text())
    assert data["version"] == 1  # no layout: the first format, which older code reads too
    assert data["network"] == "mobilenet"
    assert data["data_shape"] == 300
    assert data["num_classes"] == 3
    assert data["class_names"] == list(NAMES)
    assert data["preprocess"] == net.build_args["preprocess"]
    assert data["backbone_kwargs"] == net.build_args["kwargs"]
    assert data["nms"] == net.nms_config


def test_model_config_dict_round_trip_and_frozen(net):
    config = ModelConfig.from_net(net, NAMES)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.network = "vgg16_reduced"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.nms["thresh"] = 0.5  # type: ignore[index]
    assert config.replace(class_names=("a", "b", "c")).class_names == ("a", "b", "c")


@pytest.mark.parametrize("change, message", [
    ({"network": "resnet18"}, "unknown network 'resnet18'"),
    ({"data_shape": "300"}, "data_shape"),
    ({"data_shape": 8}, "data_shape"),
    ({"class_names": []}, "class_names is empty"),
    ({"class_names": "cat"}, "class_names must be a list"),
    ({"class_names": ["cat", ""]}, r"class_names\[1\]"),
    ({"num_classes": 4}, "num_classes is 4"),
    ({"version": FORMAT_VERSION + 1}, "newer"),
    ({"nms": {"iou": 0.5}}, "unknown decoding settings"),
    ({"nms": {"nms_thresh": 2.0}}, "nms: nms_thresh must be in"),
    ({"preprocess": {"mean": [1, 2]}}, "preprocess must be"),
    ({"backbone_kwargs": {"thresh": 0.1}}, "backbone_kwargs must not set"),
    ({"format": "something else"}, "format"),
])
def test_model_config_validation(net, change, message):
    data = {**ModelConfig.from_net(net, NAMES).to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(data)


def test_model_config_missing_field(net):
    data = ModelConfig.from_net(net, NAMES).to_dict()
    del data["class_names"]
    with pytest.raises(ValueError, match="missing the field.*class_names"):
        ModelConfig.from_dict(data)


# ---------------------------------------------------------------------- atomic writes
def test_save_writes_only_the_two_files_and_creates_directories(net, tmp_path):
    prefix = tmp_path / "a" / "b" / "ssd"
    save_checkpoint(net, prefix, 1, list(NAMES))
    save_checkpoint(net, prefix, 1, list(NAMES))  # overwriting leaves no temp file either
    save_checkpoint(net, prefix, 2, list(NAMES))
    assert _listing(tmp_path / "a" / "b") == ["ssd-0001.params", "ssd-0002.params", "ssd-config.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert (prefix.parent / "ssd-0001.params").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_params_write_keeps_the_old_file(net, tmp_path, monkeypatch):
    prefix = tmp_path / "ssd"
    params_file, config_file = save_checkpoint(net, prefix, 0, list(NAMES))
    before = params_file.read_bytes(), config_file.read_bytes()

    def half_write(filename, deduplicate=False):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(net, "save_parameters", half_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(net, prefix, 0, list(NAMES))
    assert (params_file.read_bytes(), config_file.read_bytes()) == before
    assert _listing(tmp_path) == ["ssd-0000.params", "ssd-config.json"]


def test_failed_config_write_keeps_the_old_file(net, tmp_path, monkeypatch):
    prefix = tmp_path / "ssd"
    save_checkpoint(net, prefix, 0, list(NAMES))
    before = config_path(prefix).read_bytes()

    def broken_dump(obj, f, **kwargs):
        f.write('{"network": ')
        raise RuntimeError("interrupted")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(RuntimeError, match="interrupted"):
        save_checkpoint(net, prefix, 0, ["a", "b", "c"])
    assert config_path(prefix).read_bytes() == before
    assert _listing(tmp_path) == ["ssd-0000.params", "ssd-config.json"]


def test_atomic_path_keeps_suffix_and_cleans_up(tmp_path):
    target = tmp_path / "out.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyError("boom")
    assert target.read_bytes() == b"new"
    assert _listing(tmp_path) == ["out.png"]


@pytest.mark.parametrize("names", [["cat", "dog"], ["a", "b", "c", "d"], "cat"])
def test_class_names_must_match_num_classes(net, tmp_path, names):
    with pytest.raises(ValueError, match="class|string"):
        save_checkpoint(net, tmp_path / "ssd", 0, names)
    assert _listing(tmp_path) == []


def test_bad_epoch(net, tmp_path):
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(net, tmp_path / "ssd", -1, list(NAMES))
    assert params_path("x", 12).name == "x-0012.params"


# ---------------------------------------------------------------------- loading
def test_params_only_checkpoint_with_overrides(net, batch, tmp_path):
    prefix = tmp_path / "ssd"
    save_checkpoint(net, prefix, 3, list(NAMES))
    config_path(prefix).unlink()

    with pytest.raises(FileNotFoundError, match="ssd-config.json.*network, data_shape, class_names"):
        load_checkpoint(prefix, 3)
    with pytest.raises(FileNotFoundError, match="class_names"):
        load_checkpoint(prefix, 3, network="mobilenet", data_shape=300)

    loaded, config = load_checkpoint(prefix, 3, network="mobilenet", data_shape=300, class_names=NAMES,
                                     backbone_kwargs={"multiplier": 0.25})
    assert config.class_names == NAMES
    assert config.preprocess == find_preset("mobilenet", 300).preprocess
    np.testing.assert_array_equal(_outputs(loaded, batch), _outputs(net, batch))


def test_params_that_do_not_fit_the_network(net, tmp_path):
    prefix = tmp_path / "ssd"
    save_checkpoint(net, prefix, 0, list(NAMES))
    config_path(prefix).unlink()
    # The wrong backbone width (multiplier 1.0 by default), then the wrong number of classes.
    with pytest.raises(ValueError, match=r"ssd-0000.params do not fit mobilenet.*shape incompatible"):
        load_checkpoint(prefix, network="mobilenet", data_shape=300, class_names=NAMES)
    with pytest.raises(ValueError, match=r"ssd-0000.params do not fit mobilenet at 300 with 2 classes"):
        load_checkpoint(prefix, network="mobilenet", data_shape=300, class_names=["a", "b"],
                        backbone_kwargs={"multiplier": 0.25})


def test_missing_params(net, tmp_path):
    save_checkpoint(net, tmp_path / "ssd", 0, list(NAMES))
    with pytest.raises(FileNotFoundError, match=r"checkpoint params not found: .*ssd-0005.params"):
        load_checkpoint(tmp_path / "ssd", 5)
    with pytest.raises(FileNotFoundError, match=r"nothere-0000.params"):
        load_checkpoint(tmp_path / "nothere")


@pytest.mark.parametrize("text, message", [
    ('{"network": "mobilenet"', "is not valid JSON"),
    ("", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"network": "mobilenet"}', "missing the field"),
])
def test_corrupt_config(net, tmp_path, text, message):
    prefix = tmp_path / "ssd"
    save_checkpoint(net, prefix, 0, list(NAMES))
    config_path(prefix).write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_checkpoint(prefix)
    assert "ssd-config.json" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"junk", "truncate"])
def test_corrupt_params(net, tmp_path, content):
    prefix = tmp_path / "ssd"
    params_file, _ = save_checkpoint(net, prefix, 0, list(NAMES))
    data = params_file.read_bytes()[:5000] if content == "truncate" else content
    params_file.write_bytes(data)
    with pytest.raises(ValueError, match=r"cannot read checkpoint params .*ssd-0000.params") as info:
        load_checkpoint(prefix)
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)


def test_overrides_that_contradict_the_config(net, tmp_path):
    prefix = tmp_path / "ssd"
    save_checkpoint(net, prefix, 0, list(NAMES))
    with pytest.raises(ValueError, match="'mobilenet' checkpoint"):
        load_checkpoint(prefix, network="vgg16_reduced")
    with pytest.raises(ValueError, match="unknown network 'nope'.*mobilenet"):
        load_checkpoint(prefix, network="nope")
    with pytest.raises(ValueError, match="2 class names given.*3 classes"):
        load_checkpoint(prefix, class_names=["a", "b"])
    with pytest.raises(ValueError, match="unknown load_checkpoint overrides"):
        load_checkpoint(prefix, iou=0.5)


def test_overrides_rename_resize_and_set_nms(net, tmp_path):
    prefix = tmp_path / "ssd"
    save_checkpoint(net, prefix, 0, list(NAMES))
    loaded, config = load_checkpoint(prefix, class_names=["a", "b", "c"], data_shape=320, nms_thresh=0.3,
                                     force_suppress=True, network=None)
    assert config.class_names == ("a", "b", "c") and config.data_shape == 320
    assert loaded.data_shape == 320
    assert loaded.nms_config["nms_thresh"] == 0.3 and loaded.nms_config["force_suppress"] is True
    assert dict(config.nms) == loaded.nms_config
    with pytest.raises(ValueError, match="nms_thresh"):
        load_checkpoint(prefix, nms_thresh=1.5)


def test_set_nms_starts_from_the_defaults_and_keeps_the_old_settings_on_error(net):
    from symbol.detection import DecodeConfig

    net.set_nms(nms_thresh=0.3, keep_topk=50)
    net.set_nms(thresh=0.2)  # as GluonCV: what is not given takes the defaults
    assert net.decoding == DecodeConfig(thresh=0.2)
    with pytest.raises(ValueError, match="keep_topk"):
        net.set_nms(keep_topk=0)
    assert net.decoding == DecodeConfig(thresh=0.2)
    config = ModelConfig.from_net(net, NAMES)
    assert config.decoding == net.decoding and dict(config.nms) == net.nms_config
    net.set_nms()


# ---------------------------------------------------------------------- layouts
def test_presets_round_trip_as_layouts():
    from symbol.presets import PRESETS, Preset

    for network, table in PRESETS.items():
        for side, preset in table.items():
            d = preset.to_dict()
            assert json.loads(json.dumps(d)) == d, (network, side)
            assert Preset.from_dict(d) == preset, (network, side)


@pytest.mark.parametrize("change,message", [
    (dict(sizes=[[0.1]] * 6), "either sizes or both min_sizes and max_sizes"),
    (dict(min_sizes=None, max_sizes=None, sizes=[[0.1, 0.2]] * 5), "sizes has 5 entries, expected 6"),
    (dict(min_sizes=None, max_sizes=None, sizes=[[0.1, -0.2]] * 6), "positive fractions"),
    (dict(colour="red"), "unknown preset layout fields"),
    (dict(extras=[{"mid": 1}]), "malformed preset layout"),
])
def test_bad_preset_layouts(change, message):
    from symbol.presets import Preset

    d = find_preset("mobilenet", 300).to_dict()
    d.update(change)
    with pytest.raises(ValueError, match=message):
        Preset.from_dict(d)


def test_a_layout_rebuilds_the_models_own_priors(tmp_path):
    """A converted model's own preset (explicit sizes, mxnet-ssd style) is recorded and rebuilt."""
    preset = find_preset("mobilenet", 300)
    sizes = [[0.1, 0.141], [0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
    layout = dataclasses.replace(preset, min_sizes=None, max_sizes=None, sizes=tuple(map(tuple, sizes)),
                                 steps=(16, 32, 64, 100, 150, 300)).to_dict()
    net = get_model("mobilenet", 300, 3, layout=layout, multiplier=0.25)
    with mx.autograd.predict_mode():
        anchors = net.raw_predictions(mx.nd.zeros((1, 3, 300, 300)))[2].asnumpy()[0]
    # the first prior of the first location: a square of side 0.1 centred on (8 / 300, 8 / 300)
    np.testing.assert_allclose(anchors[0], [8 / 300 - 0.05, 8 / 300 - 0.05, 8 / 300 + 0.05, 8 / 300 + 0.05],
                               atol=1e-6)
    np.testing.assert_allclose(anchors[1, 2] - anchors[1, 0], 0.141, atol=1e-6)
    save_checkpoint(net, tmp_path / "m", 0, list(NAMES))
    data = json.loads(config_path(tmp_path / "m").read_text())
    assert data["version"] == 2 and data["layout"] == layout  # a layout needs version 2, not more
    loaded, config = load_checkpoint(tmp_path / "m", 0)
    assert config.layout == layout
    with mx.autograd.predict_mode():
        again = loaded.raw_predictions(mx.nd.zeros((1, 3, 300, 300)))[2].asnumpy()[0]
    np.testing.assert_array_equal(again, anchors)
    with pytest.raises(ValueError, match="needs its layout"):
        ModelConfig(network="caffe", data_shape=300, class_names=NAMES, preprocess=preset.preprocess)
