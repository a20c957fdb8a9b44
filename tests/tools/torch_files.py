"""Test-side writer of PyTorch checkpoints, in the two formats of ``torch.save``, without PyTorch.

Tests of the ``.pth`` reader and of converters build checkpoints here with real
parameter names and shapes: :func:`save_pth` writes a dict of NumPy arrays,
``OrderedDict`` state dicts and plain metadata as PyTorch 2.x does.
``tests/tools/test_torch_pickle.py`` proves the output against files written
by real PyTorch: the zip format byte for byte, the legacy format opcode for
opcode.

Tensors become ``torch._utils._rebuild_tensor_v2`` calls over storages;
NumPy views of one array share its storage (offset and strides in elements),
as views of one tensor do in PyTorch. :class:`TensorView` writes a tensor with
any offset, size and stride (unchecked: also the malformed ones a reader must
refuse), :class:`BFloat16` a bfloat16 tensor from its bit patterns and
:class:`Call` any other global (an ``nn.Parameter``, an mmengine object, a
payload).

This module is loaded by file path (test modules are not importable by name)::

    spec = importlib.util.spec_from_file_location("torch_files", TESTS / "tools" / "torch_files.py")

Notes
-----
The pickles are written by ``pickle._Pickler`` (the pure-Python pickler, whose
output for protocol 2 is the C pickler's) so that PyTorch's globals can be
written as GLOBAL opcodes without importing ``torch``.
"""
from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

