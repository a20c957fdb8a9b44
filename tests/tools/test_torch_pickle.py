"""tools.model_converters.torch_pickle.load_pth: PyTorch checkpoints read exactly without PyTorch,
malicious pickles refused without running anything, bad files refused in one line.

The references are independent of the reader: files written by real PyTorch
(``tests/fixtures/torch/``, their values in ``tiny_expected.npz`` and their
README), pickle bytes written by hand, and payloads proven live by plain
``pickle.loads``. The test-side writer ``torch_files.py`` is proven here
against the real files (byte for byte, opcode for opcode) before the other
tests, and other test modules, build checkpoints with it.
"""
from __future__ import annotations

import collections
import importlib.util
import io
import pickle
import pickletools
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tools.model_converters.torch_pickle import ALLOWED_GLOBALS, load_pth

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torch"
KEYS = ["a.weight", "b.bias", "c.conv.weight", "c.bn.num_batches_tracked", "c.conv.weight_t"]
REFUSAL = "(a checkpoint holds only tensors and plain containers)"


def _writer():
    """torch_files.py beside this file (test modules are not importable by name)."""
    spec = importlib.util.spec_from_file_location("torch_files", Path(__file__).with_name("torch_files.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tf = _writer()


def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "tiny_expected.npz") as npz:
        return {key: npz[key] for key in npz.files}


def fixture_checkpoint() -> dict:
    """The fixtures' checkpoint from the npz, ``c.conv.weight_t`` a NumPy view as in PyTorch."""
    ref = expected()
    weight = ref["c.conv.weight"].copy()
    weight_t = weight[0, 1].T
    np.testing.assert_array_equal(weight_t, ref["c.conv.weight_t"])
    state = collections.OrderedDict([
        ("a.weight", ref["a.weight"]), ("b.bias", ref["b.bias"]), ("c.conv.weight", weight),
        ("c.bn.num_batches_tracked", ref["c.bn.num_batches_tracked"]), ("c.conv.weight_t", weight_t)])
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("c.bn", {"version": 2})])
    return {"meta": {"epoch": int(ref["meta.epoch"])}, "state_dict": state}


