"""Properties of Caffe SSD's augmentation functions (dataset/augment.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset import augment
from symbol.boxes import box_iou

FAST = settings(max_examples=25, deadline=None)
NO_DISTORT = dict(brightness_prob=0, contrast_prob=0, saturation_prob=0, hue_prob=0)


@st.composite
def samples(draw, min_n: int = 0, max_n: int = 6, dyadic: bool = False, coded: bool = False):
    """(image, boxes, labels, seed): a random uint8 image with boxes inside it.

    With ``dyadic`` every coordinate is a multiple of 1/8 (exact in float32).
    With ``coded`` pixel ``(row, col)`` is ``(row, col, 255)``: unique, never the
    fill colour, so a crop or a canvas tells where the content came from.
    """
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    if coded:
        rows, cols = np.mgrid[:h, :w]
        image = np.stack([rows, cols, np.full_like(rows, 255)], axis=-1).astype(np.uint8)
    else:
        image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    n = draw(st.integers(min_n, max_n))
    rows = []
    for _ in range(n):
        if dyadic:
            xs = sorted(draw(st.integers(0, 8 * w)) / 8 for _ in range(2))
            ys = sorted(draw(st.integers(0, 8 * h)) / 8 for _ in range(2))
        else:
            xs = sorted(draw(st.floats(0, w, width=32)) for _ in range(2))
            ys = sorted(draw(st.floats(0, h, width=32)) for _ in range(2))
        rows.append((xs[0], ys[0], xs[1], ys[1]))
    boxes = np.array(rows, dtype=np.float32).reshape(-1, 4)
    labels = np.arange(n, dtype=np.int64) + 1
    return image, boxes, labels, seed


def assert_inside(boxes: np.ndarray, width: int, height: int) -> None:
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert np.all(boxes >= 0)
    assert np.all(boxes[:, [0, 2]] <= width) and np.all(boxes[:, [1, 3]] <= height)
    assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])


def run_all(image, boxes, labels, seed):
    """Every op on copies of the inputs with one seed; returns their outputs."""
    rng = np.random.default_rng(seed)
    return [
        augment.photometric_distort(image, rng),
        augment.expand(image, boxes, rng, p=1.0),
        augment.random_crop(image, boxes, labels, rng),
        augment.resize(image, boxes, 17, rng),
        augment.hflip(image, boxes, rng, p=1.0),
        augment.train_transform(image, boxes, labels, 24, rng),
        augment.val_transform(image, boxes, labels, 24),
    ]


def flat(outputs):
    for out in outputs:
        yield from (out if isinstance(out, tuple) else (out,))


# --------------------------------------------------------------------------- every op

@FAST
@given(samples())
def test_boxes_stay_inside_after_every_op(sample):
    image, boxes, labels, seed = sample
    rng = np.random.default_rng(seed)
    img, b = augment.expand(image, boxes, rng, p=1.0)
    assert_inside(b, img.shape[1], img.shape[0])
    img, b, lab = augment.random_crop(img, b, labels, rng)
    assert_inside(b, img.shape[1], img.shape[0])
    assert len(lab) == len(b)
    img, b = augment.resize(img, b, 20, rng)
    assert img.shape == (20, 20, 3)
    assert_inside(b, 20, 20)
    img, b = augment.hflip(img, b, p=1.0)
    assert_inside(b, 20, 20)
    img, b, lab = augment.train_transform(image, boxes, labels, 32, rng)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert_inside(b, 1, 1)
    assert len(lab) == len(b)


@FAST
@given(samples())
def test_deterministic_for_a_seed(sample):
    first = list(flat(run_all(*sample)))
    second = list(flat(run_all(*sample)))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@FAST
@given(samples())
def test_inputs_not_mutated(sample):
    image, boxes, labels, seed = sample
    copies = image.copy(), boxes.copy(), labels.copy()
    outputs = list(flat(run_all(image, boxes, labels, seed)))
    np.testing.assert_array_equal(image, copies[0])
    np.testing.assert_array_equal(boxes, copies[1])
    np.testing.assert_array_equal(labels, copies[2])
    for out in outputs:  # new arrays, never views of the inputs
        for arr in (image, boxes, labels):
            assert not np.shares_memory(out, arr)


@pytest.mark.parametrize("seed", range(5))
def test_empty_boxes_work_for_every_op(seed):
    image = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    boxes, labels = np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
    outputs = run_all(image, boxes, labels, seed)
    for out in outputs[1:]:
        assert out[1].shape == (0, 4)
    for out in outputs[2], outputs[5], outputs[6]:
        assert out[2].shape == (0,)
    # a plain list of no boxes is accepted too
    _, b, lab = augment.val_transform(image, [], [], 10)
    assert b.shape == (0, 4) and lab.shape == (0,)


def test_malformed_boxes_raise_naming_the_index():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="box 1"):
        augment.hflip(image, [[0, 0, 5, 5], [6, 0, 5, 5]], p=1.0)
    with pytest.raises(ValueError, match="shape"):
        augment.resize(image, [[0, 0, 5]], 8)
    with pytest.raises(ValueError, match="labels"):
        augment.random_crop(image, [[0, 0, 5, 5]], [1, 2], np.random.default_rng(0))
    with pytest.raises(ValueError, match="image"):
        augment.resize(np.zeros((10, 10), np.uint8), [], 8)


# --------------------------------------------------------------------------- photometric

@FAST
@given(samples(max_n=0), st.integers(0, 2 ** 32 - 1))
def test_photometric_in_range_and_uint8(sample, seed):
    image = sample[0]
    out = augment.photometric_distort(image, np.random.default_rng(seed), brightness_prob=1,
                                      contrast_prob=1, saturation_prob=1, hue_prob=1)
    assert out.dtype == np.uint8 and out.shape == image.shape
    # float input far outside 0..255 is clipped
    wild = image.astype(np.float32) * 4 - 300
    out = augment.photometric_distort(wild, np.random.default_rng(seed))
    assert out.dtype == np.uint8


@FAST
@given(samples(max_n=0), st.integers(0, 2 ** 32 - 1))
def test_photometric_zero_probability_is_identity(sample, seed):
    image = sample[0]
    out = augment.photometric_distort(image, np.random.default_rng(seed), **NO_DISTORT)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("seed", range(4))
def test_photometric_single_ops(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(60, 196, (16, 16, 3), dtype=np.uint8)  # no clipping at +-32 or x1.5
    img = image.astype(np.int64)
    only = dict(NO_DISTORT)
    # brightness: one shift for every pixel (up to rounding), within +-32
    out = augment.photometric_distort(image, rng, **{**only, "brightness_prob": 1})
    diff = out.astype(np.int64) - img
    assert diff.max() - diff.min() <= 1 and np.abs(diff).max() <= 32
    # contrast: one factor for every pixel, in [0.5, 1.5]
    out = augment.photometric_distort(image, rng, **{**only, "contrast_prob": 1,
                                                     "contrast_range": (0.8, 1.2)})
    ratio = out / img
    assert ratio.min() >= 0.8 - 0.01 and ratio.max() <= 1.2 + 0.01
    assert ratio.max() - ratio.min() <= 2 / 60
    # a zero hue shift and a unit saturation change nothing beyond rounding
    out = augment.photometric_distort(image, rng, **{**only, "hue_prob": 1, "hue_delta": 0,
                                                     "saturation_prob": 1,
                                                     "saturation_range": (1, 1)})
    assert np.abs(out.astype(np.int64) - img).max() <= 1
    # a grey image has no hue or saturation to change
    grey = np.full((4, 4, 3), 100, np.uint8)
    out = augment.photometric_distort(grey, rng, **{**only, "hue_prob": 1, "saturation_prob": 1})
    np.testing.assert_array_equal(out, grey)


# --------------------------------------------------------------------------- expand

@FAST
@given(samples(dyadic=True, coded=True), st.floats(1.0, 4.0))
def test_expand_keeps_boxes_on_the_same_pixels(sample, max_ratio):
    image, boxes, _, seed = sample
    canvas, out = augment.expand(image, boxes, np.random.default_rng(seed), max_ratio=max_ratio,
                                 p=1.0)
    h, w = image.shape[:2]
    assert h <= canvas.shape[0] <= int(h * max_ratio) + 1
    assert w <= canvas.shape[1] <= int(w * max_ratio) + 1
    shift = out - boxes  # one integer offset for every box
    if len(boxes):
        dx, dy = shift[0, 0], shift[0, 1]
        np.testing.assert_array_equal(shift, np.tile([dx, dy, dx, dy], (len(boxes), 1)))
        assert dx == int(dx) and dy == int(dy)
    else:
        dx = dy = None
    # the original image lies at the boxes' offset on the canvas, the rest is the fill
    rows, cols = np.nonzero(canvas[..., 2] == 255)
    top, left = rows.min(), cols.min()
    np.testing.assert_array_equal(canvas[top:top + h, left:left + w], image)
    assert np.sum(canvas[..., 2] == 255) == h * w
    if dx is not None:
        assert (left, top) == (dx, dy)
    for (x0, y0, x1, y1), (a0, b0, a1, b1) in zip(boxes.astype(int), out.astype(int)):
        np.testing.assert_array_equal(canvas[b0:b1, a0:a1], image[y0:y1, x0:x1])


def test_expand_fills_with_the_mean_and_p0_is_identity():
    image = np.zeros((10, 12, 3), np.uint8)
    boxes = np.array([[1, 2, 5, 6]], np.float32)
    rng = np.random.default_rng(3)
    canvas, out = augment.expand(image, boxes, rng, max_ratio=3.0, p=1.0)
    assert canvas.shape[0] > 10
    filled = canvas.reshape(-1, 3)
    colours = {tuple(c) for c in filled.tolist()}
    assert colours == {(0, 0, 0), augment.MEAN_RGB}
    img, b = augment.expand(image, boxes, rng, p=0.0)
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(b, boxes)


# --------------------------------------------------------------------------- crop

@settings(max_examples=40, deadline=None)
@given(samples(min_n=1), st.sampled_from(augment.CAFFE_SAMPLERS[1:]))
def test_accepted_crop_meets_the_iou_constraint(sample, sampler):
    image, boxes, _, seed = sample
    h, w = image.shape[:2]
    crop = augment.sample_crop(boxes, w, h, sampler, np.random.default_rng(seed))
    if crop is None:
        return
    x0, y0, x1, y1 = crop
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    iou = box_iou(np.array([crop], np.float64), boxes.astype(np.float64))[0]
    lo = -np.inf if sampler.min_iou is None else sampler.min_iou
    hi = np.inf if sampler.max_iou is None else sampler.max_iou
    assert np.any((iou >= lo) & (iou <= hi))


@pytest.mark.parametrize("sampler", augment.CAFFE_SAMPLERS[1:])
def test_every_sampler_finds_valid_crops_around_large_boxes(sampler):
    # the random-box property test above rarely reaches IoU 0.9; large boxes do
    rng = np.random.default_rng(11)
    found = 0
    for _ in range(60):
        w, h = (int(v) for v in rng.integers(50, 400, 2))
        sw, sh = rng.uniform(0.85, 1.0, 2)
        x0, y0 = rng.uniform(0, 1 - sw) * w, rng.uniform(0, 1 - sh) * h
        boxes = np.array([[x0, y0, x0 + sw * w, y0 + sh * h], [0, 0, 0.1 * w, 0.1 * h]],
                         np.float32)
        crop = augment.sample_crop(boxes, w, h, sampler, rng)
        if crop is None:
            continue
        found += 1
        iou = box_iou(np.array([crop], np.float64), boxes.astype(np.float64))[0]
        lo = -np.inf if sampler.min_iou is None else sampler.min_iou
        hi = np.inf if sampler.max_iou is None else sampler.max_iou
        assert np.any((iou >= lo) & (iou <= hi))
    assert found >= 10


def test_crop_sampler_shape_and_success():
    # a box filling a large image: the 0.9 sampler succeeds with this seed
    boxes = np.array([[0, 0, 500, 400]], np.float32)
    sampler = augment.CAFFE_SAMPLERS[5]
    assert sampler.min_iou == 0.9
    crop = augment.sample_crop(boxes, 500, 400, sampler, np.random.default_rng(0))
    assert crop is not None
    iou = box_iou(np.array([crop], np.float64), boxes.astype(np.float64))[0, 0]
    assert iou >= 0.9
    # the whole-image sampler gives the whole image
    assert augment.sample_crop(boxes, 500, 400, augment.CAFFE_SAMPLERS[0],
                               np.random.default_rng(0)) == (0, 0, 500, 400)
    # random crops: scale in [0.3, 1], image-relative aspect in [0.5, 2]
    rng = np.random.default_rng(1)
    free = augment.CAFFE_SAMPLERS[6]
    for _ in range(200):
        x0, y0, x1, y1 = augment.sample_crop(np.zeros((0, 4)), 500, 400, free, rng)
        fw, fh = (x1 - x0) / 500, (y1 - y0) / 400
        assert 0.3 ** 2 - 0.01 <= fw * fh <= 1
        assert 0.5 - 0.02 <= fw / fh <= 2 + 0.02
    # an unreachable constraint gives None
    tiny = np.array([[0, 0, 1, 1]], np.float32)
    assert augment.sample_crop(tiny, 500, 400, sampler, np.random.default_rng(0)) is None


def test_caffe_samplers():
    s = augment.CAFFE_SAMPLERS
    assert len(s) == 7
    assert s[0] == augment.Sampler()
    assert [x.min_iou for x in s] == [None, 0.1, 0.3, 0.5, 0.7, 0.9, None]
    assert [x.max_iou for x in s] == [None] * 6 + [1.0]
    assert all((x.min_scale, x.max_scale, x.min_aspect_ratio, x.max_aspect_ratio)
               == (0.3, 1.0, 0.5, 2.0) for x in s[1:])
    with pytest.raises(ValueError):
        augment.Sampler(min_scale=0)


@FAST
@given(samples(min_n=1, dyadic=True, coded=True))
def test_kept_boxes_had_centres_in_the_crop(sample):
    image, boxes, labels, seed = sample
    # label i + 1 is box i; the coded image tells the crop's offset
    crop, out, lab = augment.random_crop(image, boxes, labels, np.random.default_rng(seed))
    top, left = int(crop[0, 0, 0]), int(crop[0, 0, 1])
    np.testing.assert_array_equal(crop, image[top:top + crop.shape[0], left:left + crop.shape[1]])
    ch, cw = crop.shape[:2]
    src = boxes[lab - 1]
    cx, cy = (src[:, 0] + src[:, 2]) / 2, (src[:, 1] + src[:, 3]) / 2
    assert np.all((cx >= left) & (cx <= left + cw) & (cy >= top) & (cy <= top + ch))
    # kept boxes are the originals clipped to the crop, shifted
    lo = np.array([left, top, left, top], np.float32)
    hi = np.array([left + cw, top + ch, left + cw, top + ch], np.float32)
    np.testing.assert_array_equal(out, np.clip(src, lo, hi) - lo)
    # dropped boxes had their centre outside the crop (or clipped to nothing)
    dropped = np.setdiff1d(labels, lab) - 1
    d = boxes[dropped]
    dcx, dcy = (d[:, 0] + d[:, 2]) / 2, (d[:, 1] + d[:, 3]) / 2
    outside = (dcx < left) | (dcx > left + cw) | (dcy < top) | (dcy > top + ch)
    clipped = np.clip(d, lo, hi)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    assert np.all(outside | empty)


# --------------------------------------------------------------------------- resize, flip

@FAST
@given(samples(dyadic=True))
def test_hflip_twice_is_identity(sample):
    image, boxes, _, seed = sample
    img, b = augment.hflip(*augment.hflip(image, boxes, p=1.0), p=1.0)
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(b, boxes)
    once, fb = augment.hflip(image, boxes, p=1.0)
    np.testing.assert_array_equal(once, image[:, ::-1])
    w = image.shape[1]
    np.testing.assert_array_equal(fb[:, [0, 2]], w - boxes[:, [2, 0]])


@FAST
@given(samples())
def test_hflip_twice_is_identity_up_to_float32_rounding(sample):
    image, boxes, _, _ = sample
    img, b = augment.hflip(*augment.hflip(image, boxes, p=1.0), p=1.0)
    np.testing.assert_array_equal(img, image)
    np.testing.assert_allclose(b, boxes, atol=1e-5)


def test_hflip_probability():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    boxes = np.array([[0, 0, 1, 2]], np.float32)
    img, b = augment.hflip(image, boxes, np.random.default_rng(0), p=0.0)
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(b, boxes)
    flips = [not np.array_equal(augment.hflip(image, boxes, rng, p=0.5)[0], image)
             for rng in map(np.random.default_rng, range(200))]
    assert 60 < sum(flips) < 140
    with pytest.raises(ValueError, match="rng"):
        augment.hflip(image, boxes, p=0.5)


def test_resize_scales_boxes_and_draws_interpolations():
    image = np.random.default_rng(0).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    boxes = np.array([[4, 2, 20, 10], [0, 0, 40, 20]], np.float32)
    img, b = augment.resize(image, boxes, 10)
    assert img.shape == (10, 10, 3) and img.dtype == np.uint8
    np.testing.assert_allclose(b, [[1, 1, 5, 5], [0, 0, 10, 10]])
    outs = {augment.resize(image, boxes, 13, np.random.default_rng(s))[0].tobytes()
            for s in range(40)}
    assert len(outs) >= 4  # several interpolations get drawn


# --------------------------------------------------------------------------- pipelines

@FAST
@given(samples())
def test_val_transform_normalizes_by_the_image_size(sample):
    image, boxes, labels, _ = sample
    h, w = image.shape[:2]
    img, b, lab = augment.val_transform(image, boxes, labels, 16)
    assert img.shape == (16, 16, 3)
    np.testing.assert_array_equal(b, boxes / np.array([w, h, w, h], np.float32))
    np.testing.assert_array_equal(lab, labels)


def test_train_transform_on_a_real_sized_image():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
    boxes = np.array([[48, 240, 195, 371], [8, 12, 352, 498 - 200]], np.float32)
    labels = np.array([11, 14])
    kept = 0
    for _ in range(20):
        img, b, lab = augment.train_transform(image, boxes, labels, 300, rng)
        assert img.shape == (300, 300, 3) and img.dtype == np.uint8
        assert_inside(b, 1, 1)
        assert set(lab.tolist()) <= {11, 14}
        kept += len(b)
    assert kept > 0


def test_train_transform_without_expansion_is_the_rest_of_the_pipeline():
    """``expand_image=False`` runs distort, crop, resize and flip on the same random stream."""
    image = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 70, 90], [80, 5, 150, 60]], np.float32)
    labels = np.array([0, 1])
    for seed in range(10):
        img, b, lab = augment.train_transform(image, boxes, labels, 64, np.random.default_rng(seed),
                                              expand_image=False)
        rng = np.random.default_rng(seed)
        ref = augment.photometric_distort(image, rng)
        ref, rb, rlab = augment.random_crop(ref, boxes, labels, rng)
        ref, rb = augment.resize(ref, rb, 64, rng)
        ref, rb = augment.hflip(ref, rb, rng)
        np.testing.assert_array_equal(img, ref)
        np.testing.assert_array_equal(b, rb / 64)
        np.testing.assert_array_equal(lab, rlab)


def test_photometric_transform_keeps_every_box_and_its_shape():
    """Colour, warp and flip only: every box survives, scaled to the output and possibly mirrored."""
    image = np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 70, 90], [80, 5, 150, 60]], np.float32)
    expected = boxes / np.array([160, 120, 160, 120], np.float32)
    mirrored = np.stack([1 - expected[:, 2], expected[:, 1], 1 - expected[:, 0], expected[:, 3]], axis=1)
    flips = 0
    for seed in range(12):
        img, b, lab = augment.photometric_transform(image, boxes, np.array([0, 2]), 64,
                                                    np.random.default_rng(seed))
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(lab, [0, 2])
        flipped = not np.allclose(b, expected, atol=1e-6)
        np.testing.assert_allclose(b, mirrored if flipped else expected, atol=1e-6)
        flips += flipped
    assert 0 < flips < 12
