"""Pieces shared by the command-line scripts (``demo.py``, ``train.py``, ``tools/*``).

Every script reports a bad command line or bad input as one line on stderr,
``PROG: error: MESSAGE``, and exits with status 1 (never a traceback).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TextIO

__all__ = ["ArgumentParser", "ProgressBar", "UsageError", "log_to_stderr", "non_negative_int", "parse_class_names",
           "positive", "print_error", "serial_cpu_copies"]


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 1."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors raise :class:`UsageError` instead of printing the usage
    and exiting with status 2, so that the script reports them its one-line way."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def print_error(prog: str, message: object) -> None:
    """Write ``PROG: error: MESSAGE`` on stderr, folded onto one line."""
    text = " ".join(str(message).split())
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


def log_to_stderr(level: "int | str" = logging.WARNING) -> None:
    """The scripts' log: ``LEVEL logger: message`` lines on stderr from ``level`` up
    (``train.py`` logs its progress to stdout its own way)."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def parse_class_names(value: Optional[str]) -> Optional[list[str]]:
    """``--class-names``: a comma-separated list, or a file with one name per line.

    An existing file is read; any other value holding a comma is a list (80
    COCO names make a value too long to be a file name); a value without a
    comma is one class name, unless it looks like a path (a ``/`` or a
    ``.txt`` / ``.names`` suffix), which is then a missing file.

    Raises
    ------
    UsageError
        Unreadable, missing or empty file, or an empty name in the list.
    """
    if value is None:
        return None
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # e.g. ENAMETOOLONG: no file has that name
        is_file = False
    if is_file:
        from dataset.classes import read_names_file

        try:
            return list(read_names_file(path))
        except (FileNotFoundError, ValueError) as err:
            raise UsageError(str(err)) from None
    if "," not in value and ("/" in value or os.sep in value or path.suffix in (".txt", ".names")):
        raise UsageError(f"class names file not found: {value} (give an existing file with one name "
                         f"per line, or a comma-separated list)")
    names = [s.strip() for s in value.split(",")]
    if any(not n for n in names):
        raise UsageError(f"--class-names has an empty name: {value!r} (give a comma-separated "
                         f"list or an existing file)")
    return names


def number(kind: Callable[[str], Any], low: Optional[float] = None, high: Optional[float] = None,
           strict: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: a finite ``kind(text)`` (``int`` or ``float``) in a range.

    ``low`` is a lower bound (exclusive when ``strict``), ``high`` an inclusive
    upper bound; None means unbounded.
    """
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        if low is not None and (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return value
    return parse


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind(text)`` that must be > 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def serial_cpu_copies() -> None:
    """Make MXNet copy CPU arrays in one thread (``MXNET_CPU_PARALLEL_SIZE``), unless the
    environment says otherwise; call it before the first large copy (loading a checkpoint).

    MXNet copies arrays of more than 200,000 values with an OpenMP loop, on
    the engine thread that does the copy. That thread's OpenMP team stays
    alive beside the one that runs the network, and with more OpenMP threads
    than cores, OpenMP lets idle threads sleep almost at once: every later
    operator then waits for its threads to wake. Measured on 2 cores, one
    image at a time: OpenCV's face detector 37 ms per forward with parallel
    copies, 16 ms without; the synthetic MobileNet 14 ms and 4 ms. Copies are
    a small part of any step, so they lose nothing that counts.
    """
    os.environ.setdefault("MXNET_CPU_PARALLEL_SIZE", "2000000000")


class ProgressBar:
    """One line on a stream, redrawn in place: ``frames 120/300 [=====>     ] 40% 24.1 frames/s ETA 0:07``.

    Without a total (a camera), the count and the rate only. On a stream that
    is not a terminal, a plain line every ``every`` seconds instead of
    redrawing, so logs stay readable.

    Parameters
    ----------
    total : int, optional
        The number of items expected.
    unit : str
        What is counted (``"frames"``).
    stream : file, optional
        Default ``sys.stderr``.
    every : float
        Seconds between redraws.
    """

    def __init__(self, total: Optional[int], unit: str = "frames", stream: Optional[TextIO] = None,
                 every: float = 0.2, width: int = 24) -> None:
        self.total, self.unit, self.every, self.width = total, unit, every, width
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.perf_counter()
        self._last = -float("inf")
        if not self._tty:
            self.every = max(self.every, 5.0)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; redraw when ``every`` seconds have passed."""
        self.count += n
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw(time.perf_counter(), final=True)

    def text(self, now: Optional[float] = None) -> str:
        """The line as it would be drawn now."""
        elapsed = (time.perf_counter() if now is None else now) - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.unit} {self.count}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            done = min(1.0, self.count / self.total)
            filled = int(done * self.width)
            bar = "=" * filled + (">" if filled < self.width else "") + " " * (self.width - filled - 1)
            parts.append(f"[{bar[:self.width]}] {100 * done:3.0f}%")
        parts.append(f"{rate:.1f} {self.unit}/s")
        if self.total and rate > 0:
            left = max(0, self.total - self.count) / rate
            parts.append(f"ETA {int(left // 3600)}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}"
                         if left >= 3600 else f"ETA {int(left // 60)}:{int(left % 60):02d}")
        return " ".join(parts)

    def _draw(self, now: float, final: bool = False) -> None:
        line = self.text(now)
        if self._tty:
            self.stream.write("\r" + line + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