def refused(path: Path, **kwargs: Any) -> str:
    """The one-line ValueError of ``load_pth(path)``, which names the file."""
    with pytest.raises(ValueError) as info:
        load_pth(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


def assert_same(got: Any, want: Any, where: str = "checkpoint") -> None:
    """Equal values of the same types all the way down; arrays of the same dtype and shape."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and (got.dtype, got.shape) == (want.dtype, want.shape), where
        np.testing.assert_array_equal(got, want, err_msg=where)
        return
    assert type(got) is type(want), f"{where}: {type(got).__name__} is not {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    else:
        assert got == want, where


def rezip(src: Path, dst: Path, replace: dict[str, bytes] = None,
          compression: int = zipfile.ZIP_STORED) -> Path:
    """``src`` rewritten by Python's zipfile, records (named below the top folder) replaced."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename.split("/", 1)[1], zin.read(info)))
    return dst


# ---------------------------------------------------------------------------------------------
# Files written by real PyTorch.

@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_reads_pytorch_files_exactly(name):
    ckpt = load_pth(FIXTURES / name)
    ref = expected()
    assert type(ckpt) is dict and ckpt["meta"] == {"epoch": 3} and type(ckpt["meta"]["epoch"]) is int
    state = ckpt["state_dict"]
    assert type(state) is collections.OrderedDict and list(state) == KEYS
    assert not hasattr(state, "_metadata")
    for key in KEYS:
        assert (state[key].dtype, state[key].shape) == (ref[key].dtype, ref[key].shape), key
        np.testing.assert_array_equal(state[key], ref[key], err_msg=key)
        assert state[key].flags.c_contiguous and state[key].flags.writeable, key
    # The README's numbers, and the view through offset 9 and strides (1, 3).
    assert state["b.bias"].tolist() == [1.5, -2.25, float(np.float32(3e-8)), 65504.0]
    assert state["c.bn.num_batches_tracked"].tolist() == [123456789012]
    np.testing.assert_array_equal(state["c.conv.weight_t"],
                                  state["c.conv.weight"].reshape(-1)[9:18].reshape(3, 3).T)
    assert not np.shares_memory(state["c.conv.weight_t"], state["c.conv.weight"])


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_state_dict_only_of_pytorch_files(name):
    state = load_pth(FIXTURES / name, state_dict_only=True)
    assert_same(state, collections.OrderedDict((k, v) for k, v in expected().items() if k in KEYS))


def test_allowed_globals_are_the_state_dict_ones():
    assert set(ALLOWED_GLOBALS) >= {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                    "torch._utils._rebuild_parameter", "torch.FloatStorage",
                                    "torch.HalfStorage", "torch.BFloat16Storage", "torch.LongStorage"}
    assert not {g for g in ALLOWED_GLOBALS if g.split(".")[0] not in
                ("collections", "torch", "_codecs", "builtins", "__builtin__")}
    assert {g for g in ALLOWED_GLOBALS if g.split(".")[0] in ("builtins", "__builtin__")} == {
        f"{m}.{n}" for m in ("builtins", "__builtin__") for n in ("bytes", "set", "frozenset")}


# ---------------------------------------------------------------------------------------------
# The test-side writer against the real files.

def test_writer_zip_is_byte_identical_to_pytorch(tmp_path):
    real = FIXTURES / "tiny_zip.pth"
    serialization_id = zipfile.ZipFile(real).read("tiny_zip/.data/serialization_id").decode()
    written = tf.save_pth(fixture_checkpoint(), tmp_path / "tiny_zip.pth", serialization_id=serialization_id)
    assert written.read_bytes() == real.read_bytes()


def legacy_parts(data: bytes) -> tuple[list[tuple[bytes, list]], list[tuple[str, int, bytes]], bytes]:
    """A legacy file's five pickles (bytes, opcodes), its storages (key, count, data), the rest."""
    stream, pickles = io.BytesIO(data), []
    for _ in range(5):
        start = stream.tell()
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(stream)]
        pickles.append((data[start:stream.tell()], ops))
    keys, offset, storages = pickle.loads(pickles[4][0]), stream.tell(), []
    # Each key's storage class: the value before the key in its persistent id, memo lookups resolved.
    memo, values = {}, []
    for op, arg in pickles[3][1]:
        if op == "BINPUT":
            memo[arg] = values[-1]
        else:
            values.append(memo[arg] if op == "BINGET" else arg)
    types = {key: kind.split()[1] for kind, key in zip(values, values[1:])
             if isinstance(kind, str) and kind.startswith("torch ") and kind.endswith("Storage")}
    sizes = {"FloatStorage": 4, "LongStorage": 8}
    for key in keys:
        count, = struct.unpack_from("<q", data, offset)
        nbytes = count * sizes[types[key]]
        storages.append((key, count, data[offset + 8:offset + 8 + nbytes]))
        offset += 8 + nbytes
    return pickles, storages, data[offset:]


def test_writer_legacy_matches_pytorch_layout(tmp_path):
    real = (FIXTURES / "tiny_legacy.pth").read_bytes()
    written = tf.save_pth(fixture_checkpoint(), tmp_path / "tiny_legacy.pth", legacy=True).read_bytes()
    (real_pickles, real_storages, real_rest), (pickles, storages, rest) = legacy_parts(real), legacy_parts(written)
    # Magic number, protocol version and system information: the same bytes.
    assert [p[0] for p in pickles[:3]] == [p[0] for p in real_pickles[:3]]
    assert pickle.loads(real_pickles[0][0]) == tf.MAGIC_NUMBER
    # The object pickle: the same opcodes and arguments, storage keys (torch writes addresses) renamed.
    real_keys, keys = [s[0] for s in real_storages], [s[0] for s in storages]
    assert len(keys) == len(real_keys) == 4

    def renamed(ops: list, names: list[str]) -> list:
        return [(op, f"storage {names.index(arg)}" if arg in names else arg) for op, arg in ops]

    assert renamed(pickles[3][1], keys) == renamed(real_pickles[3][1], real_keys)
    # Storages in the same order, each the same count and bytes.
    assert [s[1:] for s in storages] == [s[1:] for s in real_storages]
    assert rest == real_rest == b""


