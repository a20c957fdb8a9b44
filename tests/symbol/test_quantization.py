"""Low-precision SSDs (symbol.quantization): INT8 and bfloat16 graphs, checked against float32.

The model is the embedded one (MobileNet-0.25 SSD300 trained on the synthetic
shapes), so that its detections mean something; the scenes are synthetic
images of a seed it was not trained on. Float32 is the independent reference:
every detection scoring 0.5 or more in either must have a partner of the same
class (IoU >= 0.85, score within 0.08), loose enough for INT8 and tight enough
to fail on a broken quantization (a wrong range, a missing dequantize, a
shifted prior). bfloat16 gets 0.12: it keeps 8 bits of mantissa through every
activation of this thin network (measured: 0.086 at worst, INT8 0.058).
"""
from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from dataset.synthetic import draw_sample
from evaluate.detector import network_input
from evaluate.parity import match_detections
from symbol import get_model
from symbol.checkpoint import (FORMAT_VERSION, config_path, load_checkpoint, params_path, save_checkpoint,
                               symbol_path)
from symbol.quantization import (LowPrecisionInfo, LowPrecisionSSD, _float32_by_rule, _nodes, cpu_has_bf16,
                                 float32_layers, priors, quantize_ssd, to_bfloat16)

EMBEDDED_PREFIX = Path(__file__).resolve().parents[2] / "assets" / "synthetic_model" / "ssd_synthetic"

THRESH, SCORE_TOL, MIN_IOU = 0.5, 0.08, 0.85
BF16_SCORE_TOL = 0.12

pytestmark = pytest.mark.skipif(not mx.runtime.Features().is_enabled("MKLDNN"),
                                reason="INT8 needs MXNet built with oneDNN")


def scenes(seed: int, count: int) -> np.ndarray:
    """``count`` synthetic scenes (RGB) as the network's input batch."""
    rng = np.random.default_rng(seed)
    return network_input([draw_sample(rng, 300, empty_fraction=0.0)[0][:, :, ::-1] for _ in range(count)], 300)


def detect(net, batch: np.ndarray) -> np.ndarray:
    with mx.autograd.predict_mode():
        return net(mx.nd.array(batch)).asnumpy()


def float_net():
    net, _ = load_checkpoint(EMBEDDED_PREFIX, 0)
    return net


@pytest.fixture(scope="module")
def test_batch() -> np.ndarray:
    return scenes(2027, 6)


@pytest.fixture(scope="module")
def reference(test_batch) -> np.ndarray:
    net = float_net()
    net.hybridize(static_alloc=True, static_shape=True)
    return detect(net, test_batch)


@pytest.fixture(scope="module")
def int8() -> LowPrecisionSSD:
    return quantize_ssd(float_net(), scenes(7, 8), source={"kind": "test"})


def assert_matches(reference: np.ndarray, ours: np.ndarray, min_pairs: int, score_tol: float = SCORE_TOL) -> None:
    pairs = 0
    for i, (a, b) in enumerate(zip(reference, ours)):
        parity = match_detections(a, b, THRESH, score_tol, MIN_IOU)
        assert parity.ok, f"scene {i}: {parity.summary()}"
        pairs += len(parity.pairs)
    assert pairs >= min_pairs  # the check compared detections, not two empty lists


# ---------------------------------------------------------------------- INT8
def test_int8_detects_what_float32_detects(int8, test_batch, reference):
    int8.hybridize(static_alloc=True, static_shape=True, backend="MKLDNN")
    assert_matches(reference, detect(int8, test_batch), min_pairs=8)


def test_int8_graph_keeps_the_right_layers_in_float32(int8):
    info = int8.info
    assert info.dtype == "int8" and info.num_levels == 6 and info.variances == (0.1, 0.1, 0.2, 0.2)
    assert dict(info.calibration) == {"mode": "naive", "num_images": 8, "quantized_dtype": "auto",
                                      "source": {"kind": "test"}}
    ops = dict(info.float32_ops)
    # the input normalization, and the heads' reshapes; every convolution runs in INT8
    assert ops["transpose"] == 12 and ops["Flatten"] == 12 and ops["Concat"] == 3
    assert not any(op in ops for op in ("Convolution", "_sg_mkldnn_conv", "Pooling", "BatchNorm"))
    assert "ssd_mobilenet_preprocess0_concat0" in info.excluded_layers
    assert sum("flatten" in n for n in info.excluded_layers) == 12
    assert {op for _, op in float32_layers(int8)} == set(ops)


