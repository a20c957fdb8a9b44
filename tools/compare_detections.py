"""Do two detection files agree? The check behind "detects exactly as at home".

    python -m tools.compare_detections REFERENCE.json OURS.json [--thresh 0.3]
        [--score-tol 2e-3] [--min-iou 0.97] [--verbose]

Both files are in ``demo.py --save-json``'s format. REFERENCE.json comes from
the model's home framework (mmdetection's or GluonCV's own inference, OpenCV
dnn for a Caffe model) on the same image files, written in that format; OURS.json
from ``demo.py --save-json`` on the converted checkpoint, run with
``--thresh`` a little below the compared threshold (``0.298`` for 0.3 and the
default tolerance) so that a detection just above it in one file finds its
partner just below it in the other.

Every detection scoring at least ``--thresh`` in either file must have a
partner of the same class name in the other, with IoU >= ``--min-iou`` and a
score within ``--score-tol`` (:func:`evaluate.parity.match_detections`). Prints
one line per image with ``--verbose`` and a summary; exit status 0 when the
files agree, 2 when they differ, 1 for a file that cannot be read.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from tools.cli import ArgumentParser, UsageError, number, print_error

PROG = "compare_detections"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("reference", help="the home framework's detections (demo.py --save-json format)")
    p.add_argument("ours", help="demo.py --save-json of the converted model on the same images")
    p.add_argument("--thresh", type=number(float, 0.0, 1.0), default=0.3,
                   help="detections scoring at least this must match (default: 0.3)")
    p.add_argument("--score-tol", type=number(float, 0.0), default=2e-3,
                   help="largest score difference of a pair (default: 2e-3)")
    p.add_argument("--min-iou", type=number(float, 0.0, 1.0), default=0.97,
                   help="smallest IoU of a pair (default: 0.97)")
    p.add_argument("--verbose", action="store_true", help="a line per image")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Compare; returns 0 (the same), 2 (different) or 1 (an error)."""
    from evaluate.parity import compare_detection_files

    try:
        args = build_parser().parse_args(argv)
        result = compare_detection_files(args.reference, args.ours, args.thresh, args.score_tol, args.min_iou)
    except (UsageError, ValueError, FileNotFoundError, OSError) as err:
        print_error(PROG, err)
        return 1
    for image, parity in result.images:
        if args.verbose or not parity.ok:
            print(f"{image}: {parity.summary()}")
    print(result.summary(args.thresh))
    return 0 if result.ok else 2


if __name__ == "__main__":
    sys.exit(main())
