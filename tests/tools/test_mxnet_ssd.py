"""tools.model_converters.mxnet_ssd on mxnet-ssd's four released networks: the converted
checkpoint detects, through demo.py, what MXNet's executor detects with the original symbol.

The references are mxnet-ssd's deploy graphs rebuilt with ``mx.sym`` in
``mxnet_ssd_reference.py`` (same names, shapes and operator arguments), with
random weights whose heads are calibrated on the photos.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from evaluate.parity import match_detections
from symbol.checkpoint import load_checkpoint
from tools.model_converters import mxnet_ssd_weights
from tools.model_converters.mxnet_ssd import main as convert_main

REPO = Path(__file__).resolve().parents[2]
THRESH, SCORE_TOL, MIN_IOU = 0.3, 2e-3, 0.97
#: Photos per network (VGG16 at 512 is the slow one).
PHOTOS = {"vgg16_300": 2, "vgg16_512": 1, "resnet50": 2, "inceptionv3": 2}
NETWORK = {"vgg16_300": "vgg16_reduced", "vgg16_512": "vgg16_reduced", "resnet50": "resnet50_v2",
           "inceptionv3": "inceptionv3"}


def _helper():
    """mxnet_ssd_reference.py beside this file (test modules are not importable by name)."""
    path = Path(__file__).with_name("mxnet_ssd_reference.py")
    spec = importlib.util.spec_from_file_location("mxnet_ssd_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _helper()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mxnet_ssd")


@pytest.fixture(scope="module")
def photos(fixtures_dir) -> list[Path]:
    return sorted((fixtures_dir / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def reference(workdir, photos):
    """``get(kind)``: the saved reference model of ``kind`` and its executor's detections,
    built once."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            cache[kind] = ref.build(kind, photos[:PHOTOS[kind]], workdir / kind, seed=len(cache))
        return cache[kind]
    return get


@pytest.fixture(scope="module")
def converted(reference, workdir):
    """``get(kind)``: the prefix of the converted checkpoint of ``kind``, converted once."""
    cache = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            out = workdir / f"converted_{kind}"
            assert convert_main([str(reference(kind).prefix), "0", str(out)]) == 0
            cache[kind] = out
        return cache[kind]
    return get


def assert_parity(reference_dets: list, ours: list) -> list[str]:
    """Every photo's detections match, at least 5 pairs in all; returns each photo's summary."""
    pairs, summaries = 0, []
    for theirs, mine in zip(reference_dets, ours, strict=True):
        parity = match_detections(theirs, mine, thresh=THRESH, score_tol=SCORE_TOL, min_iou=MIN_IOU)
        assert parity.ok, parity.summary()
        pairs += len(parity.pairs)
        summaries.append(parity.summary())
    assert pairs >= 5, "too few detections for a meaningful comparison"
    return summaries


def raw_images(paths: list[Path], side: int) -> mx.nd.NDArray:
    """The photos as the network takes them: RGB 0..255 resized, NCHW."""
    return mx.nd.array(ref.load_images(paths, side) + np.array(ref.MEAN_RGB, np.float32)[:, None, None])