def test_writer_archive_name_and_buffer_style(tmp_path):
    written = tf.save_pth({"w": np.ones(3, np.float32)}, tmp_path / "x.pth", archive_name="archive")
    assert zipfile.ZipFile(written).namelist()[0] == "archive/data.pkl"
    assert_same(load_pth(written), {"w": np.ones(3, np.float32)})


# ---------------------------------------------------------------------------------------------
# Tensors: dtypes, views, layouts.

VALUES = {
    "float32": np.array([1.5, -2.25, 3e-8, 65504.0], np.float32),
    "float64": np.array([[np.pi, -1e300], [5e-324, 0.0]]),
    "float16": np.array([65504.0, -0.5, 6e-8, np.inf], np.float16),
    "int64": np.array([-(2 ** 63), 2 ** 63 - 1, 123456789012], np.int64),
    "int32": np.array([-(2 ** 31), 2 ** 31 - 1], np.int32),
    "int16": np.array([-32768, 32767, 7], np.int16),
    "int8": np.array([-128, 127], np.int8),
    "uint8": np.array([0, 255, 128], np.uint8),
    "bool": np.array([[True, False, True]]),
    "complex64": np.array([1 + 2j, -3.5j], np.complex64),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_every_dtype(tmp_path, legacy):
    path = tf.save_pth(dict(VALUES), tmp_path / "dtypes.pth", legacy=legacy)
    assert_same(load_pth(path), dict(VALUES))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_bfloat16_read_as_float32(tmp_path, legacy):
    bits = np.array([[0x3F80, 0xC020, 0x4049], [0x7F80, 0x0001, 0x8000]], np.uint16)
    path = tf.save_pth({"w": tf.BFloat16(bits)}, tmp_path / "bf16.pth", legacy=legacy)
    got = load_pth(path)["w"]
    want = np.array([[1.0, -2.5, 3.140625], [np.inf, 2.0 ** -133, -0.0]], np.float32)
    assert_same(got, want)
    assert np.signbit(got[1, 2])


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_views_share_one_storage_and_come_back_apart(tmp_path, legacy):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    views = {"base": base, "rows": base[1:3], "every_other_column": base[:, ::2], "transposed": base.T,
             "column": base[:, 5], "one": base[2][3:4], "empty": base[:0], "scalar": np.array(7.5, np.float32)}
    path = tf.save_pth(views, tmp_path / "views.pth", legacy=legacy)
    if not legacy:
        records = [n for n in zipfile.ZipFile(path).namelist() if "/data/" in n]
        assert len(records) == 3, records  # base's storage, the empty tensor's, the scalar's
    got = load_pth(path)
    assert_same(got, {k: np.ascontiguousarray(v) if v.ndim else v for k, v in views.items()})
    assert all(a.flags.c_contiguous and a.flags.writeable for a in got.values())
    got["base"][0, 0] = -1
    assert got["rows"][0, 0] == 6 and got["transposed"][0, 0] == 0


def test_explicit_offset_and_strides(tmp_path):
    storage = np.arange(10, dtype=np.int32)
    path = tf.save_pth({"v": tf.TensorView(storage, 3, (2, 3), (1, 2))}, tmp_path / "v.pth")
    assert_same(load_pth(path)["v"], np.array([[3, 5, 7], [4, 6, 8]], np.int32))


def test_big_endian_archive(tmp_path):
    values = np.array([1.5, -2.0, 1e-3], np.float32)
    path = tf.save_pth({"w": values, "n": np.array([2 ** 40], np.int64)}, tmp_path / "be.pth", byteorder="big")
    archive = zipfile.ZipFile(path)
    assert archive.read("be/byteorder") == b"big"
    assert archive.read("be/data/0") == values.astype(">f4").tobytes()
    assert_same(load_pth(path), {"w": values, "n": np.array([2 ** 40], np.int64)})


def test_recompressed_archive(tmp_path):
    path = rezip(FIXTURES / "tiny_zip.pth", tmp_path / "deflated.pth", compression=zipfile.ZIP_DEFLATED)
    assert_same(load_pth(path), load_pth(FIXTURES / "tiny_zip.pth"))


# ---------------------------------------------------------------------------------------------
# mmdetection checkpoints: plain metadata, parameters, optimizer state.

def mmdet_checkpoint() -> tuple[dict, dict]:
    """(what to write, what load_pth must return): an mmdetection 2.x SSD300 checkpoint in small."""
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((64, 3, 3, 3)).astype(np.float32)
    cls = rng.standard_normal((84, 512, 1, 1)).astype(np.float32)
    state = collections.OrderedDict([
        ("backbone.features.0.weight", conv),
        ("backbone.features.0.bias", np.zeros(64, np.float32)),
        ("neck.l2_norm.weight", np.full(512, 20.0, np.float32)),
        ("bbox_head.cls_convs.0.0.weight", cls),
        ("bbox_head.cls_convs.0.0.bias", rng.standard_normal(84).astype(np.float32)),
    ])
    meta = {"mmdet_version": "2.25.1", "CLASSES": ("aeroplane", "bicycle", "bird"),
            "config": "model = dict(\n    type='SingleStageDetector',\n    backbone=dict(depth=16))\n",
            "epoch": 24, "iter": 120000, "time": "Wed Aug  3 01:54:28 2022", "seed": None,
            "hook_msgs": {"last_ckpt": "/work/epoch_24.pth", "best_score": 0.7712, "best_ckpt": None},
            "env_info": "sys.platform: linux\nCUDA available: True", "flags": [True, False],
            "blob": b"\x00\xffmm", "empty": b"", "tags": {"voc", "ssd"}, "frozen": frozenset({1, 2}),
            "nested": [[1, [2.5, "x"]], {"k": (None, -7, 2 ** 70)}], "unicode": "été ✓"}
    momentum = rng.standard_normal((64, 3, 3, 3)).astype(np.float32)
    optimizer = {"state": {0: {"momentum_buffer": momentum}},
                 "param_groups": [{"lr": 0.002, "momentum": 0.9, "weight_decay": 5e-4, "params": [0, 1]}]}
    written = {"meta": meta, "state_dict": state, "optimizer": optimizer,
               # Parameters: other tensors over the state dict's storages.
               "params": [tf.Call("torch._utils", "_rebuild_parameter", (conv[:], True, collections.OrderedDict())),
                          tf.Call("torch._utils", "_rebuild_parameter_with_state",
                                  (cls[:], False, collections.OrderedDict(), {"tag": "head"}))]}
    want = dict(written, params=[conv, cls])
    return written, want


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_mmdetection_checkpoint(tmp_path, legacy):
    written, want = mmdet_checkpoint()
    path = tf.save_pth(written, tmp_path / "ssd300_voc.pth", legacy=legacy)
    got = load_pth(path)
    assert_same(got, want)
    assert got["params"][0] is not got["state_dict"]["backbone.features.0.weight"]  # two tensors in the file
    assert_same(load_pth(path, state_dict_only=True), want["state_dict"])


def test_a_tensor_twice_is_one_array(tmp_path):
    weight = np.arange(6, dtype=np.float32)
    got = load_pth(tf.save_pth({"a": weight, "b": [weight]}, tmp_path / "twice.pth"))
    assert got["a"] is got["b"][0]


# ---------------------------------------------------------------------------------------------
# Malicious pickles: refused, and nothing runs.

def payload(module: str, name: str, argument: Any) -> bytes:
    """A pickle calling ``module.name(argument)``, written by hand."""
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode() + pickle.dumps(argument, 2)[2:-1] + b"\x85R.")