def test_float32_rule_on_a_graph():
    """Outside the chain of convolutions, and batch norms that follow no convolution."""
    from mxnet.gluon import HybridBlock, nn

    class Tiny(HybridBlock):
        def __init__(self):
            super().__init__(prefix="t_")
            with self.name_scope():
                self.c1 = nn.Conv2D(4, 3, padding=1, in_channels=3)
                self.c2 = nn.Conv2D(4, 3, padding=1, in_channels=4)
                self.bn = nn.BatchNorm(in_channels=4)
                self.head = nn.Conv2D(2, 1, in_channels=4)

        def hybrid_forward(self, F, x):
            x = F.concat(x - 1, dim=1)  # "preprocessing"
            a = F.relu(self.c1(x))
            b = self.bn(F.elemwise_add(self.c2(a), a))  # a sum, then a batch norm on it
            return F.flatten(F.transpose(self.head(F.Pooling(b, kernel=(2, 2), pool_type="max")),
                                         axes=(0, 2, 3, 1)))

    net = Tiny()
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 8, 8)))
    symbol = net._cached_graph[1]
    ops = {n["name"]: n["op"] for n in _nodes(symbol)}
    assert sorted(ops[n] for n in _float32_by_rule(symbol)) == ["BatchNorm", "Concat", "Flatten",
                                                                 "_minus_scalar", "transpose"]


def test_int8_decoding_settings_apply(int8, test_batch):
    """The decoding is the float DetectionOutput: every mode and setting works."""
    x = test_batch[:1]
    int8.set_nms(thresh=0.5, keep_topk=5)
    out = detect(int8, x)
    assert out.shape == (1, 5, 6) and (out[0, :, 1][out[0, :, 0] >= 0] >= 0.5).all()
    for mode in ("caffe", "gluoncv", "mmdet"):
        int8.set_nms(nms_mode=mode, thresh=0.3)
        assert (detect(int8, x)[0, :, 0] >= 0).any(), mode
    int8.set_nms()
    with mx.autograd.predict_mode():
        cls_preds, box_preds, anchors = int8.raw_predictions(mx.nd.array(x))
    assert cls_preds.shape == (1, 1917, 4) and box_preds.shape == (1, 1917 * 4)
    ref_anchors, ref_levels = priors(float_net())  # the priors are the float network's, as constants
    np.testing.assert_array_equal(anchors.asnumpy(), ref_anchors)
    np.testing.assert_array_equal(int8.levels, ref_levels)
    assert sorted(set(ref_levels.ravel().tolist())) == [0, 1, 2, 3, 4, 5]


def test_int8_refuses_training_and_tracing(int8, test_batch):
    with mx.autograd.record(), pytest.raises(ValueError, match="an int8 model runs inference only"):
        int8(mx.nd.array(test_batch[:1]))
    # what the ONNX export does with a float network: trace its layers again
    with pytest.raises(ValueError, match="cannot be traced again .* use the float checkpoint"):
        int8._predict(mx.sym, mx.sym.var("data"))


def test_int8_export_runs_without_project_code(int8, test_batch, tmp_path):
    int8.set_nms()
    int8.export(str(tmp_path / "int8"))
    block = mx.gluon.SymbolBlock.imports(str(tmp_path / "int8-symbol.json"), ["data"],
                                         str(tmp_path / "int8-0000.params"))
    np.testing.assert_allclose(block(mx.nd.array(test_batch[:2])).asnumpy(), detect(int8, test_batch[:2]),
                               atol=1e-5)


