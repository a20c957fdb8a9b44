"""PyTorch checkpoints (``.pth``, written by ``torch.save``) read without PyTorch.

A ``.pth`` file is a pickle, and unpickling runs whatever the file names: a
checkpoint from the internet may carry a payload. Here the pickle is read by an
unpickler that resolves only the few globals a state dict needs, each to a
small function of this module that builds NumPy arrays; every other global
(``os.system``, ``builtins.eval``, ``numpy.core.multiarray._reconstruct``, any
class of mmcv or mmengine) is refused before anything is called, and PyTorch is
never imported.

Both of ``torch.save``'s formats are read:

- the zip archive of torch >= 1.6: ``<top>/data.pkl`` (the pickle),
  ``<top>/data/<key>`` (the raw bytes of each storage) and ``<top>/byteorder``
  (``little`` or ``big``; little when absent); the top folder's name varies;
- the legacy format (torch < 1.6, or ``_use_new_zipfile_serialization=False``,
  as mmdetection's released checkpoints): the pickled magic number, protocol
  version (1001) and system information, the object pickle, the pickled list
  of storage keys, then each storage as an int64 element count and its raw
  little-endian data.

Tensors refer to their storage through pickle's persistent ids
``('storage', <storage class>, key, location, numel)`` (the legacy format adds
a storage view, None since PyTorch 1.0) and are rebuilt
by ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, backward_hooks[, metadata])``; parameters wrap a tensor in
``_rebuild_parameter(data, requires_grad, backward_hooks)``. The location
(``cpu``, ``cuda:0``) is ignored: every array is on the host.

Checkpoints whose metadata hold objects of other classes (mmengine's
``message_hub`` of ``HistoryBuffer``, NumPy scalars) are refused whole by
default; ``load_pth(path, state_dict_only=True)`` reads their state dict, the
other objects standing in as inert placeholders that are never imported nor
called. Not supported: quantized and sparse tensors, tensor subclasses
(``_rebuild_from_type_v2``), storage views of PyTorch before 1.0 and its tar
format, TorchScript archives.

>>> ckpt = load_pth("ssd300_coco.pth")                      # doctest: +SKIP
>>> ckpt["state_dict"]["bbox_head.cls_convs.0.weight"].shape  # doctest: +SKIP
(324, 512, 3, 3)
"""
from __future__ import annotations

import collections
import io
import logging
import math
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from common.fileio import PathLike

__all__ = ["ALLOWED_GLOBALS", "STORAGE_DTYPES", "load_pth"]

LOG = logging.getLogger(__name__)

#: The first pickle of a legacy file, and the second (``torch/serialization.py``).
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

#: Storage classes named in persistent ids, and the type of their elements.
#: NumPy has no bfloat16: those storages are read as float32 (exactly).
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
    # A storage saved without a type (torch.save of an UntypedStorage): its bytes.
    "UntypedStorage": "uint8",
}
_STORED = {"bfloat16": np.dtype("uint16"), "bool": np.dtype("uint8")}  # as the bytes hold them

#: Tensors may share and view storages (tied weights, views), so their arrays together may
#: exceed the stored bytes; a file whose tensors would need more than this many times its
#: storages (plus 1 MiB) is refused, so that a small crafted file cannot ask for terabytes.
_MAX_EXPANSION = 16
_LINE_MAX = 200


class _Problem(Exception):
    """What is wrong with the file; :func:`load_pth` prefixes its name."""