# ---------------------------------------------------------------------- parity
@pytest.mark.parametrize("kind", sorted(PHOTOS))
def test_detections_and_priors_equal_mxnet_executor(kind, reference, converted, workdir, capsys, demo_detections):
    model = reference(kind)
    prefix = converted(kind)
    out = capsys.readouterr().out
    assert "network: " + NETWORK[kind] in out and "equal to MultiBoxPrior's" in out
    config = json.loads(Path(f"{prefix}-config.json").read_text())
    assert config["network"] == NETWORK[kind] and config["data_shape"] == model.side
    assert config["preprocess"] == {"mean": [123.0, 117.0, 104.0], "std": [1.0, 1.0, 1.0], "bgr": False}
    assert config["nms"] == {"nms_thresh": 0.5, "nms_topk": 400, "keep_topk": 400, "thresh": 0.01,
                             "force_suppress": False, "nms_mode": "multibox"}
    assert config["class_names"][14] == "person" and len(config["class_names"]) == 20
    if NETWORK[kind] == "vgg16_reduced":  # mxnet-ssd's rounded sizes, not Caffe's
        assert config["layout"]["sizes"][0] == ([0.1, 0.141] if model.side == 300 else [0.07, 0.1025])
        assert config["layout"]["steps"][:2] == [8, 16]
    else:  # the preset table is mxnet-ssd's
        assert "layout" not in config

    for summary in assert_parity(model.detections, demo_detections(prefix, model.images, workdir / f"{kind}.json")):
        print(f"parity {kind}: {summary}")

    net, _ = load_checkpoint(prefix, 0)
    with autograd.predict_mode():
        anchors = net.raw_predictions(raw_images(model.images[:1], model.side))[2].asnumpy()
    assert anchors.shape == model.priors.shape
    np.testing.assert_allclose(anchors, model.priors, rtol=0, atol=1e-6)


def test_early_ssd512_keeps_its_extra_layers_and_priors(reference, workdir):
    """v0.5-beta's SSD512 (conv10_2 and conv11_2: 3x3 without padding or stride): the
    layout records the symbol's extra layers, and the priors are the executor's."""
    vgg512 = reference("vgg16_512")
    early = ref.build("vgg16_512_early", [], workdir / "early", calibrate=False, params=(vgg512.args, vgg512.auxs))
    _, priors = ref.run(early.net, early.args, early.auxs, ref.load_images(vgg512.images[:1], 512))
    out = workdir / "converted_early"
    assert convert_main([str(early.prefix), "0", str(out)]) == 0
    layout = json.loads(Path(f"{out}-config.json").read_text())["layout"]
    assert [(e["kernel"], e["stride"], e["pad"]) for e in layout["extras"]] == [
        (3, 2, 1), (3, 2, 1), (3, 1, 0), (3, 1, 0), (4, 1, 1)]
    net, _ = load_checkpoint(out, 0)
    with autograd.predict_mode():
        anchors = net.raw_predictions(raw_images(vgg512.images[:1], 512))[2].asnumpy()
    assert anchors.shape == priors.shape == (1, 24764, 4)  # maps 64, 32, 16, 8, 6, 4, 3
    np.testing.assert_allclose(anchors, priors, rtol=0, atol=1e-6)


def test_other_data_shape_runs_the_symbol_at_that_size(reference, workdir, capsys):
    """--data-shape 400: the symbol's fixed prior steps (made for 300) are kept, as MXNet
    runs the symbol at 400; at 330 mxnet-ssd's pool2 rounds down where the network's rounds up."""
    model = reference("vgg16_300")
    out = workdir / "converted_400"
    assert convert_main([str(model.prefix), "0", str(out), "--data-shape", "400"]) == 0
    _, priors = ref.run(model.net, model.args, model.auxs, ref.load_images(model.images[:1], 400))
    net, config = load_checkpoint(out, 0)
    assert config.data_shape == 400
    with autograd.predict_mode():
        anchors = net.raw_predictions(raw_images(model.images[:1], 400))[2].asnumpy()
    np.testing.assert_allclose(anchors, priors, rtol=0, atol=1e-6)
    capsys.readouterr()
    assert convert_main([str(model.prefix), "0", str(workdir / "converted_330"), "--data-shape", "330"]) == 1
    assert "round pooled sizes differently" in capsys.readouterr().err
    assert not list(workdir.glob("converted_330*"))


def test_exported_model_gives_the_same_detections(reference, converted, workdir):
    model = reference("resnet50")
    net, _ = load_checkpoint(converted("resnet50"), 0)
    x = raw_images(model.images, model.side)
    want = net(x).asnumpy()
    net.export(str(workdir / "exported"))
    block = mx.gluon.SymbolBlock.imports(str(workdir / "exported-symbol.json"), ["data"],
                                         str(workdir / "exported-0000.params"))
    got = block(x).asnumpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert_parity(model.detections, [d[d[:, 0] >= 0] for d in got])


