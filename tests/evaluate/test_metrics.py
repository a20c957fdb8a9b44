"""Detection metrics: VOC mAP against hand-computed cases and a devkit transcription, COCO
against a direct pycocotools run."""
from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from evaluate.metrics import COCOMetric, VOCMetric, box_iou, match_image, voc_ap

NAMES = ("cat", "dog", "bird")


# --------------------------------------------------------------------------- voc_ap
def test_voc_ap_on_a_hand_made_curve() -> None:
    rec, prec = [0.25, 0.5, 0.75], [1.0, 0.5, 0.6]
    # 11-point: t = 0, .1, .2 -> 1.0; t = .3 ... .7 -> 0.6 (envelope at recall >= t); t >= .8 -> 0
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(6 / 11, abs=1e-15)
    # area: .25 * 1 + .25 * .6 + .25 * .6 + .25 * 0
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(0.55, abs=1e-15)


def test_voc_ap_empty_curve_is_zero() -> None:
    assert voc_ap([], [], use_07_metric=True) == 0.0
    assert voc_ap([], [], use_07_metric=False) == 0.0


def test_voc07_thresholds_are_the_python_ports() -> None:
    # np.arange(0, 1.1, 0.1)[6] is 0.6000000000000001 > 0.6: a recall of exactly 0.6 misses t = 0.6
    assert voc_ap([0.6], [1.0], use_07_metric=True) == pytest.approx(6 / 11, abs=1e-15)
    assert voc_ap([0.5], [1.0], use_07_metric=True) == pytest.approx(6 / 11, abs=1e-15)


def test_voc_ap_does_not_mutate_inputs() -> None:
    rec, prec = np.array([0.5, 1.0]), np.array([0.2, 0.9])
    voc_ap(rec, prec, use_07_metric=False)
    np.testing.assert_array_equal(prec, [0.2, 0.9])


# --------------------------------------------------------------------------- matching
def test_iou_exactly_half_is_not_a_match() -> None:
    gt = [[0, 0, 10, 10]]
    det = [[0, 0, 10, 20]]  # 100 / 200 = 0.5 exactly
    assert box_iou(det, gt, plus_one=False)[0, 0] == 0.5
    tp, ignored = match_image(det, [0.9], gt)
    assert not tp[0] and not ignored[0]
    tp, _ = match_image(det, [0.9], gt, iou_thresh=0.49)
    assert tp[0]


def test_duplicate_is_a_false_positive_even_with_another_box_free() -> None:
    gt = [[0, 0, 10, 10], [0, 0, 10, 11]]  # IoU 10/11 with each other
    dets = [[0, 0, 10, 10], [0, 0, 10, 10.2]]  # both prefer box 0; the second is not re-assigned
    tp, ignored = match_image(dets, [0.9, 0.8], gt)
    np.testing.assert_array_equal(tp, [True, False])
    np.testing.assert_array_equal(ignored, [False, False])
    # order comes from the scores, not from the array
    tp, _ = match_image(dets, [0.8, 0.9], gt)
    np.testing.assert_array_equal(tp, [False, True])


def test_ties_within_an_image_keep_array_order() -> None:
    tp, _ = match_image([[0, 0, 10, 10], [1, 0, 10, 10]], [0.5, 0.5], [[0, 0, 10, 10]])
    np.testing.assert_array_equal(tp, [True, False])


def test_matching_respects_labels_and_difficult() -> None:
    gt, labels, difficult = [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1], [False, True]
    dets = [[0, 0, 10, 10], [20, 20, 30, 30], [20, 20, 30, 30]]
    tp, ignored = match_image(dets, [0.9, 0.8, 0.7], gt, difficult, det_labels=[1, 1, 0],
                              gt_labels=labels)
    np.testing.assert_array_equal(tp, [False, False, False])
    np.testing.assert_array_equal(ignored, [False, True, False])
    tp, ignored = match_image(dets, [0.9, 0.8, 0.7], gt, difficult, det_labels=[1, 1, 0],
                              gt_labels=labels, use_difficult=True)
    np.testing.assert_array_equal(tp, [False, True, False])
    assert not ignored.any()


# --------------------------------------------------------------------------- VOCMetric, by hand
def _difficult_case(metric: VOCMetric) -> None:
    gt = [[0, 0, 10, 10], [50, 50, 60, 60]]  # A normal, D difficult
    dets = [[50, 50, 60, 60], [100, 100, 110, 110], [0, 0, 10, 10]]  # on D, nowhere, on A
    metric.update(dets, [0, 0, 0], [0.9, 0.8, 0.7], gt, [0, 0], [False, True])