def _one_line(text: object) -> str:
    """``text`` on one line, at most ``_LINE_MAX`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= _LINE_MAX else line[:_LINE_MAX - 3] + "..."


def _refusal(module: str, name: str) -> str:
    return (f"refuses to load the global {_one_line(module)}.{_one_line(name)} "
            "(a checkpoint holds only tensors and plain containers)")


# ---------------------------------------------------------------------------------------------
# The loader's own objects. Pickle's BUILD opcode calls __setstate__: on these it refuses, so a
# file can neither set attributes on them nor reach their functions' defaults.

class _Inert:
    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _Problem(f"malformed pickle: BUILD on {self!r}")


class _StorageType(_Inert):
    """A storage class named by the file (``torch.FloatStorage``): only a dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage(_Inert):
    """One storage: ``numel`` elements of ``dtype``, its data set when read."""

    __slots__ = ("key", "dtype", "numel", "raw", "array")

    def __init__(self, key: str, dtype: str, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel
        self.raw: Optional[np.ndarray] = None  # stored elements, as read
        self.array: Optional[np.ndarray] = None  # native elements, made once

    def __repr__(self) -> str:
        return f"storage {self.key!r}"


class _Tensor(_Inert):
    """A tensor to make: ``size``/``stride`` in elements from ``offset`` of ``storage``."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __repr__(self) -> str:
        return f"tensor of {self.storage!r}"


class _Function(_Inert):
    """An allowed global: the module's own function under PyTorch's name."""

    __slots__ = ("name", "function")

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name, self.function = name, function

    def __call__(self, *args: Any) -> Any:
        try:
            return self.function(*args)
        except TypeError as err:
            raise _Problem(f"malformed call of {self.name} ({_one_line(err)})") from None

    def __repr__(self) -> str:
        return self.name


class _Opaque:
    """An object of a refused class, in ``state_dict_only`` mode: never built.

    Calling it, pickle's NEWOBJ, BUILD, SETITEM and APPEND all do nothing, so
    the real class is neither imported nor run. One subclass per global, made by
    :meth:`_Reader._opaque_class` for each refused global, carries its name.
    """

    __slots__ = ()
    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Opaque":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# The allowed globals.

def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(type(v) is int and v >= 0 for v in value):
        raise _Problem(f"malformed tensor: {what} {_one_line(repr(value))} is not a tuple of counts")
    return tuple(value)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any, backward_hooks: Any, metadata: Any = None) -> _Tensor:
    """``torch._utils._rebuild_tensor_v2``: a tensor over ``storage`` (checked when read)."""
    if not isinstance(storage, _Storage):
        raise _Problem(f"malformed tensor: its storage is {_one_line(repr(storage))}")
    if type(storage_offset) is not int or storage_offset < 0:
        raise _Problem(f"malformed tensor: storage offset {_one_line(repr(storage_offset))}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise _Problem(f"malformed tensor: size {size} and stride {stride} differ in length")
    if metadata:  # the lazy negation and conjugation bits of a view, never in a state dict
        raise _Problem(f"unsupported tensor metadata {_one_line(repr(metadata))}")
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> _Tensor:
    """``torch._utils._rebuild_parameter``: a parameter is its tensor."""
    if not isinstance(data, _Tensor):
        raise _Problem(f"malformed parameter: its data is {_one_line(repr(data))}")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any,
                                  state: Any) -> _Tensor:
    """``torch._utils._rebuild_parameter_with_state``: the tensor; the Python attributes are dropped."""
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _encode(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode``, as protocol 2 pickles ``bytes``: ``encode(str, 'latin1')`` only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Problem(f"malformed bytes: encode of {type(text).__name__} with {_one_line(repr(encoding))}")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    """``builtins.bytes``, as protocol 2 pickles ``b''``."""
    if args:
        raise _Problem("malformed bytes: bytes() with arguments")
    return b""


def _collection(kind: type) -> Callable[..., Any]:
    def make(items: Any = ()) -> Any:
        if not isinstance(items, (list, tuple)):
            raise _Problem(f"malformed {kind.__name__}: made from {type(items).__name__}")
        return kind(items)
    return make


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("_codecs", "encode"): _encode,
    ("builtins", "bytes"): _bytes,
    ("builtins", "set"): _collection(set),
    ("builtins", "frozenset"): _collection(frozenset),
}
for (_module, _name), _value in list(_ALLOWED.items()):
    if _module == "builtins":  # protocol 2 writes Python 2's module name
        _ALLOWED[("__builtin__", _name)] = _value
_STORAGE_MODULES = {"torch": set(STORAGE_DTYPES), "torch.storage": {"UntypedStorage"}}

#: Every global a file may name, as ``module.name``.
ALLOWED_GLOBALS: tuple[str, ...] = tuple(sorted(
    [f"{m}.{n}" for m, n in _ALLOWED]
    + [f"{m}.{n}" for m, names in _STORAGE_MODULES.items() for n in names]))


# ---------------------------------------------------------------------------------------------
# Unpickling.

class _Unpickler(pickle.Unpickler):
    """Pickle's unpickler with every global and persistent id going through ``reader``."""

    def __init__(self, file: io.BytesIO, reader: "_Reader") -> None:
        super().__init__(file, encoding="utf-8")  # as torch.load reads Python 2 strings
        self._reader = reader

    def find_class(self, module: str, name: str) -> Any:
        return self._reader.find_global(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._reader.persistent(pid)


class _Reader:
    """The globals and storages of one file.

    Parameters
    ----------
    legacy : bool
        Persistent ids have the legacy format's sixth field (a storage view,
        None since PyTorch 1.0).
    permissive : bool
        Refused globals become :class:`_Opaque` stand-ins instead of errors.
    read_storage : callable, optional
        ``read_storage(storage)`` sets ``storage.raw`` when it is first seen
        (zip format); the legacy format reads the storages after the pickle.
    """

    def __init__(self, legacy: bool, permissive: bool = False,
                 read_storage: Optional[Callable[[_Storage], None]] = None) -> None:
        self.legacy, self.permissive, self.read_storage = legacy, permissive, read_storage
        self.storages: dict[str, _Storage] = {}
        self._functions: dict[tuple[str, str], Any] = {}
        self._opaque: dict[str, type] = {}

    def find_global(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._functions:
            return self._functions[key]
        if name in _STORAGE_MODULES.get(module, ()):
            found: Any = _StorageType(name, STORAGE_DTYPES[name])
        elif key in _ALLOWED:
            value = _ALLOWED[key]
            found = value if isinstance(value, type) else _Function(f"{module}.{name}", value)
        elif module == "torch" and isinstance(name, str) and name.endswith("Storage"):
            raise _Problem(f"unsupported tensor type torch.{_one_line(name)} (supported: "
                           + ", ".join(STORAGE_DTYPES) + ")")
        elif self.permissive:
            return self._opaque_class(f"{_one_line(module)}.{_one_line(name)}")
        else:
            raise _Problem(_refusal(str(module), str(name)))
        self._functions[key] = found
        return found

    def _opaque_class(self, name: str) -> type:
        if name not in self._opaque:
            self._opaque[name] = type("Opaque", (_Opaque,), {"__slots__": (), "global_name": name})
        return self._opaque[name]

    def persistent(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise _Problem(f"malformed persistent id {_one_line(repr(pid))}")
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage" or len(pid) != (6 if self.legacy else 5):
            raise _Problem(f"malformed persistent id {_one_line(repr(pid))}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) \
                or type(numel) is not int or numel < 0:
            raise _Problem(f"malformed persistent id {_one_line(repr(pid))}")
        if self.legacy and pid[5] is not None:
            # Written only by PyTorch before 1.0 (later versions always write None).
            raise _Problem("storage views of PyTorch before 1.0 are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type.dtype, numel)
            if self.read_storage is not None:
                self.read_storage(storage)
        elif storage.dtype != storage_type.dtype:
            raise _Problem(f"storage {key!r} is used as both {storage.dtype} and {storage_type.dtype}")
        return storage


def _stored(dtype: str) -> np.dtype:
    """The type of the elements as the file holds them."""
    return _STORED[dtype] if dtype in _STORED else np.dtype(dtype)


def _itemsize(dtype: str) -> int:
    return _stored(dtype).itemsize


def _raw_dtype(dtype: str, byteorder: str) -> np.dtype:
    return _stored(dtype).newbyteorder("<" if byteorder == "little" else ">")


def _unpickle(stream: io.BytesIO, reader: _Reader) -> Any:
    """The next pickle of ``stream``; whatever a damaged one raises becomes a :class:`_Problem`."""
    try:
        return _Unpickler(stream, reader).load()
    except _Problem:
        raise
    except (EOFError, pickle.UnpicklingError) as err:
        if isinstance(err, EOFError) or "truncated" in str(err):
            raise _Problem("truncated file (a pickle ends early)") from None
        raise _Problem(f"damaged pickle ({_one_line(err)})") from None
    except RecursionError:
        raise _Problem("damaged pickle (nested too deeply)") from None
    except MemoryError:
        raise
    except Exception as err:  # a damaged pickle can make the unpickler raise nearly anything
        raise _Problem(f"damaged pickle ({type(err).__name__}: {_one_line(err)})") from None


# ---------------------------------------------------------------------------------------------
# The two formats.

def _load_zip(data: bytes, permissive: bool) -> tuple[Any, _Reader]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except Exception as err:  # zipfile raises BadZipFile, OSError, struct.error, ValueError...
        raise _Problem(f"truncated or damaged zip archive ({_one_line(err)})") from None
    top = names[0].split("/")[0] if names else ""
    if f"{top}/data.pkl" not in names:
        if f"{top}/constants.pkl" in names:
            raise _Problem("a TorchScript archive (torch.jit.save), not a torch.save checkpoint")
        raise _Problem("a zip archive without data.pkl, not a torch.save checkpoint")

    def member(name: str, expected: Optional[int] = None) -> bytes:
        full = f"{top}/{name}"
        try:
            info = archive.getinfo(full)
        except KeyError:
            raise _Problem(f"{name} is missing from the zip archive") from None
        if expected is not None and info.file_size != expected:
            raise _Problem(f"{name} holds {info.file_size} bytes where its storage has {expected}")
        try:
            return archive.read(info)
        except Exception as err:  # BadZipFile (CRC), zlib.error, EOFError, NotImplementedError...
            raise _Problem(f"cannot read {name} from the zip archive ({_one_line(err)})") from None

    byteorder = "little"  # torch.load's default when the record is absent (torch < 2.1)
    if f"{top}/byteorder" in names:
        byteorder = member("byteorder").decode("ascii", "replace")
        if byteorder not in ("little", "big"):
            raise _Problem(f"unknown byte order {_one_line(repr(byteorder))}")

    def read_storage(storage: _Storage) -> None:
        raw = member(f"data/{storage.key}", storage.numel * _itemsize(storage.dtype))
        storage.raw = np.frombuffer(raw, _raw_dtype(storage.dtype, byteorder))

    reader = _Reader(legacy=False, permissive=permissive, read_storage=read_storage)
    return _unpickle(io.BytesIO(member("data.pkl")), reader), reader


def _load_legacy(data: bytes, permissive: bool) -> tuple[Any, _Reader]:
    stream = io.BytesIO(data)
    plain = _Reader(legacy=True)  # the header pickles hold no globals
    if _unpickle(stream, plain) != MAGIC_NUMBER:
        raise _Problem("a pickle file without torch.save's magic number, not a PyTorch checkpoint")
    protocol = _unpickle(stream, plain)
    if protocol != PROTOCOL_VERSION:
        raise _Problem(f"unsupported legacy protocol version {_one_line(repr(protocol))}")
    if not isinstance(_unpickle(stream, plain), dict):
        raise _Problem("malformed legacy header (system information)")
    reader = _Reader(legacy=True, permissive=permissive)
    obj = _unpickle(stream, reader)
    keys = _unpickle(stream, plain)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Problem("malformed legacy storage list")
    offset = stream.tell()
    for key in keys:
        storage = reader.storages.get(key)
        if storage is None:
            raise _Problem(f"storage {key!r} is listed but no tensor uses it")
        if offset + 8 > len(data):
            raise _Problem(f"truncated: storage {key!r} is missing")
        count, = struct.unpack_from("<q", data, offset)
        nbytes = count * _itemsize(storage.dtype)
        if count < 0 or offset + 8 + nbytes > len(data):
            raise _Problem(f"truncated: storage {key!r} needs {nbytes} bytes, "
                           f"{len(data) - offset - 8} are left")
        # Count and data are little-endian whatever the saving machine (torch's writeFileRaw).
        storage.raw = np.frombuffer(data, _raw_dtype(storage.dtype, "little"), count, offset + 8)
        storage.numel = count
        offset += 8 + nbytes
    return obj, reader


# ---------------------------------------------------------------------------------------------
# From the unpickled objects to arrays and plain containers.

class _Arrays:
    """Turns storages and tensors into arrays, within the memory budget."""

    def __init__(self, reader: _Reader) -> None:
        stored = sum(s.raw.nbytes for s in reader.storages.values() if s.raw is not None)
        self.budget = _MAX_EXPANSION * stored + (1 << 20)
        self.memo: dict[int, Any] = {}

    def spend(self, nbytes: int, what: str) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise _Problem(f"{what} would take the arrays past {_MAX_EXPANSION} times "
                           "the stored data (views over views)")

    def storage(self, storage: _Storage) -> np.ndarray:
        """The native elements of ``storage``, made once."""
        if storage.array is None:
            raw = storage.raw
            if raw is None:
                raise _Problem(f"{storage!r} has no data in the file")
            if storage.dtype == "bfloat16":  # the high half of a float32
                array = (raw.astype(np.uint32) << 16).view(np.float32)
            elif storage.dtype == "bool":
                array = raw != 0
            else:
                array = raw.astype(np.dtype(storage.dtype), copy=False)
            storage.array = array
        return storage.array

    def tensor(self, tensor: _Tensor) -> np.ndarray:
        """A C-contiguous, writable copy of the tensor's elements."""
        found = self.memo.get(id(tensor))
        if found is not None:
            return found
        storage = self.storage(tensor.storage)
        numel = math.prod(tensor.size)
        if numel:
            last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
            if last >= storage.size:
                raise _Problem(f"a tensor of size {tensor.size}, stride {tensor.stride} from element "
                               f"{tensor.offset} needs {last + 1} elements of {tensor.storage!r}, "
                               f"which has {storage.size}")
            if numel > storage.size:
                raise _Problem(f"a tensor of {numel} elements over {tensor.storage!r} of "
                               f"{storage.size} (broadcast views are not supported)")
        self.spend(numel * storage.itemsize, f"a tensor of size {tensor.size}")
        if numel:
            view = np.lib.stride_tricks.as_strided(
                storage[tensor.offset:], tensor.size, [s * storage.itemsize for s in tensor.stride],
                writeable=False)
        else:
            view = np.empty(tensor.size, storage.dtype)
        array = np.array(view, order="C")
        self.memo[id(tensor)] = array
        return array


def _plain(obj: Any, arrays: _Arrays, where: str, skip_foreign: bool = False) -> Any:
    """``obj`` with tensors as arrays and only plain containers; ``where`` names it in messages.

    With ``skip_foreign``, the inert stand-in of an object of another class is None.
    """
    if obj is None or type(obj) in (bool, int, float, str, bytes):
        return obj
    if isinstance(obj, _Tensor):
        return arrays.tensor(obj)
    if skip_foreign and isinstance(obj, _Opaque):
        return None
    found = arrays.memo.get(id(obj))
    if found is not None:
        return found
    if type(obj) in (dict, collections.OrderedDict):
        out = type(obj)()  # the state dict's _metadata attribute is dropped
        arrays.memo[id(obj)] = out
        for key, value in obj.items():
            out[_plain(key, arrays, f"{where} key", skip_foreign)] = _plain(
                value, arrays, f"{where}[{key!r}]", skip_foreign)
        return out
    if type(obj) is list:
        out_list: list = []
        arrays.memo[id(obj)] = out_list
        out_list.extend(_plain(v, arrays, f"{where}[{i}]", skip_foreign) for i, v in enumerate(obj))
        return out_list
    if type(obj) in (tuple, set, frozenset):
        return type(obj)(_plain(v, arrays, f"{where}[{i}]", skip_foreign) for i, v in enumerate(obj))
    raise _Problem(f"{_one_line(where)} is an unexpected {_one_line(repr(obj))}")


def _state_dict_of(obj: Any) -> dict:
    """The checkpoint's ``state_dict`` entry, or ``obj`` itself when it is one."""
    if isinstance(obj, dict) and "state_dict" in obj:
        state = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, _Tensor) for v in obj.values()):
        state = obj
    else:
        keys = ", ".join(map(repr, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
        raise _Problem(f"no state_dict in the checkpoint (it holds {_one_line(keys)})")
    if not isinstance(state, dict):
        raise _Problem("state_dict is not a dict")
    for key, value in state.items():
        if not isinstance(key, str):
            raise _Problem(f"state_dict key {_one_line(repr(key))} is not a string")
        if not isinstance(value, _Tensor):
            what = value.global_name if isinstance(value, _Opaque) else type(value).__name__
            raise _Problem(f"state_dict[{_one_line(repr(key))}] is not a tensor ({what})")
    return state


def _sniff(data: bytes) -> str:
    """``'zip'`` or ``'legacy'``, or the problem of a file that is neither."""
    if data[:4] == b"PK\x03\x04":
        return "zip"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "legacy"
    if not data:
        raise _Problem("empty file, not a PyTorch checkpoint")
    if data[:8] == struct.pack("<Q", 0x112):
        raise _Problem("an MXNet .params file, not a PyTorch checkpoint")
    if data[257:262] == b"ustar":
        raise _Problem("a tar archive; PyTorch's tar format (before 0.4) is not supported")
    raise _Problem("not a PyTorch checkpoint (neither torch.save's zip archive nor its legacy format)")


def load_pth(path: PathLike, *, state_dict_only: bool = False, skip_foreign: bool = False) -> Any:
    """The object ``torch.save`` wrote to ``path``, tensors as NumPy arrays.

    Nothing in the file is executed and PyTorch is not imported: the pickle may
    name only :data:`ALLOWED_GLOBALS`, implemented here.

    Parameters
    ----------
    path : str or path-like
        A ``.pth`` file in either of ``torch.save``'s formats.
    state_dict_only : bool
        Return only the state dict (the checkpoint's ``state_dict`` entry, or
        the whole object when it is a mapping of tensors). Objects of other
        classes elsewhere in the checkpoint (mmengine's ``HistoryBuffer``,
        NumPy scalars in ``meta`` or ``message_hub``) are then stand-ins that
        are never imported nor run, and are dropped; the state dict must hold
        only tensors.
    skip_foreign : bool
        Return the whole checkpoint, each object of a class outside
        :data:`ALLOWED_GLOBALS` read as None (an inert stand-in, never
        imported nor run, its contents dropped): what a converter needs when
        it reads ``meta`` beside the state dict of an mmengine checkpoint.

    Returns
    -------
    object
        Dicts (``collections.OrderedDict`` where the file has one; a state
        dict's ``_metadata`` attribute is dropped), lists, tuples, sets, str,
        bytes, int, float, bool, None, and a C-contiguous, writable
        ``numpy.ndarray`` for each tensor: the file's dtype (bfloat16 as
        float32, exactly), shape and values, read through its storage offset
        and strides. A tensor that appears twice is one array.

    Raises
    ------
    FileNotFoundError
        ``PyTorch checkpoint not found: PATH``.
    ValueError
        One line, ``PATH: problem``: a file of another kind, a truncated or
        damaged file, a storage shorter than its tensor needs, an unsupported
        tensor type, or a global outside :data:`ALLOWED_GLOBALS` (``PATH:
        refuses to load the global os.system (a checkpoint holds only tensors
        and plain containers)``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"PyTorch checkpoint not found: {path}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the file ({_one_line(err.strerror or err)})") from None
    try:
        kind = _sniff(data)
        load = _load_zip if kind == "zip" else _load_legacy
        obj, reader = load(data, state_dict_only or skip_foreign)
        if state_dict_only:
            obj = _state_dict_of(obj)
        elif skip_foreign and isinstance(obj, dict) and "state_dict" in obj:
            _state_dict_of(obj)  # the state dict itself holds tensors only
        if reader._opaque:
            LOG.info("%s: skipped objects of other classes (%s)", path, ", ".join(sorted(reader._opaque)))
        result = _plain(obj, _Arrays(reader), "state_dict" if state_dict_only else "checkpoint",
                        skip_foreign and not state_dict_only)
    except _Problem as problem:
        raise ValueError(f"{path}: {problem}") from None
    except MemoryError:
        raise ValueError(f"{path}: the checkpoint asks for more memory than there is") from None
    except Exception as err:  # whatever a damaged pickle makes the unpickler raise
        raise ValueError(f"{path}: damaged PyTorch checkpoint "
                         f"({type(err).__name__}: {_one_line(err)})") from None
    LOG.debug("%s: %s format, %d storages", path, kind, len(reader.storages))
    return result
