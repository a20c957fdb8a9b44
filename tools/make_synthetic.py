"""Write a synthetic VOC-format dataset of coloured shapes (see :mod:`dataset.synthetic`).

Example::

    python -m tools.make_synthetic --out data/shapes --num-images 500 --seed 1

then train on ``VOCFolder("data/shapes", image_set="train")``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from dataset.synthetic import make_synthetic
from tools.cli import log_to_stderr


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (must be empty unless --force)")
    parser.add_argument("--num-images", type=int, default=200, help="number of images")
    parser.add_argument("--image-size", type=int, default=300, help="side of the square images")
    parser.add_argument("--max-objects", type=int, default=4, help="most objects in one image")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of images listed in ImageSets/Main/test.txt")
    parser.add_argument("--empty-fraction", type=float, default=0.1,
                        help="probability that an image has no objects")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--force", action=argparse.BooleanOptionalAction, default=False,
                        help="replace Annotations/, JPEGImages/, ImageSets/ of a non-empty --out")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    log_to_stderr(logging.INFO)
    try:
        summary = make_synthetic(args.out, num_images=args.num_images,
                                 image_size=args.image_size, max_objects=args.max_objects,
                                 test_fraction=args.test_fraction,
                                 empty_fraction=args.empty_fraction, seed=args.seed,
                                 force=args.force)
    except (ValueError, OSError) as err:
        print(f"make_synthetic: error: {err}", file=sys.stderr)
        return 1
    print(f"{args.out}: {summary['train']} train + {summary['test']} test images, "
          f"{summary['objects']} objects, {summary['empty']} without objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
