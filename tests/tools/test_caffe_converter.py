"""convert_model.py on the real Caffe SSD deploy files: detections equal OpenCV's (Caffe's layers)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from google.protobuf import text_format

from evaluate.parity import match_detections
from symbol import get_model
from symbol.presets import find_preset
from symbol.checkpoint import load_checkpoint
from tools.caffe_converter import caffe_pb2, compare, reader
from tools.caffe_converter.convert_model import main as convert_main


SCORE_TOL, BOX_TOL, THRESH = 2e-3, 1e-3, 0.3


def opencv_detections(prototxt: Path, caffemodel: Path, image: Path, network: str) -> np.ndarray:
    """Caffe's DetectionOutput run by OpenCV: rows [class 0.., score, x1, y1, x2, y2] (normalized,
    clipped to the image as the converted model's are)."""
    net = reader.read_prototxt(prototxt)
    side = net.input_shape[2]
    bgr = cv2.resize(cv2.imread(str(image)), (side, side), interpolation=cv2.INTER_LINEAR)
    pre = find_preset(network, side).preprocess
    mean, scale = pre.mean, 1.0 / pre.std[0]
    (out,) = compare.opencv_outputs(str(prototxt), str(caffemodel), bgr, mean, scale, ["detection_out"])
    return compare.opencv_rows(out)