PAYLOADS = {
    "os.system": lambda marker: ("os", "system", f"touch '{marker}'"),
    "posix.system": lambda marker: ("posix", "system", f"touch '{marker}'"),
    "builtins.eval": lambda marker: ("builtins", "eval", f"open({str(marker)!r}, 'w').close()"),
    "__builtin__.exec": lambda marker: ("__builtin__", "exec", f"open({str(marker)!r}, 'w').close()"),
    "subprocess.check_call": lambda marker: ("subprocess", "check_call", ["touch", str(marker)]),
}


def legacy_file(object_pickle: bytes, keys: list[str] = ()) -> bytes:
    """A legacy-format file around ``object_pickle``: the real file's header pickles, then the keys."""
    real = (FIXTURES / "tiny_legacy.pth").read_bytes()
    header = b"".join(p[0] for p in legacy_parts(real)[0][:3])
    return header + object_pickle + pickle.dumps(list(keys), 2)


def zip_file(path: Path, data_pkl: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_payload_is_refused_and_does_not_run(tmp_path, kind, legacy):
    marker = tmp_path / "pwned"
    module, name, argument = PAYLOADS[kind](marker)
    evil = payload(module, name, argument)
    pickle.loads(evil)  # the control: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "model.pth"
    if legacy:
        path.write_bytes(legacy_file(evil))
    else:
        zip_file(path, evil)
    assert refused(path) == f"{path}: refuses to load the global {module}.{name} {REFUSAL}"
    assert refused(path, state_dict_only=True).startswith(f"{path}: no state_dict")
    assert not marker.exists()


def test_payload_in_a_legacy_header_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    real = (FIXTURES / "tiny_legacy.pth").read_bytes()
    magic = legacy_parts(real)[0][0][0]
    path.write_bytes(payload("os", "system", f"touch '{marker}'") + real[len(magic):])
    assert refused(path) == f"{path}: refuses to load the global os.system {REFUSAL}"
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_payload_inside_a_real_checkpoint(tmp_path, legacy):
    marker = tmp_path / "pwned"
    written, want = mmdet_checkpoint()
    written["meta"]["hook"] = tf.Call("os", "system", (f"touch '{marker}'",))
    path = tf.save_pth(written, tmp_path / "model.pth", legacy=legacy)
    assert refused(path) == f"{path}: refuses to load the global os.system {REFUSAL}"
    # Outside the state dict, state_dict_only skips it, inertly.
    assert_same(load_pth(path, state_dict_only=True), want["state_dict"])
    # Inside, it is refused.
    written["state_dict"]["evil"] = tf.Call("os", "system", (f"touch '{marker}'",))
    path = tf.save_pth(written, tmp_path / "model.pth", legacy=legacy)
    assert refused(path, state_dict_only=True) == f"{path}: state_dict['evil'] is not a tensor (os.system)"
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("numpy.core.multiarray", "_reconstruct"), ("numpy", "load"), ("torch", "load"),
    ("torch.storage", "_load_from_bytes"), ("torch._utils", "_rebuild_qtensor"),
    ("torch._tensor", "_rebuild_from_type_v2"), ("mmcv.runner.hooks", "Hook"), ("builtins", "getattr"),
    ("copyreg", "_reconstructor"), ("collections", "namedtuple")])