def test_difficult_is_ignored() -> None:
    for name, want in (("voc07", 0.5), ("voc10", 0.5)):
        m = VOCMetric(NAMES, metric=name)
        _difficult_case(m)
        res = m.get()
        # counted: FP (0.8), TP (0.7); npos 1 -> precision [0, .5], recall [0, 1]
        assert res.ap["cat"] == pytest.approx(want, abs=1e-15)
        assert res.num_gt["cat"] == 1 and res.num_det["cat"] == 3
        np.testing.assert_array_equal(res.precision["cat"], [0.0, 0.5])
        np.testing.assert_array_equal(res.recall["cat"], [0.0, 1.0])


def test_use_difficult_counts_them() -> None:
    m = VOCMetric(NAMES, metric="voc10", use_difficult=True)
    _difficult_case(m)
    res = m.get()
    # TP, FP, TP with npos 2: recall [.5, .5, 1], precision [1, .5, 2/3] -> .5 * 1 + .5 * 2/3
    assert res.num_gt["cat"] == 2
    assert res.ap["cat"] == pytest.approx(5 / 6, abs=1e-15)
    np.testing.assert_allclose(res.precision["cat"], [1, 0.5, 2 / 3], rtol=0, atol=1e-15)


def test_classes_without_detections_or_ground_truth() -> None:
    m = VOCMetric(NAMES, metric="voc10")
    m.update([[0, 0, 10, 10], [0, 0, 10, 10]], [0, 0], [0.9, 0.8],
             [[0, 0, 10, 10], [30, 30, 40, 40]], [0, 1])  # cat found twice, dog missed
    res = m.get()
    assert res.ap["cat"] == 1.0  # the duplicate comes after recall 1: no loss
    np.testing.assert_array_equal(res.precision["cat"], [1.0, 0.5])
    assert res.ap["dog"] == 0.0 and res.num_det["dog"] == 0
    assert math.isnan(res.ap["bird"]) and res.no_ground_truth == ("bird",)
    assert res.mAP == pytest.approx(0.5, abs=1e-15)  # mean of cat and dog only
    d = res.to_dict()
    assert d == {"metric": "voc10", "mAP": 0.5, "ap": {"cat": 1.0, "dog": 0.0, "bird": None}}
    assert json.loads(json.dumps(d)) == d


def test_ties_across_images_rank_in_update_order() -> None:
    gt = [[0, 0, 10, 10]]
    fp_image = ([[50, 50, 60, 60]], [0], [0.5], np.zeros((0, 4)), [])
    tp_image = ([[0, 0, 10, 10]], [0], [0.5], gt, [0])
    m = VOCMetric(NAMES, metric="voc10")
    m.update(*fp_image)
    m.update(*tp_image)
    assert m.get().ap["cat"] == pytest.approx(0.5, abs=1e-15)  # FP ranked first: precision [0, .5]
    m.reset()
    m.update(*tp_image)
    m.update(*fp_image)
    assert m.get().ap["cat"] == 1.0  # TP first: precision [1, .5]


def test_padding_rows_and_update_batch() -> None:
    rows = np.full((2, 5, 6), -1.0, dtype=np.float32)  # (B, N, [label, score, box])
    rows[0, 0] = [0, 0.9, 0, 0, 10, 10]
    rows[1, 0] = [1, 0.8, 5, 5, 20, 20]
    gt = np.full((2, 3, 5), -1.0, dtype=np.float32)
    gt[0, 0] = [0, 0, 10, 10, 0]
    gt[1, :2] = [[5, 5, 20, 20, 1], [0, 0, 4, 4, 1]]
    m = VOCMetric(NAMES, metric="voc10")
    m.update_batch(rows[..., 2:], rows[..., 0], rows[..., 1:2], gt[..., :4], gt[..., 4])
    res = m.get()
    assert m.num_images == 2
    assert res.ap["cat"] == 1.0 and res.ap["dog"] == 0.5 and res.num_gt["dog"] == 2
    assert res.num_det == {"cat": 1, "dog": 1, "bird": 0}


def test_empty_evaluator() -> None:
    res = VOCMetric(NAMES).get()
    assert math.isnan(res.mAP) and res.no_ground_truth == NAMES
    assert res.to_dict()["mAP"] is None