def test_bad_calibration_batches():
    net = get_model("mobilenet", 96, 2, multiplier=0.25)
    with pytest.raises(ValueError, match="empty"):
        quantize_ssd(net, np.zeros((0, 3, 96, 96), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, 96, 96\)"):
        quantize_ssd(net, np.zeros((2, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        quantize_ssd(net, np.full((1, 3, 96, 96), np.nan, np.float32))
    with pytest.raises(ValueError, match="no layer of the graph matches 'no_such_layer'"):
        quantize_ssd(net, np.zeros((1, 3, 96, 96), np.float32), exclude=["no_such_layer"])
    with pytest.raises(ValueError, match="calib_mode"):
        quantize_ssd(net, np.zeros((1, 3, 96, 96), np.float32), calib_mode="minmax")


def test_exclude_keeps_layers_in_float32():
    net = get_model("mobilenet", 96, 2, multiplier=0.25)
    heads = ["ssd_mobilenet_conv1_fwd", "ssd_mobilenet_conv3_fwd"]  # two of the box heads
    low = quantize_ssd(net, scenes(1, 2)[:, :, :96, :96], exclude=heads)
    assert dict(low.info.float32_ops)["_sg_mkldnn_conv"] == 2  # float32 oneDNN convolutions
    assert set(heads) <= set(low.info.excluded_layers)


# ---------------------------------------------------------------------- bfloat16
@pytest.mark.skipif(cpu_has_bf16() is False, reason="this CPU has no bfloat16 instructions")
def test_bfloat16_detects_what_float32_detects(test_batch, reference):
    low = to_bfloat16(float_net())
    assert low.info.dtype == "bfloat16" and low.info.calibration is None
    low.hybridize(static_alloc=True, static_shape=True, backend="MKLDNN")
    assert_matches(reference, detect(low, test_batch), min_pairs=8, score_tol=BF16_SCORE_TOL)


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(int8, test_batch, tmp_path):
    int8.set_nms()
    prefix = tmp_path / "int8"
    save_checkpoint(int8, prefix, 0, ["circle", "square", "triangle"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8-0000.params", "int8-config.json",
                                                          "int8-symbol.json"]
    data = json.loads(config_path(prefix).read_text())
    assert data["version"] == FORMAT_VERSION == 3
    assert data["network"] == "mobilenet" and data["quantized"]["dtype"] == "int8"
    assert data["quantized"]["calibration"]["num_images"] == 8
    loaded, config = load_checkpoint(prefix, 0, nms_thresh=0.4)
    assert isinstance(loaded, LowPrecisionSSD) and config.low_precision == int8.info
    assert loaded.decoding.nms_thresh == 0.4
    loaded.set_nms()
    np.testing.assert_array_equal(detect(loaded, test_batch[:2]), detect(int8, test_batch[:2]))
    # renaming the classes is fine; changing the graph is not
    load_checkpoint(prefix, 0, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="fixes the data_shape"):
        load_checkpoint(prefix, 0, data_shape=320)
    with pytest.raises(ValueError, match="CPU only"):
        load_checkpoint(prefix, 0, ctx=mx.gpu(0))


def test_damaged_low_precision_checkpoints(int8, tmp_path):
    prefix = tmp_path / "int8"
    save_checkpoint(int8, prefix, 0, ["circle", "square", "triangle"])
    symbol_path(prefix).rename(tmp_path / "moved.json")
    with pytest.raises(FileNotFoundError, match="int8-symbol.json"):
        load_checkpoint(prefix, 0)
    (tmp_path / "moved.json").rename(symbol_path(prefix))
    params_path(prefix, 0).write_bytes(b"not params")
    with pytest.raises(ValueError, match="cannot read checkpoint params"):
        load_checkpoint(prefix, 0)
    data = json.loads(config_path(prefix).read_text())
    data["quantized"]["dtype"] = "int4"
    config_path(prefix).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="quantized.dtype"):
        load_checkpoint(prefix, 0)


def test_info_validation():
    good = {"dtype": "int8", "variances": [0.1, 0.1, 0.2, 0.2], "num_levels": None,
            "calibration": {"mode": "naive", "num_images": 4, "quantized_dtype": "auto", "source": {}}}
    info = LowPrecisionInfo.from_dict(good)
    assert LowPrecisionInfo.from_dict(info.to_dict()) == info
    for change, message in (({"calibration": None}, "needs quantized.calibration"),
                            ({"variances": [0.1, 0.2]}, "4 positive numbers"),
                            ({"num_levels": 0}, "num_levels"),
                            ({"extra": 1}, "unknown fields"),
                            ({"calibration": {**good["calibration"], "mode": "kl"}}, "calibration.mode"),
                            ({"dtype": "bfloat16"}, "has no calibration")):
        with pytest.raises(ValueError, match=message):
            LowPrecisionInfo.from_dict({**good, **change})


def test_a_failed_save_leaves_nothing(int8, tmp_path, monkeypatch):
    """The three files are renamed into place only once all are complete."""
    import symbol.checkpoint as checkpoint

    def fail(path, data):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "write_json", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(int8, tmp_path / "int8", 0, ["circle", "square", "triangle"])
    assert list(tmp_path.iterdir()) == []
