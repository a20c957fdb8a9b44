"""Error messages of the libraries we call, made into one line a user can read."""
from __future__ import annotations

__all__ = ["mxnet_error_line"]


def mxnet_error_line(err: BaseException) -> str:
    """The one useful line of an ``MXNetError`` (its text starts with a C++ traceback)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("MXNetError:"):
            return line[len("MXNetError:"):].strip()
    return lines[-1] if lines else type(err).__name__