def test_training_symbol_and_old_json_format(reference, workdir, capsys, demo_detections):
    """mxnet-ssd's training graph (SoftmaxOutput, targets, losses) in MXNet 0.x's JSON format
    ("param"/"attr", operators without _contrib_), with other decoding settings: those are
    recorded and the detections are still the executor's (of the deploy graph)."""
    model = reference("resnet50")
    settings = dict(nms_threshold=0.45, force_suppress=True, nms_topk=-1)
    deploy = ref.resnet50_ssd(**settings)
    dets, _ = ref.run(deploy, model.args, model.auxs, ref.load_images(model.images, model.side))
    graph = json.loads(ref.resnet50_ssd(train=True, **settings).tojson())
    for node in graph["nodes"]:
        node["op"] = node["op"].replace("_contrib_", "")
        params = {k: v for k, v in node.pop("attrs", {}).items() if not k.startswith("__")}
        attrs = {k: v for k, v in node.get("attrs", {}).items() if k.startswith("__")}
        if params:
            node["param"] = params
        if attrs:
            node["attr"] = attrs
        node["inputs"] = [entry[:2] for entry in node["inputs"]]
    old = workdir / "old_format"
    Path(f"{old}-symbol.json").write_text(json.dumps(graph))
    os.symlink(f"{model.prefix}-0000.params", f"{old}-0000.params")
    out = workdir / "converted_old_format"
    assert convert_main([str(old), "0", str(out)]) == 0
    nms = json.loads(Path(f"{out}-config.json").read_text())["nms"]
    assert nms == {"nms_thresh": 0.45, "nms_topk": -1, "keep_topk": 6132, "thresh": 0.01, "force_suppress": True,
                   "nms_mode": "multibox"}
    assert_parity([d[d[:, 0] >= 0] for d in dets], demo_detections(out, model.images, workdir / "old.json"))


def test_converted_model_trains_and_evaluates(converted, voc_folder_writer, tmp_path):
    """The converted VGG16 SSD300 (its own priors as the layout) like any checkpoint: train.py
    --finetune to other classes, --resume on its own (no optimizer state), evaluate.py."""
    import shutil
    import subprocess
    import sys

    source = converted("vgg16_300")
    data = voc_folder_writer(tmp_path / "voc", {"a": [("dog", (10, 20, 150, 170), 0)],
                                                "b": [("person", (40, 30, 120, 190), 0)]}, 200, 200, "train")
    common = ["--dataset", "folder", "--data-root", str(data), "--train-set", "train", "--batch-size", "2",
              "--lr", "1e-5", "--cpu", "--frequent", "0", "--augment", "none", "--end-epoch", "1"]

    def run(*args: str, script: str = "train.py") -> None:
        proc = subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr

    layout = json.loads(Path(f"{source}-config.json").read_text())["layout"]
    run(*common, "--finetune", "0", "--finetune-prefix", str(source), "--class-names", "dog,person",
        "--prefix", str(tmp_path / "tuned"))
    _, config = load_checkpoint(tmp_path / "tuned", 1)
    assert config.class_names == ("dog", "person") and config.layout == layout
    for suffix in ("-0000.params", "-config.json"):
        shutil.copy(f"{source}{suffix}", tmp_path / f"own{suffix}")
    run(*common, "--resume", "0", "--prefix", str(tmp_path / "own"))
    _, config = load_checkpoint(tmp_path / "own", 1)
    assert config.network == "vgg16_reduced" and config.layout == layout and config.num_classes == 20
    run("--prefix", str(tmp_path / "own"), "--epoch", "1", "--dataset", "folder", "--data-root", str(data),
        "--set", "train", "--save-metrics", str(tmp_path / "m.json"), script="evaluate.py")
    assert json.loads((tmp_path / "m.json").read_text())["metric"] == "voc07"