def test_inputs_are_not_mutated() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 9, 9]], dtype=np.float32)
    labels, scores = np.array([0, -1]), np.array([0.2, 0.9], dtype=np.float32)
    copies = [a.copy() for a in (boxes, labels, scores)]
    m = VOCMetric(NAMES)
    m.update(boxes, labels, scores, boxes, labels)
    m.get()
    for a, c in zip((boxes, labels, scores), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("args, message", [
    (([[0, 0, 1]], [0], [0.5], [], []), "pred_boxes must have shape"),
    (([[0, 0, 1, 1]], [0, 1], [0.5], [], []), r"pred_labels must have shape \(1,\)"),
    (([[0, 0, 1, 1]], [0], [0.5, 0.2], [], []), "pred_scores must have shape"),
    (([[0, 0, 1, 1]], [0], [float("nan")], [], []), r"pred_scores\[0\] is NaN"),
    (([[0, 0, 1, 1]], [3], [0.5], [], []), r"pred_labels\[0\] = 3 is not a class index"),
    (([], [], [], [[0, 0, 1, 1]], [7]), r"gt_labels\[0\] = 7"),
    (([], [], [], [[0, 0, 1, 1]], [0, 0]), "gt_labels must have shape"),
    (([[0, 0, 1, float("inf")]], [0], [0.5], [], []), "not finite"),
])
def test_bad_input_raises(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        VOCMetric(NAMES).update(*args, image_id="x")


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="unknown metric 'voc12'; choose from voc07, voc10"):
        VOCMetric(NAMES, metric="voc12")
    with pytest.raises(ValueError, match="duplicates"):
        VOCMetric(["a", "a"])


# --------------------------------------------------------------------------- against the devkit
def devkit_ap(rec, prec, use_07_metric):
    """voc_ap of the devkit's Python port (py-faster-rcnn ``voc_eval.py``), verbatim."""
    if use_07_metric:
        ap = 0.
        for t in np.arange(0., 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.
    else:
        mrec = np.concatenate(([0.], rec, [1.]))
        mpre = np.concatenate(([0.], prec, [0.]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def devkit_eval(images, cls, ovthresh=0.5, use_07_metric=True, use_diff=False):
    """voc_eval of the devkit's Python port, one class, on raw 1-based coordinates (+1 areas).

    ``images``: list of dicts with ``gt`` (list of (box, label, difficult)) and ``dets`` (list of
    (box, label, score)). The only change: a stable sort, so that ties rank in insertion order.
    Returns AP, or None without positives.
    """
    class_recs, npos = {}, 0
    for k, img in enumerate(images):
        R = [g for g in img["gt"] if g[1] == cls]
        bbox = np.array([g[0] for g in R], dtype=float).reshape(-1, 4)
        difficult = np.array([g[2] for g in R]).astype(bool)
        if use_diff:
            difficult = np.zeros(len(R), dtype=bool)
        det = [False] * len(R)
        npos = npos + sum(~difficult)
        class_recs[k] = {"bbox": bbox, "difficult": difficult, "det": det}
    image_ids, confidence, BB = [], [], []
    for k, img in enumerate(images):
        for box, label, score in img["dets"]:
            if label == cls:
                image_ids.append(k)
                confidence.append(score)
                BB.append(box)
    confidence = np.array(confidence, dtype=float)
    BB = np.array(BB, dtype=float).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence, kind="stable")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1., 0.)
            ih = np.maximum(iymax - iymin + 1., 0.)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.) * (bb[3] - bb[1] + 1.)
                   + (BBGT[:, 2] - BBGT[:, 0] + 1.) * (BBGT[:, 3] - BBGT[:, 1] + 1.) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.
        else:
            fp[d] = 1.
    if npos == 0:
        return None
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return devkit_ap(rec, prec, use_07_metric)


def random_voc_set(seed, num_images=40, num_classes=3):
    """Raw VOC-style integer boxes (1-based, inclusive), with difficult flags, detections near
    the boxes, duplicates, coarse scores (many ties) and images without objects."""
    rng = np.random.RandomState(seed)
    images = []
    for _ in range(num_images):
        gt = []
        for _ in range(rng.randint(0, 5)):
            x1, y1 = rng.randint(1, 80, size=2)
            w, h = rng.randint(3, 40, size=2)
            gt.append(([x1, y1, x1 + w, y1 + h], int(rng.randint(num_classes)), bool(rng.rand() < 0.25)))
        dets = []
        for box, label, _ in gt:
            for _ in range(rng.randint(0, 3)):  # 0 to 2 detections per box: misses and duplicates
                jitter = rng.randint(-4, 5, size=4)
                lab = label if rng.rand() < 0.85 else int(rng.randint(num_classes))
                dets.append((list(np.array(box) + jitter), lab, float(rng.randint(0, 20) / 20)))
        for _ in range(rng.randint(0, 4)):  # background detections
            x1, y1 = rng.randint(1, 100, size=2)
            w, h = rng.randint(2, 50, size=2)
            dets.append(([x1, y1, x1 + w, y1 + h], int(rng.randint(num_classes)),
                         float(rng.randint(0, 20) / 20)))
        rng.shuffle(dets)
        images.append({"gt": gt, "dets": dets})
    return images


def _arrays(img, shift):
    d = np.array([b for b, _, _ in img["dets"]], dtype=float).reshape(-1, 4)
    g = np.array([b for b, _, _ in img["gt"]], dtype=float).reshape(-1, 4)
    if shift:  # the VOC reader's conversion to continuous 0-based corners
        d, g = d - [1, 1, 0, 0], g - [1, 1, 0, 0]
    return (d, [lab for _, lab, _ in img["dets"]], [s for _, _, s in img["dets"]],
            g, [lab for _, lab, _ in img["gt"]], [f for _, _, f in img["gt"]])


def _score(images, shift, plus_one, names=NAMES, **kwargs):
    m = VOCMetric(names, plus_one=plus_one, **kwargs)
    for k, img in enumerate(images):
        m.update(*_arrays(img, shift), image_id=k)
    return m.get()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("metric", ["voc07", "voc10"])
@pytest.mark.parametrize("use_difficult", [False, True])
def test_equals_the_devkit_on_random_sets(seed, metric, use_difficult) -> None:
    images = random_voc_set(seed)
    res = _score(images, shift=True, plus_one=False, metric=metric, use_difficult=use_difficult)
    want = {}
    for c, name in enumerate(NAMES):
        ap = devkit_eval(images, c, use_07_metric=metric == "voc07", use_diff=use_difficult)
        want[name] = ap
        if ap is None:
            assert math.isnan(res.ap[name])
        else:
            assert abs(res.ap[name] - ap) <= 1e-12, (name, res.ap[name], ap)
    valid = [v for v in want.values() if v is not None]
    assert abs(res.mAP - float(np.mean(valid))) <= 1e-12
    assert 0.05 < res.mAP < 1.0  # the random sets exercise real matching


@pytest.mark.parametrize("seed", range(4))
def test_plus_one_on_raw_equals_plain_on_shifted(seed) -> None:
    images = random_voc_set(100 + seed)
    raw = _score(images, shift=False, plus_one=True, metric="voc10")
    shifted = _score(images, shift=True, plus_one=False, metric="voc10")
    assert raw.ap == pytest.approx(shifted.ap, nan_ok=True, abs=0)
    for name in NAMES:
        np.testing.assert_array_equal(raw.precision[name], shifted.precision[name])
    # and the IoUs themselves, exactly
    b = np.array([[1, 1, 10, 10], [5, 3, 20, 8]], dtype=float)
    np.testing.assert_array_equal(box_iou(b, b[::-1], plus_one=True),
                                  box_iou(b - [1, 1, 0, 0], b[::-1] - [1, 1, 0, 0], plus_one=False))


# --------------------------------------------------------------------------- COCO
CATEGORY_IDS = (1, 7, 42)


@pytest.fixture()
def coco_gt(tmp_path):
    """A small instances json with non-contiguous category ids and boxes of every area range."""
    rng = np.random.RandomState(0)
    images, annotations = [], []
    for image_id in (3, 10, 11, 25, 40):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 400, "height": 300})
        for _ in range(rng.randint(2, 7)):
            side = float(rng.choice([12.0, 20.0, 60.0, 140.0]))  # small, small, medium, large
            w, h = side * rng.uniform(0.8, 1.2), side * rng.uniform(0.8, 1.2)
            x, y = rng.uniform(0, 400 - w), rng.uniform(0, 300 - h)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(rng.choice(CATEGORY_IDS)),
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    (tmp_path / "images").mkdir()
    return path


