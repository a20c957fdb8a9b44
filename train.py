"""Train an SSD detector.

Not available yet: this script is part of the project's layout and is filled
in by the data and training work. It exits with status 2 and says so, rather than
pretending to run.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="train.py", description="Train an SSD detector (not available yet).")
    parser.parse_args(argv)
    print("train.py: error: not available yet in this version (see README, 'Layout')", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