# ---------------------------------------------------------------------- recognition
@pytest.mark.parametrize("kind", sorted(PHOTOS))
def test_networks_are_recognised_from_names_and_shapes(kind, reference):
    model = reference(kind)
    shapes = {f"arg:{k}": v.shape for k, v in model.args.items()}
    shapes.update({f"aux:{k}": v.shape for k, v in model.auxs.items()})
    assert mxnet_ssd_weights.recognise(shapes, "x.params").network == NETWORK[kind]
    assert mxnet_ssd_weights.recognise(dict.fromkeys(shapes), "x.json").network == NETWORK[kind]


def test_unknown_and_deeper_networks_are_refused():
    tiny = ref.tiny_ssd()
    shapes = dict(zip((f"arg:{n}" for n in tiny.list_arguments()), tiny.infer_shape(data=(1, 3, 64, 64))[0]))
    with pytest.raises(ValueError, match="unknown network"):
        mxnet_ssd_weights.recognise(shapes, "tiny.params")
    resnet101 = {"arg:conv0_weight": (64, 3, 7, 7), "arg:bn_data_beta": (3,),
                 "arg:stage4_unit3_conv3_weight": (2048, 512, 1, 1), "arg:stage3_unit7_conv1_weight": (256, 1024, 1, 1)}
    with pytest.raises(ValueError, match="deeper variant"):
        mxnet_ssd_weights.recognise(resnet101, "r101.params")
    with pytest.raises(ValueError, match="another model"):
        mxnet_ssd_weights.recognise({"arg:conv1_1_weight": (32, 3, 3, 3), "arg:conv6_weight": (1024, 512, 3, 3),
                                     "arg:conv7_weight": (1024, 1024, 1, 1)}, "v.params")


# ---------------------------------------------------------------------- bad input
def _pair(workdir: Path, name: str, symbol=None, params=None, symbol_text=None, params_bytes=None,
          symbol_from=None, params_from=None) -> Path:
    """A PREFIX-symbol.json + PREFIX-0000.params pair made of the given pieces."""
    prefix = workdir / "bad" / name
    prefix.parent.mkdir(exist_ok=True)
    sym_file, params_file = Path(f"{prefix}-symbol.json"), Path(f"{prefix}-0000.params")
    if symbol is not None:
        symbol.save(str(sym_file))
    elif symbol_text is not None:
        sym_file.write_text(symbol_text)
    elif symbol_from is not None:
        os.symlink(f"{symbol_from}-symbol.json", sym_file)
    if params is not None:
        mx.nd.save(str(params_file), params)
    elif params_bytes is not None:
        params_file.write_bytes(params_bytes)
    elif params_from is not None:
        os.symlink(f"{params_from}-0000.params", params_file)
    return prefix


def _params(model, drop=(), change=None) -> dict:
    arrays = {f"arg:{k}": v for k, v in model.args.items()}
    arrays.update({f"aux:{k}": v for k, v in model.auxs.items()})
    for key in drop:
        del arrays[key]
    arrays.update(change or {})
    return arrays


def _skip_relu(prefix: Path) -> str:
    """The symbol with stage2_unit2_conv2 reading its BatchNorm directly (no ReLU between):
    every layer's own arguments are unchanged, only the wiring differs."""
    graph = json.loads(Path(f"{prefix}-symbol.json").read_text())
    index = {n["name"]: i for i, n in enumerate(graph["nodes"])}
    graph["nodes"][index["stage2_unit2_conv2"]]["inputs"][0][0] = index["stage2_unit2_bn2"]
    return json.dumps(graph)


def _classifier():
    x = mx.sym.Convolution(mx.sym.Variable("data"), kernel=(3, 3), num_filter=8, name="conv")
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=3, name="fc"), name="softmax")


