"""The MXNet decoding graph against the NumPy reference in ``symbol.boxes``.

First the reference is checked against MXNet's own operators
(MultiBoxDetection, MultiBoxTarget) on random and hand-made edge cases, then
``DetectionOutput``, imperative and hybridized, against the reference.
"""
from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from symbol import boxes, reference
from symbol.detection import VARIANCES, DecodeConfig, DetectionOutput


def prior_anchors(side: int, sizes: tuple[float, ...], ratios: tuple[float, ...]) -> np.ndarray:
    """(1, side * side * A, 4) MultiBoxPrior corners on a ``side`` x ``side`` feature map."""
    feat = mx.nd.zeros((1, 1, side, side))
    return mx.nd.contrib.MultiBoxPrior(feat, sizes=sizes, ratios=ratios).asnumpy()


#: name -> (anchors, foreground classes): sparse-ish and heavily overlapping layouts.
LAYOUTS = {
    "sparse": (prior_anchors(4, (0.2, 0.3), (1, 2, 0.5)), 3),
    "crowded": (prior_anchors(5, (0.6, 0.8), (1, 2, 0.5, 3, 1 / 3)), 4),
}


def random_predictions(layout: str, seed: int, batch: int = 2, logit_scale: float = 2.0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (B, N, C + 1), offsets (B, N * 4) and anchors (1, N, 4), float32.

    The last image is all background (every foreground score far under 0.01).
    """
    anchors, classes = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    n = anchors.shape[1]
    logits = (rng.normal(size=(batch, n, classes + 1)) * logit_scale).astype(np.float32)
    logits[-1, :, 0] += 30.0
    loc = (rng.normal(size=(batch, n * 4)) * 0.5).astype(np.float32)
    return logits, loc, anchors


def assert_detections_equal(got: np.ndarray, want: np.ndarray) -> None:
    """Class ids exactly, scores and corners to 1e-5."""
    assert got.shape == want.shape
    np.testing.assert_array_equal(got[..., 0], want[..., 0])
    np.testing.assert_allclose(got[..., 1:], want[..., 1:], rtol=0, atol=1e-5)


def mx_multibox_detection(prob: np.ndarray, loc: np.ndarray, anchors: np.ndarray, **kwargs) -> np.ndarray:
    return mx.nd.contrib.MultiBoxDetection(mx.nd.array(prob), mx.nd.array(loc), mx.nd.array(anchors),
                                           **kwargs).asnumpy()


def check_against_multibox_detection(prob: np.ndarray, loc: np.ndarray, anchors: np.ndarray,
                                     **kwargs) -> list[np.ndarray]:
    """MultiBoxDetection's rows of class >= 0, in their order, equal the reference.

    (MultiBoxDetection marks suppressed rows -1 in place, between the survivors.)
    """
    # spelled out: MultiBoxDetection's own defaults are nms_threshold=0.5, nms_topk=-1
    kwargs = {"threshold": 0.01, "nms_threshold": 0.45, "nms_topk": 400, **kwargs}
    got = mx_multibox_detection(prob, loc, anchors, **kwargs)
    want = reference.multibox_detection(prob, loc, anchors, **kwargs)
    for img, det in enumerate(want):
        assert_detections_equal(got[img][got[img, :, 0] >= 0], det)
    return want


# ---------------------------------------------------------------- the reference vs MXNet's operators
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(threshold=0.2, nms_threshold=0.3),
    dict(nms_topk=7, nms_threshold=0.6),
    dict(force_suppress=True, nms_threshold=0.5),
    dict(nms_threshold=1.0, clip=False, variances=(0.2, 0.2, 0.1, 0.3)),
])
def test_reference_matches_multibox_detection(layout: str, kwargs: dict) -> None:
    logits, loc, anchors = random_predictions(layout, seed=3)
    prob = np.transpose(boxes.softmax(logits), (0, 2, 1))
    want = check_against_multibox_detection(prob, loc, anchors, **kwargs)
    assert len(want[0]) > 1 and len(want[-1]) == 0
    if "nms_topk" in kwargs:
        assert len(want[0]) <= kwargs["nms_topk"]


def test_reference_matches_multibox_detection_edge_cases() -> None:
    anchors = np.array([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.25], [0.6, 0.6, 0.7, 0.7],
                         [0.6, 0.6, 0.7, 0.7], [0.3, 0.3, 0.3, 0.3], [0.8, 0.8, 0.8, 0.8]]], np.float32)
    loc = np.zeros((1, 24), np.float32)
    prob = np.array([[[0.1] * 6,
                      [0.9, 0.8, 0.3, 0.3, 0.25, 0.25],    # class 0
                      [0.0, 0.0, 0.3, 0.1, 0.0, 0.0]]],    # class 1 ties class 0 on anchor 2
                    np.float32)
    # IoU(0, 1) is exactly 0.5: suppressed at 0.5 (>=), kept just above it
    det = check_against_multibox_detection(prob, loc, anchors, nms_threshold=0.5, threshold=0.25)[0]
    np.testing.assert_allclose(det[:, 1], [0.9, 0.3, 0.25, 0.25])  # a score equal to threshold stays
    det = check_against_multibox_detection(prob, loc, anchors, nms_threshold=0.5001)[0]
    np.testing.assert_allclose(det[:, 1], [0.9, 0.8, 0.3, 0.25, 0.25])
    # a class tie goes to the lower id, equal boxes of one class suppress (anchor 3 goes),
    # equal scores keep anchor order (4 before 5), zero-area boxes suppress nothing
    assert det[2, 0] == 0 and det[2, 2] == np.float32(0.6)
    np.testing.assert_array_equal(det[3:, 2], np.float32([0.3, 0.8]))
    # nothing sorted or suppressed outside (0, 1]
    check_against_multibox_detection(prob, loc, anchors, nms_threshold=0.0)
    check_against_multibox_detection(prob, loc, anchors, nms_topk=2, force_suppress=True)


def test_encode_matches_multibox_target() -> None:
    anchors = prior_anchors(4, (0.3, 0.45), (1, 2, 0.5))
    gt = np.array([[0.1, 0.15, 0.42, 0.5], [0.5, 0.55, 0.95, 0.9]], np.float32)
    labels = np.concatenate([[[1], [0]], gt], axis=1)[None].astype(np.float32)
    cls_preds = mx.nd.zeros((1, 3, anchors.shape[1]))
    loc_target, loc_mask, _ = mx.nd.contrib.MultiBoxTarget(mx.nd.array(anchors), mx.nd.array(labels),
                                                           cls_preds, overlap_threshold=0.5,
                                                           variances=VARIANCES)
    loc_target = loc_target.asnumpy().reshape(-1, 4)
    matched = np.flatnonzero(loc_mask.asnumpy().reshape(-1, 4)[:, 0])
    assert len(matched) >= 2
    best = boxes.box_iou(anchors[0][matched], gt).argmax(axis=1)
    np.testing.assert_allclose(loc_target[matched], boxes.encode(gt[best], anchors[0][matched]),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- DetectionOutput vs the reference
CONFIGS = [
    dict(),
    dict(nms_thresh=0.3, thresh=0.1, keep_topk=10),
    dict(nms_topk=12, keep_topk=20),
    dict(force_suppress=True, keep_topk=15),
    dict(nms_thresh=1.0, keep_topk=400),   # more rows than anchors in "sparse": padded
]


@pytest.mark.parametrize("hybridize", [False, True], ids=["imperative", "hybridized"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("config", CONFIGS)
def test_detection_output_matches_reference(config: dict, layout: str, hybridize: bool) -> None:
    logits, loc, anchors = random_predictions(layout, seed=11)
    block = DetectionOutput(**config)
    if hybridize:
        block.hybridize()
    got = block(mx.nd.array(logits), mx.nd.array(loc), mx.nd.array(anchors)).asnumpy()
    want = reference.detection_output(logits, loc, anchors, **block.config)
    assert want.shape == (2, block.keep_topk, 6)
    assert_detections_equal(got, want)
    assert want[0, 0, 0] >= 0
    np.testing.assert_array_equal(got[1], -1)   # the all-background image


def test_single_confident_anchor_is_decoded_like_the_reference() -> None:
    anchors = prior_anchors(3, (0.3,), (1, 2))
    n = anchors.shape[1]
    logits = np.zeros((1, n, 4), np.float32)
    logits[..., 0] = 20.0
    k = 8                                  # centre cell, ratio 2: no clipping needed
    logits[0, k] = [0.0, 1.0, 9.0, 2.0]   # class 1 (0-based), score ~0.999
    loc = np.zeros((1, n * 4), np.float32)
    delta = np.array([0.7, -0.4, 0.5, -0.8], np.float32)
    loc[0, 4 * k:4 * k + 4] = delta
    block = DetectionOutput(keep_topk=3)
    block.hybridize()
    out = block(mx.nd.array(logits), mx.nd.array(loc), mx.nd.array(anchors)).asnumpy()
    box = boxes.decode(delta[None], anchors[0, k:k + 1])[0]
    assert np.all((box > 0) & (box < 1))
    assert out[0, 0, 0] == 1
    np.testing.assert_allclose(out[0, 0, 1], boxes.softmax(logits[0, k])[2], rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 2:], box, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out[0, 1:], -1)


def test_zero_score_survives_a_zero_threshold() -> None:
    # softmax underflows to exactly 0: kept by MultiBoxDetection at thresh 0, so kept here too
    logits = np.array([[[0.0, -200.0, -300.0], [0.0, 1.0, -300.0], [0.0, -300.0, -200.0]]], np.float32)
    anchors = np.array([[[0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4], [0.5, 0.5, 0.6, 0.6]]], np.float32)
    loc = np.zeros((1, 12), np.float32)
    block = DetectionOutput(thresh=0.0, keep_topk=4)
    got = block(mx.nd.array(logits), mx.nd.array(loc), mx.nd.array(anchors)).asnumpy()
    want = reference.detection_output(logits, loc, anchors, **block.config)
    assert_detections_equal(got, want)
    np.testing.assert_array_equal(got[0, :, 1] == 0, [False, True, True, False])


@pytest.mark.parametrize("bad", [dict(nms_thresh=0.0), dict(nms_thresh=1.5), dict(keep_topk=0),
                                 dict(nms_topk=0), dict(nms_topk=-2), dict(thresh=-0.1),
                                 dict(thresh=1.0)])
def test_configure_rejects_bad_values(bad: dict) -> None:
    block = DetectionOutput()
    before = block.config
    with pytest.raises(ValueError, match=next(iter(bad))):
        block.configure(**{**before, **bad})
    assert block.config == before
    with pytest.raises(ValueError):
        DetectionOutput(**bad)


def test_decode_config_is_the_one_list_of_settings() -> None:
    """The reference decoder, the block, set_nms and checkpoint configs share DecodeConfig's names."""
    import inspect

    assert set(DecodeConfig.names()) <= set(inspect.signature(reference.detection_output).parameters)
    config = DecodeConfig(nms_thresh=0.3, nms_mode="caffe")
    assert DecodeConfig.from_dict(config.to_dict()) == config
    assert config.replace(nms_thresh=None, keep_topk=7) == DecodeConfig(nms_thresh=0.3, nms_mode="caffe",
                                                                        keep_topk=7)
    with pytest.raises(ValueError, match="unknown decoding settings"):
        DecodeConfig.from_dict({"iou": 0.5})
    block = DetectionOutput(config, keep_topk=9)
    assert block.decoding == config.replace(keep_topk=9) and block.keep_topk == 9
    block.configure(thresh=0.2)  # configure changes only what it is given
    assert block.config == {**config.to_dict(), "keep_topk": 9, "thresh": 0.2}


def test_changing_keep_topk_changes_the_row_count() -> None:
    logits, loc, anchors = random_predictions("crowded", seed=5)
    block = DetectionOutput(keep_topk=5)
    block.hybridize()
    args = [mx.nd.array(x) for x in (logits, loc, anchors)]
    first = block(*args).asnumpy()
    assert first.shape == (2, 5, 6)
    block.configure(**{**block.config, "keep_topk": 12})
    second = block(*args).asnumpy()
    assert second.shape == (2, 12, 6)
    np.testing.assert_array_equal(second[:, :5], first)
    assert_detections_equal(second, reference.detection_output(logits, loc, anchors, **block.config))


@pytest.mark.parametrize("mode", ["multibox", "caffe"])
def test_other_variances_decode_like_the_reference(mode: str) -> None:
    """A model trained with other box-coder variances (a Caffe PriorBox's) decodes with them."""
    logits, loc, anchors = random_predictions("crowded", seed=5)
    variances = (0.2, 0.15, 0.3, 0.25)
    block = DetectionOutput(nms_mode=mode, num_classes=4, variances=variances)
    block.hybridize()
    got = block(mx.nd.array(logits), mx.nd.array(loc), mx.nd.array(anchors)).asnumpy()
    want = reference.detection_output(logits, loc, anchors, variances=variances, **block.config)
    assert_detections_equal(got, want)
    standard = reference.detection_output(logits, loc, anchors, **block.config)
    assert np.abs(want[0, :, 2:] - standard[0, :, 2:]).max() > 1e-2  # the variances do matter here
    with pytest.raises(ValueError, match="variances must be 4 positive numbers"):
        DetectionOutput(variances=(0.1, 0.1, 0.2))


# ---------------------------------------------------------------- GluonCV's and mmdetection's decoding
def two_level_predictions(seed: int, batch: int = 2) -> tuple[np.ndarray, ...]:
    """Logits, offsets, anchors and the (1, N) level of every anchor, for a 4x4 map then a
    2x2 map (the second level has fewer pairs than some top-k below); the last image is
    all background. Offsets are large enough that mmdetection's size clamp bites."""
    first = prior_anchors(4, (0.2, 0.3), (1, 2, 0.5))
    second = prior_anchors(2, (0.5, 0.7), (1, 2))
    anchors = np.concatenate([first, second], axis=1)
    levels = np.concatenate([np.zeros(first.shape[1]), np.ones(second.shape[1])])[None].astype(np.float32)
    rng = np.random.default_rng(seed)
    n, classes = anchors.shape[1], 3
    logits = (rng.normal(size=(batch, n, classes + 1)) * 2.0).astype(np.float32)
    logits[-1, :, 0] += 30.0
    loc = (rng.normal(size=(batch, n * 4)) * 0.5).astype(np.float32)
    loc[:, 2::4][:, :5] = 30.0   # exp(30 * 0.2) > 1000 / 16: clamped by mmdetection
    return logits, loc, anchors, levels


MODE_CONFIGS = [
    dict(nms_mode="gluoncv", thresh=0.01, nms_thresh=0.45, nms_topk=400, keep_topk=100),
    dict(nms_mode="gluoncv", thresh=0.1, nms_thresh=0.3, nms_topk=7, keep_topk=5),
    dict(nms_mode="gluoncv", nms_topk=-1, keep_topk=30, force_suppress=True),
    dict(nms_mode="mmdet", thresh=0.02, nms_thresh=0.45, nms_topk=1000, keep_topk=200),
    dict(nms_mode="mmdet", thresh=0.05, nms_thresh=0.3, nms_topk=9, keep_topk=12),  # level 1 has 12 anchors x 3
    dict(nms_mode="mmdet", nms_topk=-1, keep_topk=40, force_suppress=True),
]


@pytest.mark.parametrize("hybridize", [False, True], ids=["imperative", "hybridized"])
@pytest.mark.parametrize("config", MODE_CONFIGS, ids=lambda c: f"{c['nms_mode']}-{c.get('nms_topk')}")
def test_gluoncv_and_mmdet_modes_match_the_reference(config: dict, hybridize: bool) -> None:
    logits, loc, anchors, levels = two_level_predictions(seed=4)
    block = DetectionOutput(**config)
    block.num_levels = 2
    if hybridize:
        block.hybridize()
    needs_levels = config["nms_mode"] == "mmdet" and config["nms_topk"] > 0   # nms_pre is per level
    args = [mx.nd.array(a) for a in (logits, loc, anchors) + ((levels,) if needs_levels else ())]
    got = block(*args).asnumpy()
    want = reference.detection_output(logits, loc, anchors, levels=levels, **block.config)
    assert (want[0, :, 0] >= 0).sum() >= min(5, block.keep_topk)
    assert_detections_equal(got, want)
    np.testing.assert_array_equal(got[1], -1)   # the all-background image


def test_mmdet_mode_bounds_the_candidates_per_level() -> None:
    """nms_pre is per level: a level's pairs never crowd out another level's."""
    logits, loc, anchors, levels = two_level_predictions(seed=9)
    logits = logits[:1]   # the first image (the second is all background)
    loc = loc[:1]
    logits[0, levels[0] == 1, 1] += 6.0   # level 1's class-0 pairs outscore everything
    kwargs = dict(nms_mode="mmdet", thresh=0.0, nms_thresh=1.0, nms_topk=4, keep_topk=50)
    det = reference.detection_output(logits, loc, anchors, levels=levels, **kwargs)[0]
    valid = det[det[:, 0] >= 0]
    assert len(valid) == 8   # 4 per level survive an NMS that suppresses nothing (not the best 4 overall)
    block = DetectionOutput(**kwargs)
    block.num_levels = 2
    assert_detections_equal(block(*[mx.nd.array(a) for a in (logits, loc, anchors, levels)]).asnumpy()[0], det)


def test_gluoncv_mode_equals_gluoncv_own_decoding() -> None:
    """GluonCV's SSD inference path (MultiPerClassDecoder, NormalizedBoxCenterDecoder, box_nms,
    post_nms) on the same raw predictions, boxes clipped to the image as ours are."""
    from gluoncv.nn.coder import MultiPerClassDecoder, NormalizedBoxCenterDecoder

    logits, loc, anchors, _ = two_level_predictions(seed=2)
    c = anchors[0]
    center = np.stack([(c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2, c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]], 1)
    bboxes = NormalizedBoxCenterDecoder((0.1, 0.1, 0.2, 0.2))(mx.nd.array(loc).reshape((0, -1, 4)),
                                                             mx.nd.array(center[None]))
    ids, scores = MultiPerClassDecoder(logits.shape[2], thresh=0.01)(mx.nd.softmax(mx.nd.array(logits), axis=-1))
    per_class = [mx.nd.concat(ids[:, :, i:i + 1], scores[:, :, i:i + 1], bboxes, dim=-1)
                 for i in range(logits.shape[2] - 1)]
    result = mx.nd.contrib.box_nms(mx.nd.concat(*per_class, dim=1), overlap_thresh=0.45, topk=400,
                                   valid_thresh=0.01, id_index=0, score_index=1, coord_start=2,
                                   force_suppress=False)[:, :100].asnumpy()
    valid = result[..., :1] >= 0
    result[..., 2:] = np.where(valid, np.clip(result[..., 2:], 0, 1), -1)
    block = DetectionOutput(nms_mode="gluoncv", thresh=0.01, nms_thresh=0.45, nms_topk=400, keep_topk=100)
    block.hybridize()
    got = block(mx.nd.array(logits), mx.nd.array(loc), mx.nd.array(anchors)).asnumpy()
    assert valid[0].sum() >= 20
    assert_detections_equal(got, result)


@pytest.mark.parametrize("mode", ["gluoncv", "mmdet"])
def test_a_network_decodes_like_the_reference_in_every_mode(mode: str) -> None:
    """The SSD supplies the anchors' levels: Caffe MobileNet-SSD's 19, 10, 5, 3, 2, 1 maps with
    3 then 6 priors per location."""
    from mxnet import autograd

    from symbol import get_model

    mx.random.seed(0)
    net = get_model("mobilenet", 300, 5, multiplier=0.25)
    x = mx.nd.array(np.random.default_rng(0).uniform(0, 255, (2, 3, 300, 300)))
    with autograd.predict_mode():
        spread = float(net._predict(mx.nd, x)[0].asnumpy().std(axis=1).mean())
    for head in net.class_heads:  # distinct scores at every location (random features are tiny)
        head.weight.set_data(head.weight.data() * (2.0 / spread))
    with autograd.predict_mode():
        logits, loc, anchors, levels = (a.asnumpy() for a in net._predict(mx.nd, x, levels=True))
    assert 1.0 < logits.std(axis=1).mean() < 3.0
    counts = np.bincount(levels[0].astype(int))
    np.testing.assert_array_equal(counts, [19 * 19 * 3] + [n * n * 6 for n in (10, 5, 3, 2, 1)])
    assert (np.diff(levels[0]) >= 0).all()
    net.set_nms(nms_mode=mode, keep_topk=50)
    net.hybridize()
    want = reference.detection_output(logits, loc, anchors, levels=levels, variances=net.variances,
                                      **net.nms_config)
    assert (want[:, :, 0] >= 0).sum() >= 20
    assert_detections_equal(net(x).asnumpy(), want)
