"""Start distributed training: MXNet's ``mxnet.tools.launch``, usable on Python >= 3.9.

    python -m tools.launch -n 2 --launcher local python train.py --kv-store dist_sync ...

takes exactly the arguments of ``python -m mxnet.tools.launch`` (``-n``
workers, ``-s`` servers, ``--launcher local|ssh|mpi|sge|yarn``, ``-H``
hostfile, then the command every process runs). MXNet 1.9.1's tracker
(``dmlc_tracker``) calls ``threading.Thread.isAlive``, which Python 3.9
removed, so the original command fails before starting any worker; this
module restores that one alias and runs the original launcher unchanged.
"""
from __future__ import annotations

import runpy
import sys
import threading
from typing import Optional, Sequence

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run ``mxnet.tools.launch`` with ``argv`` (default ``sys.argv[1:]``)."""
    if not hasattr(threading.Thread, "isAlive"):
        threading.Thread.isAlive = threading.Thread.is_alive  # type: ignore[attr-defined]
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["mxnet.tools.launch", *args]
    runpy.run_module("mxnet.tools.launch", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