def _coco_dataset(path):
    from dataset.coco import COCODetection

    return COCODetection(path, path.parent / "images")


def _random_detections(ds, seed):
    rng = np.random.RandomState(seed)
    out = []
    for image_id, ann in zip(ds.ids, ds):
        boxes = ann.boxes.astype(np.float64)
        keep = rng.rand(len(boxes)) < 0.8
        dets = boxes[keep] + rng.normal(0, 3, size=(int(keep.sum()), 4))
        extra = rng.uniform(0, 250, size=(3, 2))
        dets = np.concatenate([dets, np.concatenate([extra, extra + 40], axis=1)])
        labels = np.concatenate([ann.labels[keep], rng.randint(0, 3, size=3)])
        out.append((image_id, dets, labels, rng.uniform(0.05, 1.0, size=len(dets))))
    return out


def _direct_cocoeval(path, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_coco_equals_a_direct_pycocotools_run(coco_gt, tmp_path, capsys) -> None:
    ds = _coco_dataset(coco_gt)
    metric = COCOMetric(coco_gt, ds.label_to_category_id)
    for image_id, boxes, labels, scores in _random_detections(ds, seed=1):
        metric.update(image_id, boxes, labels, scores)
    res = metric.get()
    assert capsys.readouterr().out == ""  # COCOeval's printing is captured ...
    assert "Average Precision" in res.summary  # ... and kept

    results = []  # the same detections, converted independently
    for image_id, boxes, labels, scores in _random_detections(ds, seed=1):
        for b, lab, s in zip(boxes, labels, scores):
            results.append({"image_id": int(image_id), "category_id": CATEGORY_IDS[lab],
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    want = _direct_cocoeval(coco_gt, results)
    np.testing.assert_array_equal(res.stats, want)
    assert 0.1 < res.AP < 1.0
    d = res.to_dict()
    assert list(d) == ["metric", "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"]
    assert d["metric"] == "coco" and d["AP50"] == want[1] and d["AR100"] == want[8]

    # the results JSON round trip
    out = tmp_path / "results.json"
    metric.save_results(out)
    loaded = json.loads(out.read_text())
    assert loaded == metric.results()
    np.testing.assert_array_equal(_direct_cocoeval(coco_gt, loaded), want)
    assert metric.get().stats == res.stats  # get() leaves the results untouched


def test_coco_ground_truth_as_detections_scores_one(coco_gt) -> None:
    ds = _coco_dataset(coco_gt)
    metric = COCOMetric(coco_gt, ds.category_ids)
    for image_id, ann in zip(ds.ids, ds):
        metric.update(image_id, ann.boxes, ann.labels, np.ones(len(ann.labels)))
    gt = json.loads(coco_gt.read_text())["annotations"]
    # [x, y, w, h] back exactly, up to the float32 of Annotation's corners
    got = np.array(sorted(r["bbox"] for r in metric.results()))
    np.testing.assert_allclose(got, np.array(sorted(a["bbox"] for a in gt)), rtol=0, atol=1e-4)
    res = metric.get()
    assert res.AP == pytest.approx(1.0) and res.AR100 == pytest.approx(1.0)


def test_coco_without_detections_scores_zero(coco_gt) -> None:
    metric = COCOMetric(coco_gt, CATEGORY_IDS)
    metric.update(3, np.zeros((0, 4)), [], [])
    metric.update(10, [[0, 0, 5, 5]], [-1], [0.9])  # padding only
    assert metric.results() == []
    res = metric.get()
    assert res.to_dict() == {"metric": "coco", **{k: 0.0 for k in (
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")}}


def test_coco_bad_input(coco_gt) -> None:
    metric = COCOMetric(coco_gt, CATEGORY_IDS)
    with pytest.raises(ValueError, match="image 999: not an image of the ground truth"):
        metric.update(999, [[0, 0, 1, 1]], [0], [0.5])
    with pytest.raises(ValueError, match=r"pred_labels\[0\] = 3 is not a label"):
        metric.update(3, [[0, 0, 1, 1]], [3], [0.5])
    with pytest.raises(ValueError, match=r"pred_scores\[1\] is NaN"):
        metric.update(3, [[0, 0, 1, 1]] * 2, [0, 0], [0.5, float("nan")])
    with pytest.raises(ValueError, match=r"category ids \[5\] are not in the ground truth"):
        COCOMetric(coco_gt, {0: 1, 1: 5})