def test_other_globals_are_refused(tmp_path, module, name):
    path = zip_file(tmp_path / "model.pth", b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")
    assert refused(path) == f"{path}: refuses to load the global {module}.{name} {REFUSAL}"


def test_build_on_an_allowed_function_is_refused(tmp_path):
    # BUILD would set the function's attributes (its __defaults__, for every later load).
    evil = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x0c\x00\x00\x00__defaults__)sb.")
    path = zip_file(tmp_path / "model.pth", evil)
    assert refused(path) == f"{path}: malformed pickle: BUILD on torch._utils._rebuild_tensor_v2"
    evil = b"\x80\x02ccollections\nOrderedDict\nN}X\x03\x00\x00\x00fooK\x01s\x86b."
    assert "damaged pickle" in refused(zip_file(tmp_path / "model.pth", evil))
    assert not hasattr(collections.OrderedDict, "foo")
    test_reads_pytorch_files_exactly("tiny_zip.pth")


# ---------------------------------------------------------------------------------------------
# state_dict_only: checkpoints holding objects of other classes (mmengine).

def test_state_dict_only_skips_mmengine_objects(tmp_path):
    written, want = mmdet_checkpoint()
    written["meta"]["lr"] = np.float64(0.25)  # pickled by NumPy: numpy.core.multiarray.scalar
    written["message_hub"] = {"log_scalars": {"train/loss": tf.Call(
        "mmengine.logging.history_buffer", "HistoryBuffer", (), {"max_length": 1000, "_log_history": [0.5]})}}
    for legacy in (False, True):
        path = tf.save_pth(written, tmp_path / "mmengine.pth", legacy=legacy)
        assert refused(path) == f"{path}: refuses to load the global numpy.core.multiarray.scalar {REFUSAL}"
        assert_same(load_pth(path, state_dict_only=True), want["state_dict"])


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_skip_foreign_keeps_meta_and_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "pwned"
    written, want = mmdet_checkpoint()
    written["meta"]["lr"] = np.float64(0.25)
    written["meta"]["hook"] = tf.Call("os", "system", (f"touch '{marker}'",))
    written["message_hub"] = {"log_scalars": {"train/loss": tf.Call(
        "mmengine.logging.history_buffer", "HistoryBuffer", (), {"max_length": 1000, "_log_history": [0.5]})}}
    path = tf.save_pth(written, tmp_path / "mmengine.pth", legacy=legacy)
    got = load_pth(path, skip_foreign=True)
    assert_same(got["state_dict"], want["state_dict"])
    assert got["meta"]["lr"] is None and got["meta"]["hook"] is None
    assert got["message_hub"] == {"log_scalars": {"train/loss": None}}
    assert {k: v for k, v in got["meta"].items() if k not in ("lr", "hook")} == \
        {k: v for k, v in want["meta"].items() if k not in ("lr", "hook")}
    assert not marker.exists()