__all__ = ["BFloat16", "Call", "MAGIC_NUMBER", "PROTOCOL_VERSION", "STORAGE_TYPES", "TensorView", "save_pth"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
#: PyTorch's storage class of each NumPy dtype.
STORAGE_TYPES: dict[np.dtype, str] = {np.dtype(k): v for k, v in {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
    "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
    "uint8": "ByteStorage", "bool": "BoolStorage", "complex64": "ComplexFloatStorage",
    "complex128": "ComplexDoubleStorage"}.items()}
#: Records of torch 2.x's zip archive besides data.pkl, byteorder and the storages.
_FORMAT_VERSION, _STORAGE_ALIGNMENT, _VERSION = b"1", 64, b"3\n"
_LEGACY_KEY_BASE = 94_000_000_000_000


class BFloat16:
    """A bfloat16 tensor given by its bit patterns (``uint16``, the high half of a float32)."""

    def __init__(self, bits: np.ndarray) -> None:
        self.bits = bits


class TensorView:
    """A tensor over the storage of ``base`` (its own root array) with explicit layout.

    Nothing is checked: ``offset``, ``size`` and ``stride`` (in elements) may
    reach past the storage, and ``storage_type`` may name any storage class.
    """

    def __init__(self, base: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                 storage_type: Optional[str] = None, metadata: Optional[dict] = None) -> None:
        self.base, self.offset, self.size, self.stride = base, offset, size, stride
        self.storage_type, self.metadata = storage_type, metadata


class Call:
    """An object pickled as a call of the global ``module.name`` (never imported here).

    ``Call("torch._utils", "_rebuild_parameter", (array, True, OrderedDict()))``
    is an ``nn.Parameter``; ``Call("mmengine.logging.history_buffer",
    "HistoryBuffer", (), state)`` an mmengine object; ``Call("os", "system",
    ("touch x",))`` a payload.
    """

    def __init__(self, module: str, name: str, args: tuple = (), state: Any = None) -> None:
        self.module, self.name, self.args, self.state = module, name, args, state


class _Global:
    """A global (of PyTorch, or any other module), written as pickle's GLOBAL opcode, never imported."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce__(self) -> str:
        return self.name  # a string: the pickler calls save_global, which writes it

    def __call__(self, *args: Any) -> Any:  # pickle's save_reduce wants a callable
        raise TypeError(f"{self.module}.{self.name} is only written, never called")


_GLOBALS: dict[tuple[str, str], _Global] = {}


def _global(module: str, name: str) -> _Global:
    # One object per name, so that pickle's memo writes later uses as BINGET, as torch.save does.
    return _GLOBALS.setdefault((module, name), _Global(module, name))


class _Storage:
    """One storage to write: its key and persistent-id fields and its little-endian bytes."""

    def __init__(self, key: str, type_name: str, numel: int, data: bytes) -> None:
        self.key, self.type, self.numel, self.data = key, _global("torch", type_name), numel, data


class _Pickler(pickle._Pickler):
    """Protocol 2 pickler writing arrays as PyTorch tensors over shared storages."""

    _TAG, _CPU = "storage", "cpu"

    def __init__(self, file: io.BytesIO, legacy: bool, byteorder: str) -> None:
        super().__init__(file, protocol=2)
        self.legacy, self.byteorder = legacy, byteorder
        self.storages: dict[int, _Storage] = {}
        self._roots: list[Any] = []  # keeps every root alive, so that ids stay unique

    def persistent_id(self, obj: Any) -> Optional[tuple]:
        if not isinstance(obj, _Storage):
            return None
        if self.legacy:  # the key is made anew each time (str(storage._cdata)), so never a memo hit
            return self._TAG, obj.type, str(int(obj.key)), self._CPU, obj.numel, None
        return self._TAG, obj.type, obj.key, self._CPU, obj.numel  # a new tuple each time, as torch

    def save_global(self, obj: Any, name: Optional[str] = None) -> None:
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
            self.memoize(obj)
        else:
            super().save_global(obj, name)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Call):
            function = _global(obj.module, obj.name)
            return (function, tuple(obj.args)) if obj.state is None else (function, tuple(obj.args), obj.state)
        metadata = None
        if isinstance(obj, TensorView):
            metadata = obj.metadata
            storage = self._storage(obj.base, obj.storage_type)
            layout = (obj.offset, obj.size, obj.stride)
        elif isinstance(obj, BFloat16):
            bits = np.array(obj.bits, np.uint16, order="C")
            storage, layout = self._storage(bits, "BFloat16Storage"), (0, bits.shape, _c_strides(bits.shape))
        elif isinstance(obj, np.ndarray):
            storage, layout = self._tensor(obj)
        else:
            return NotImplemented
        offset, size, stride = layout
        args = (storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride),
                False, collections.OrderedDict())
        return _global("torch._utils", "_rebuild_tensor_v2"), args + ((metadata,) if metadata is not None else ())

    def _tensor(self, array: np.ndarray) -> tuple[_Storage, tuple]:
        """The storage of ``array`` (its root's, when it is a view) and its layout in elements."""
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if array.dtype not in STORAGE_TYPES:
            raise ValueError(f"no PyTorch storage for dtype {array.dtype}")
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        item, strides = array.itemsize, array.strides
        start = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        end = start + sum((n - 1) * s for n, s in zip(array.shape, strides)) + item
        if not (array.size and root.dtype == array.dtype and root.flags.c_contiguous and 0 <= start
                and end <= root.nbytes and start % item == 0 and all(s >= 0 and s % item == 0 for s in strides)):
            root = array = np.ascontiguousarray(array)  # a storage of its own
            start, strides = 0, array.strides
        layout = tuple(s // item for s in strides) if array.size else _c_strides(array.shape)
        return self._storage(root), (start // item, array.shape, layout)

    def _storage(self, root: np.ndarray, type_name: Optional[str] = None) -> _Storage:
        found = self.storages.get(id(root))
        if found is None:
            self._roots.append(root)
            stored = root.dtype.newbyteorder("<" if self.byteorder == "little" else ">")
            data = np.ascontiguousarray(root).astype(stored).tobytes()
            # Zip keys count from 0, as torch's; legacy keys are addresses there: 14 digits here, so that
            # the string order of the keys (the order of the storages in the file) is the order of first use.
            key = str(_LEGACY_KEY_BASE + 64 * len(self.storages)) if self.legacy else str(len(self.storages))
            found = _Storage(key, type_name or STORAGE_TYPES[root.dtype], root.size, data)
            self.storages[id(root)] = found
        return found


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """PyTorch's strides of a contiguous tensor of ``shape`` (a zero extent counts as one)."""
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= max(n, 1)
    return tuple(reversed(out))


def _pickle(obj: Any, legacy: bool, byteorder: str) -> tuple[bytes, list[_Storage]]:
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, legacy, byteorder)
    pickler.dump(obj)
    # torch.save writes the storages in the string order of their keys ('10' before '2').
    return buffer.getvalue(), sorted(pickler.storages.values(), key=lambda s: s.key)


def _zip(records: list[tuple[str, bytes]]) -> bytes:
    """A zip archive laid out as PyTorch's writer lays it out.

    Stored records, each local header padded by an ``FB`` extra field of ``Z``
    so that the data starts on a multiple of 64 bytes, a data descriptor after
    each record, then the central directory, zip64 end record and locator, and
    the end record.
    """
    out, central = bytearray(), bytearray()
    for name, data in records:
        encoded = name.encode("utf-8")
        offset, crc = len(out), zlib.crc32(data)
        pad = -(offset + 30 + len(encoded) + 4) % _STORAGE_ALIGNMENT
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 0, 0x0808, 0, 0, 0, 0, 0, 0, len(encoded), len(extra))
        out += encoded + extra + data
        out += struct.pack("<IIII", 0x08074B50, crc, len(data), len(data))
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0, 0, 0x0808, 0, 0, 0, crc, len(data),
                               len(data), len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    count, central_offset = len(records), len(out)
    out += central
    end64_offset = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, count, count, len(central),
                       central_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64_offset, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), central_offset, 0)
    return bytes(out)


