"""Files written whole or not at all, and JSON read with errors that name the file.

Every package of the project writes and reads its files through here:
checkpoints, detection and metric files, pictures, training state.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

__all__ = ["PathLike", "atomic_path", "read_json", "read_text", "write_json"]

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    The parent directory is created. The temporary file keeps ``path``'s
    suffix (so writers that pick a format from the name still work); it is
    flushed to disk before the rename, and removed if the body raises, so
    ``path`` holds either its old content or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp_path, _file_mode(path))
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _file_mode(path: Path) -> int:
    """The existing file's permissions, else 0666 less the process umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def write_json(path: PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")


def read_text(path: PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path``.

    Raises
    ------
    FileNotFoundError
        ``WHAT not found: PATH``.
    ValueError
        ``cannot read WHAT PATH: ...`` (a folder, no permission, not UTF-8).
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {what} {path}: {err}") from None


def read_json(path: PathLike, what: str = "file",
              damaged: Optional[Callable[[Path], str]] = None) -> Any:
    """The JSON document in ``path``.

    Parameters
    ----------
    what : str
        What the file is, for messages (``"checkpoint config"``).
    damaged : callable, optional
        ``damaged(path)`` adds advice to the message of a file that is not JSON.

    Raises
    ------
    FileNotFoundError
        ``WHAT not found: PATH``.
    ValueError
        An unreadable file, or one that is not JSON (the message names it).
    """
    path = Path(path)
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        advice = f"; {damaged(path)}" if damaged is not None else ""
        raise ValueError(f"{what} {path} is not valid JSON ({err}){advice}") from None