def assert_same_detections(ref: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """Every detection >= THRESH in one list has its partner in the other; returns max diffs."""
    parity = match_detections(ref, ours, THRESH, SCORE_TOL, min_iou=0.97)
    assert parity.ok, parity.summary()
    assert len(parity.pairs) >= 5, "too few detections for a meaningful comparison"
    box = max(np.abs(a[2:] - b[2:]).max() for a, b in parity.pairs)
    assert box <= BOX_TOL, box
    return parity.max_score_diff, box


def convert(prototxt: Path, caffemodel: Path, prefix: Path, *flags: str, capsys=None) -> None:
    status = convert_main([str(prototxt), str(caffemodel), str(prefix), *flags])
    if capsys is not None:
        captured = capsys.readouterr()
        assert status == 0, captured.err
        assert "parameters left unset: none" in captured.out
    assert status == 0


@pytest.mark.parametrize("model,network,num_images", [("mobilenet_model", "mobilenet", 3),
                                                      ("vgg300_model", "vgg16_reduced", 1)])
def test_detections_equal_opencv(request, model, network, num_images, images, tmp_path, capsys, demo_detections):
    prototxt, caffemodel = request.getfixturevalue(model)
    prefix = tmp_path / "converted"
    convert(prototxt, caffemodel, prefix, capsys=capsys)
    config = json.loads(Path(f"{prefix}-config.json").read_text())
    assert config["network"] == network and config["data_shape"] == 300
    assert config["preprocess"]["bgr"] is True and config["nms"]["nms_mode"] == "caffe"
    assert config["class_names"][14] == "person"
    chosen = images[:num_images]
    for image, ours in zip(chosen, demo_detections(prefix, chosen, tmp_path / "dets.json")):
        assert_same_detections(opencv_detections(prototxt, caffemodel, image, network), ours)


def test_compare_script_reports_small_differences(mobilenet_model, images, tmp_path, capsys):
    prototxt, caffemodel = mobilenet_model
    prefix = tmp_path / "m"
    convert(prototxt, caffemodel, prefix)
    capsys.readouterr()
    assert compare.main([str(prototxt), str(caffemodel), str(prefix), str(images[1])]) == 0
    out = capsys.readouterr().out
    assert "priors:" in out and "loc head:" in out and "0 missing, 0 extra" in out


# ---------------------------------------------------------------------- SSD512
_SSD512 = {  # source: (min_size, max_size, aspect ratios, step), Caffe's ssd_pascal_512.py
    "conv4_3_norm": (35.84, 76.8, [2], 8), "fc7": (76.8, 153.6, [2, 3], 16),
    "conv6_2": (153.6, 230.4, [2, 3], 32), "conv7_2": (230.4, 307.2, [2, 3], 64),
    "conv8_2": (307.2, 384.0, [2, 3], 128), "conv9_2": (384.0, 460.8, [2], 256),
    "conv10_2": (460.8, 537.6, [2], 512),
}


def derive_ssd512(prototxt300: Path, out: Path, integer_sizes: bool) -> Path:
    """Caffe's VOC SSD512 deploy file, derived from the SSD300 one: input 512, conv8_2 and
    conv9_2 with stride 2, a conv10 block (kernel 4) with its own heads, the 512 priors.

    ``integer_sizes`` writes the sizes as Caffe's PriorBox uses them (truncated);
    OpenCV's PriorBox would not truncate the recipe's fractional sizes.
    """
    net = caffe_pb2.NetParameter()
    text_format.Parse(prototxt300.read_text(), net, allow_unknown_field=True)
    net.name = "VGG_VOC0712_SSD_512x512_deploy"
    net.input_shape[0].dim[2] = net.input_shape[0].dim[3] = 512
    by_name = {l.name: l for l in net.layer}
    for name in ("conv8_2", "conv9_2"):
        p = by_name[name].convolution_param
        p.stride[:] = [2]
        p.pad[:] = [1]
    layers = list(net.layer)

    def renamed(layer, old: str, new: str):
        copy = caffe_pb2.LayerParameter()
        copy.CopyFrom(layer)
        copy.name = layer.name.replace(old, new)
        copy.bottom[:] = [b.replace(old, new) for b in layer.bottom]
        copy.top[:] = [t.replace(old, new) for t in layer.top]
        return copy

    block = [renamed(by_name[n], "conv9", "conv10") for n in ("conv9_1", "conv9_1_relu", "conv9_2",
                                                              "conv9_2_relu")]
    block[0].bottom[:] = ["conv9_2"]
    conv10_2 = block[2].convolution_param
    conv10_2.kernel_size[:], conv10_2.stride[:], conv10_2.pad[:] = [4], [1], [1]
    heads = [renamed(l, "conv9_2", "conv10_2") for l in layers if l.name.startswith("conv9_2_mbox")]
    at = [l.name for l in layers].index("conv9_2_relu") + 1
    layers[at:at] = block
    at = [l.name for l in layers].index("mbox_loc")
    layers[at:at] = heads
    for layer in layers:
        if layer.name in ("mbox_loc", "mbox_conf", "mbox_priorbox"):
            suffix = {"mbox_loc": "_mbox_loc_flat", "mbox_conf": "_mbox_conf_flat",
                      "mbox_priorbox": "_mbox_priorbox"}[layer.name]
            layer.bottom.append("conv10_2" + suffix)
        source = layer.name.split("_mbox")[0]
        if source in _SSD512 and "_mbox" in layer.name:
            lo, hi, ratios, step = _SSD512[source]
            anchors = 2 + 2 * len(ratios)
            if layer.type == "PriorBox":
                p = layer.prior_box_param
                p.min_size[:] = [int(lo) if integer_sizes else lo]
                p.max_size[:] = [int(hi) if integer_sizes else hi]
                p.aspect_ratio[:] = ratios
                p.step = step
            elif layer.name.endswith("_mbox_loc"):
                layer.convolution_param.num_output = anchors * 4
            elif layer.name.endswith("_mbox_conf"):
                layer.convolution_param.num_output = anchors * 21
    del net.layer[:]
    net.layer.extend(layers)
    out.write_text(text_format.MessageToString(net))
    return out


def test_ssd512_detections_equal_opencv(caffe_dir, images, make_caffe_model, tmp_path, capsys, demo_detections):
    prototxt = derive_ssd512(caffe_dir / "VGG_VOC0712_SSD_300x300_deploy.prototxt",
                             tmp_path / "ssd512.prototxt", integer_sizes=True)
    caffemodel = make_caffe_model(prototxt, tmp_path / "ssd512.caffemodel", images[0])
    prefix = tmp_path / "ssd512"
    convert(prototxt, caffemodel, prefix, capsys=capsys)
    assert json.loads(Path(f"{prefix}-config.json").read_text())["data_shape"] == 512
    (ours,) = demo_detections(prefix, images[:1], tmp_path / "dets.json")
    assert_same_detections(opencv_detections(prototxt, caffemodel, images[0], "vgg16_reduced"), ours)

    # The recipe's fractional sizes (35.84, 76.8, ...) are what Caffe truncates to the same priors.
    fractional = derive_ssd512(caffe_dir / "VGG_VOC0712_SSD_300x300_deploy.prototxt",
                               tmp_path / "ssd512_recipe.prototxt", integer_sizes=False)
    convert(fractional, caffemodel, tmp_path / "recipe", capsys=capsys)


# ---------------------------------------------------------------------- options
def test_class_names_from_labelmap_and_list(mobilenet_model, caffe_dir, tmp_path, capsys):
    prototxt, caffemodel = mobilenet_model
    convert(prototxt, caffemodel, tmp_path / "a", "--class-names", str(caffe_dir / "labelmap_voc.prototxt"))
    names = json.loads((tmp_path / "a-config.json").read_text())["class_names"]
    assert names[0] == "aeroplane" and names[-1] == "tvmonitor" and len(names) == 20
    status = convert_main([str(prototxt), str(caffemodel), str(tmp_path / "b"), "--class-names", "a,b"])
    assert status == 1
    assert "2 class names given" in capsys.readouterr().err
    assert not list(tmp_path.glob("b*"))


def test_network_and_data_shape_flags(mobilenet_model, tmp_path, capsys):
    prototxt, caffemodel = mobilenet_model
    status = convert_main([str(prototxt), str(caffemodel), str(tmp_path / "v"), "--network", "vgg16_reduced"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("convert_model.py: error: ") and "is --network right?" in err
    convert(prototxt, caffemodel, tmp_path / "m", "--network", "mobilenet", "--data-shape", "300", "--epoch", "3")
    net, config = load_checkpoint(tmp_path / "m", 3)
    assert config.preprocess.mean == (127.5,) * 3 and config.preprocess.std[0] == pytest.approx(1 / 0.007843)
    assert config.nms["keep_topk"] == 100 and config.nms["thresh"] == pytest.approx(0.25)


def test_base_network_for_training(caffe_dir, tmp_path, capsys):
    from tools.caffe_converter import writer

    prototxt = caffe_dir / "VGG_ILSVRC_16_layers_fc_reduced_deploy.prototxt"
    net_def = reader.read_prototxt(prototxt)
    blobs = writer.random_blobs(net_def, 3)
    caffemodel = writer.write_caffemodel(tmp_path / "vgg_base.caffemodel", net_def, blobs)
    status = convert_main(["--base", str(prototxt), str(caffemodel), str(tmp_path / "vgg16_reduced_base")])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "fc8 (ImageNet classifier)" in out.out and "parameters left unset: none" in out.out
    assert out.out.splitlines()[0].startswith("vgg16_reduced base network") and "0 classes" not in out.out
    params = tmp_path / "vgg16_reduced_base.params"
    net = get_model("vgg16_reduced", 300, 20, pretrained_base=str(params))   # what train.py --pretrained does
    conv = net.backbone.fc6[0]
    np.testing.assert_array_equal(conv.weight.data().asnumpy(), blobs["fc6"][0])
    np.testing.assert_array_equal(net.backbone.stages[0][0][0].bias.data().asnumpy(), blobs["conv1_1"][1])
    assert mx.nd.sum(net(mx.nd.zeros((1, 3, 300, 300)))[0, :, 1] >= 0).asscalar() >= 0


def test_converted_model_exports(mobilenet_model, tmp_path, capsys):
    """The Caffe-exact decoding is in the graph: the exported files give the same detections."""
    prototxt, caffemodel = mobilenet_model
    convert(prototxt, caffemodel, tmp_path / "m")
    net, _ = load_checkpoint(tmp_path / "m", 0)
    x = mx.nd.array(np.random.default_rng(0).uniform(0, 255, (1, 3, 300, 300)))
    want = net(x).asnumpy()
    net.export(str(tmp_path / "exported"))
    block = mx.gluon.SymbolBlock.imports(str(tmp_path / "exported-symbol.json"), ["data"],
                                         str(tmp_path / "exported-0000.params"))
    np.testing.assert_allclose(block(x).asnumpy(), want, atol=1e-5)