def test_state_dict_only_of_a_bare_state_dict(tmp_path):
    state = collections.OrderedDict([("w", np.ones((2, 2), np.float32)), ("b", np.zeros(2, np.float32))])
    path = tf.save_pth(state, tmp_path / "bare.pth")
    assert_same(load_pth(path, state_dict_only=True), state)
    assert_same(load_pth(path), state)


@pytest.mark.parametrize("obj, problem", [
    ({"meta": {"epoch": 1}}, "no state_dict in the checkpoint (it holds 'meta')"),
    ([np.ones(2, np.float32)], "no state_dict in the checkpoint (it holds list)"),
    ({"state_dict": [1]}, "state_dict is not a dict"),
    ({"state_dict": {"w": 3}}, "state_dict['w'] is not a tensor (int)"),
    ({"state_dict": {1: np.ones(1, np.float32)}}, "state_dict key 1 is not a string"),
])
def test_state_dict_only_problems(tmp_path, obj, problem):
    path = tf.save_pth(obj, tmp_path / "x.pth")
    assert refused(path, state_dict_only=True) == f"{path}: {problem}"


# ---------------------------------------------------------------------------------------------
# Files that are not checkpoints, or damaged ones.

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^PyTorch checkpoint not found: .*nope\.pth$"):
        load_pth(tmp_path / "nope.pth")


def test_a_folder(tmp_path):
    assert "cannot read the file" in refused(tmp_path)