BAD = {
    # case: (make the pair, extra flags, what the message says, the files and keys it names)
    "unknown network": (lambda w, r: _pair(w, "tiny", symbol=ref.tiny_ssd(), params={
        f"arg:{n}": mx.nd.zeros(s) for n, s in zip(ref.tiny_ssd().list_arguments(),
                                                    ref.tiny_ssd().infer_shape(data=(1, 3, 64, 64))[0])
        if n != "data"}), [], "holds an unknown network", ("tiny-symbol.json",)),
    "params of another network": (lambda w, r: _pair(w, "mixed", symbol_from=r("vgg16_300").prefix,
                                                     params_from=r("resnet50").prefix),
                                  [], "holds mxnet-ssd's ResNet-50 SSD but", ("mixed-0000.params", "mixed-symbol.json")),
    "params of another model": (lambda w, r: _pair(w, "shapes", symbol_from=r("resnet50").prefix, params=_params(
        r("resnet50"), change={"arg:stage3_unit2_conv2_weight": mx.nd.zeros((128, 128, 3, 3))})),
        [], "does not hold this model", ("shapes-0000.params", "arg:stage3_unit2_conv2_weight has shape "
                                         "(128, 128, 3, 3) but", "stage3_unit2_conv2 has 256 filters of (3, 3)")),
    "other wiring": (lambda w, r: _pair(w, "wiring", symbol_text=_skip_relu(r("resnet50").prefix),
                                        params_from=r("resnet50").prefix),
                     [], "another wiring", ("wiring-symbol.json", "stage2_unit2_conv2_weight reads [stage2_unit2_bn2_gamma]",
                                            "[stage2_unit2_bn2_gamma via relu]")),
    "malformed attribute": (lambda w, r: _pair(w, "attribute", symbol_text=Path(
        f"{r('resnet50').prefix}-symbol.json").read_text().replace('"kernel": "(7, 7)"', '"kernel": "(7, x)"'),
        params_from=r("resnet50").prefix), [], "conv0", ("attribute-symbol.json", "kernel='(7, x)' is not")),
    "missing parameters": (lambda w, r: _pair(w, "missing", symbol_from=r("resnet50").prefix, params=_params(
        r("resnet50"), drop=("arg:stage2_unit1_conv1_weight", "aux:bn0_moving_var"))),
        [], "missing 2 parameter(s) that", ("missing-0000.params", "arg:stage2_unit1_conv1_weight, aux:bn0_moving_var")),
    "garbage params": (lambda w, r: _pair(w, "garbage", symbol_from=r("resnet50").prefix, params_bytes=b"garbage"),
                       [], "cannot read params file", ("garbage-0000.params",)),
    "unnamed params": (lambda w, r: _pair(w, "list", symbol_from=r("resnet50").prefix, params=[mx.nd.zeros(3)]),
                       [], "not an mxnet-ssd params file", ("list-0000.params",)),
    "garbage symbol": (lambda w, r: _pair(w, "json", symbol_text="{not json", params_from=r("resnet50").prefix),
                       [], "not valid JSON", ("json-symbol.json",)),
    "not a symbol": (lambda w, r: _pair(w, "nodes", symbol_text='{"nodes": 3}', params_from=r("resnet50").prefix),
                     [], "not an MXNet symbol file", ("nodes-symbol.json",)),
    "not a detector": (lambda w, r: _pair(w, "classifier", symbol=_classifier(), params_from=r("resnet50").prefix),
                       [], "not an SSD detector", ("classifier-symbol.json",)),
    "class names": (lambda w, r: r("resnet50").prefix, ["--class-names", "cat,dog"],
                    "2 class names given but", ("resnet50-symbol.json",)),
    "missing file": (lambda w, r: w / "bad" / "nowhere", [], "no such file", ("nowhere-symbol.json",)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(case, reference, workdir, capsys):
    make, flags, message, names = BAD[case]
    prefix = make(workdir, reference)
    capsys.readouterr()
    out = workdir / "out" / case.replace(" ", "_")
    assert convert_main([str(prefix), "0", str(out), *flags]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mxnet_ssd: error: "), err
    assert message in err and all(name in err for name in names), err
    assert not list(out.parent.glob(out.name + "*"))