def save_pth(obj: Any, path: Union[str, Path], legacy: bool = False, *, archive_name: Optional[str] = None,
             byteorder: str = "little", serialization_id: Optional[str] = None) -> Path:
    """Write ``obj`` to ``path`` as ``torch.save(obj, path)`` would.

    Parameters
    ----------
    obj : object
        Dicts, ``OrderedDict`` (its attributes, such as a state dict's
        ``_metadata``, are written too), lists, tuples, str, bytes, numbers,
        None, and tensors: NumPy arrays of :data:`STORAGE_TYPES`'s dtypes,
        :class:`BFloat16`, :class:`TensorView`.
    path : str or Path
    legacy : bool
        The format of ``_use_new_zipfile_serialization=False`` (torch < 1.6,
        mmdetection's released checkpoints) instead of the zip archive.
    archive_name : str, optional
        The zip archive's top folder: ``torch.save`` uses the file's stem when
        given a path (the default here), ``archive`` when given a buffer.
    byteorder : {'little', 'big'}
        The zip archive's byte order record and storage bytes (the legacy
        format is always little-endian).
    serialization_id : str, optional
        The zip archive's ``.data/serialization_id`` record (torch writes a
        40-digit number); by default one derived from the pickle.

    Returns
    -------
    Path

    Notes
    -----
    A NumPy view shares the storage of its root array when that root is
    C-contiguous and of the same dtype; any other array gets a storage of its
    own. Storage keys count from ``'0'`` in the zip format, as torch's; in the
    legacy format torch writes memory addresses, here 14-digit numbers in the
    order of first use. Records of 4 GiB or more (zip64 sizes) are not written.
    """
    path = Path(path)
    if byteorder not in ("little", "big") or legacy and byteorder != "little":
        raise ValueError(f"byteorder {byteorder!r}: 'little', or 'big' for the zip format")
    data_pkl, storages = _pickle(obj, legacy, byteorder)
    if legacy:
        out = io.BytesIO()
        sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info):
            pickle.dump(header, out, protocol=2)
        out.write(data_pkl)
        pickle.dump([s.key for s in storages], out, protocol=2)
        for storage in storages:
            out.write(struct.pack("<q", storage.numel) + storage.data)
        path.write_bytes(out.getvalue())
        return path
    if serialization_id is None:
        serialization_id = str(int.from_bytes(hashlib.sha256(data_pkl).digest()[:16], "little")).zfill(40)[:40]
    records = [("data.pkl", data_pkl), (".format_version", _FORMAT_VERSION),
               (".storage_alignment", str(_STORAGE_ALIGNMENT).encode("ascii")),
               ("byteorder", byteorder.encode("ascii"))]
    records += [(f"data/{s.key}", s.data) for s in storages]
    records += [("version", _VERSION), (".data/serialization_id", serialization_id.encode("ascii"))]
    top = archive_name if archive_name is not None else path.stem
    path.write_bytes(_zip([(f"{top}/{name}", data) for name, data in records]))
    return path