def other_files(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    import mxnet as mx

    params = tmp_path / "model.params"
    mx.nd.save(str(params), {"arg:conv0_weight": mx.nd.ones((2, 3))})
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        info = tarfile.TarInfo("storages")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    npy = io.BytesIO()
    np.save(npy, np.ones(3))
    torchscript = io.BytesIO()
    with zipfile.ZipFile(torchscript, "w") as archive:
        archive.writestr("model/constants.pkl", pickle.dumps(()))
        archive.writestr("model/code/__torch__.py", "")
    no_pickle = io.BytesIO()
    with zipfile.ZipFile(no_pickle, "w") as archive:
        archive.writestr("archive/readme.txt", "hello")
    not_checkpoint = "not a PyTorch checkpoint (neither torch.save's zip archive nor its legacy format)"
    return {
        "empty": (b"", "empty file, not a PyTorch checkpoint"),
        "text": (b"model = dict(type='SSD')\n", not_checkpoint),
        "random": (np.random.default_rng(0).bytes(5000), not_checkpoint),
        "npy": (npy.getvalue(), not_checkpoint),
        "mxnet": (params.read_bytes(), "an MXNet .params file, not a PyTorch checkpoint"),
        "tar": (tar.getvalue(), "a tar archive; PyTorch's tar format (before 0.4) is not supported"),
        "pickle": (pickle.dumps({"state_dict": {}}, 2),
                   "a pickle file without torch.save's magic number, not a PyTorch checkpoint"),
        "pickle4": (pickle.dumps([1, 2], 4),
                    "a pickle file without torch.save's magic number, not a PyTorch checkpoint"),
        "torchscript": (torchscript.getvalue(), "a TorchScript archive (torch.jit.save), not a torch.save checkpoint"),
        "zip": (no_pickle.getvalue(), "a zip archive without data.pkl, not a torch.save checkpoint"),
    }


def test_files_of_other_kinds(tmp_path):
    for kind, (data, problem) in other_files(tmp_path).items():
        path = tmp_path / f"{kind}.pth"
        path.write_bytes(data)
        assert refused(path) == f"{path}: {problem}", kind


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_every_truncation(tmp_path, name):
    data = (FIXTURES / name).read_bytes()
    for length in range(len(data)):
        path = tmp_path / f"{length}.pth"  # a new file each time: rewriting one is slow on some disks
        path.write_bytes(data[:length])
        message = refused(path)
        if length >= 4 and name == "tiny_zip.pth":
            assert message.startswith(f"{path}: truncated or damaged zip archive ("), message
        elif length >= 2 and name == "tiny_legacy.pth":
            assert "truncated" in message, message


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_every_flipped_byte_loads_or_is_refused_in_one_line(tmp_path, name):
    data = (FIXTURES / name).read_bytes()
    outcomes = collections.Counter()
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        path = tmp_path / f"{position}.pth"
        path.write_bytes(bytes(damaged))
        try:
            load_pth(path)
            outcomes["loaded"] += 1
        except ValueError as err:
            assert str(err).startswith(f"{path}: ") and "\n" not in str(err), (position, str(err))
            outcomes["refused"] += 1
    assert outcomes["refused"] > len(data) // 4, outcomes


def test_damaged_zip_records(tmp_path):
    real = FIXTURES / "tiny_zip.pth"
    data = real.read_bytes()
    flipped = bytearray(data)
    flipped[data.find(expected()["a.weight"].tobytes())] ^= 0x01
    path = tmp_path / "crc.pth"
    path.write_bytes(bytes(flipped))
    assert refused(path).startswith(f"{path}: cannot read data/0 from the zip archive (Bad CRC-32")
    short = rezip(real, tmp_path / "short.pth", {"data/0": expected()["a.weight"].tobytes()[:12]})
    assert refused(short) == f"{short}: data/0 holds 12 bytes where its storage has 24"
    missing = tmp_path / "missing.pth"
    with zipfile.ZipFile(real) as zin, zipfile.ZipFile(missing, "w") as zout:
        for info in zin.infolist():
            if info.filename != "tiny_zip/data/1":
                zout.writestr(info.filename, zin.read(info))
    assert refused(missing) == f"{missing}: data/1 is missing from the zip archive"
    order = rezip(real, tmp_path / "order.pth", {"byteorder": b"middle"})
    assert refused(order) == f"{order}: unknown byte order 'middle'"


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("tensor, problem", [
    (tf.TensorView(np.zeros(6, np.float32), 0, (2, 4), (4, 1)),
     "a tensor of size (2, 4), stride (4, 1) from element 0 needs 8 elements of storage '0', which has 6"),
    (tf.TensorView(np.zeros(6, np.float32), 5, (2,), (1,)),
     "a tensor of size (2,), stride (1,) from element 5 needs 7 elements of storage '0', which has 6"),
    (tf.TensorView(np.zeros(2, np.float32), 0, (1000,), (0,)),
     "a tensor of 1000 elements over storage '0' of 2 (broadcast views are not supported)"),
    (tf.TensorView(np.zeros(2, np.int8), 0, (2,), (1,), storage_type="QInt8Storage"),
     "unsupported tensor type torch.QInt8Storage (supported: FloatStorage, DoubleStorage, HalfStorage, "
     "BFloat16Storage, LongStorage, IntStorage, ShortStorage, CharStorage, ByteStorage, BoolStorage, "
     "ComplexFloatStorage, ComplexDoubleStorage, UntypedStorage)"),
    (tf.TensorView(np.zeros(2, np.float32), 0, (2,), (1,), metadata={"neg": True}),
     "unsupported tensor metadata {'neg': True}"),
    (tf.TensorView(np.zeros(2, np.float32), 0, (2, 1), (1,)),
     "malformed tensor: size (2, 1) and stride (1,) differ in length"),
    (tf.TensorView(np.zeros(2, np.float32), 0, (-2,), (1,)),
     "malformed tensor: size (-2,) is not a tuple of counts"),
    (tf.Call("torch._utils", "_rebuild_parameter", (1,)),
     "malformed call of torch._utils._rebuild_parameter (_rebuild_parameter() missing 2 required "
     "positional arguments: 'requires_grad' and 'backward_hooks')"),
    (tf.Call("torch._utils", "_rebuild_parameter", (1, True, None)), "malformed parameter: its data is 1"),
])
def test_malformed_tensors(tmp_path, legacy, tensor, problem):
    path = tf.save_pth({"t": tensor}, tmp_path / "bad.pth", legacy=legacy)
    if legacy and "storage '0'" in problem:  # the storage's key as the file has it
        problem = problem.replace("storage '0'", f"storage '{legacy_parts(path.read_bytes())[1][0][0]}'")
    assert refused(path) == f"{path}: {problem}"


def test_empty_metadata_is_fine(tmp_path):
    path = tf.save_pth({"t": tf.TensorView(np.arange(3, dtype=np.float32), 1, (2,), (1,), metadata={})},
                       tmp_path / "ok.pth")
    assert_same(load_pth(path), {"t": np.array([1, 2], np.float32)})


def test_views_cannot_multiply_memory(tmp_path):
    storage = np.zeros(16384, np.float32)  # 64 KiB: 300 full views would make 19 MiB of arrays
    views = {f"v{i}": tf.TensorView(storage, 0, (16384,), (1,)) for i in range(300)}
    path = tf.save_pth(views, tmp_path / "views.pth")
    assert path.stat().st_size < 150_000
    assert refused(path) == (f"{path}: a tensor of size (16384,) would take the arrays past 16 times "
                             "the stored data (views over views)")
    assert len(load_pth(tf.save_pth(dict(list(views.items())[:16]), tmp_path / "few.pth"))) == 16


def test_legacy_storage_problems(tmp_path):
    data = (FIXTURES / "tiny_legacy.pth").read_bytes()
    pickles, storages, _ = legacy_parts(data)
    start = sum(len(p[0]) for p in pickles)
    huge = bytearray(data)
    huge[start:start + 8] = struct.pack("<q", 2 ** 40)
    path = tmp_path / "huge.pth"
    path.write_bytes(bytes(huge))
    assert refused(path) == (f"{path}: truncated: storage '{storages[0][0]}' needs {2 ** 42} bytes, "
                             f"{len(data) - start - 8} are left")
    # A view of PyTorch before 1.0 (view_metadata in place of None): the first storage's persistent id.
    old = data.replace(b"K\x06Nt", b"K\x06(X\x01\x00\x00\x00vK\x00K\x02tt", 1)
    path.write_bytes(old)
    assert refused(path) == f"{path}: storage views of PyTorch before 1.0 are not supported"
    unused = legacy_file(pickle.dumps({}, 2), ["123"])
    path.write_bytes(unused)
    assert refused(path) == f"{path}: storage '123' is listed but no tensor uses it"
    wrong = data.replace(pickles[1][0], pickle.dumps(1000, 2), 1)
    path.write_bytes(wrong)
    assert refused(path) == f"{path}: unsupported legacy protocol version 1000"
