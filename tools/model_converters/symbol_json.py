"""MXNet ``-symbol.json`` files read as plain data.

A symbol file is untrusted input: it is parsed with ``json`` and validated
here, never handed to MXNet to build or run. Files from every MXNet version
mxnet-ssd was used with are accepted: node attributes under ``attrs`` (MXNet
1.x), ``attr`` or ``param`` (0.x), operators with or without the
``_contrib_`` prefix, inputs as ``[node, output]`` or ``[node, output,
version]``.

>>> graph = read_symbol("model/ssd_300-symbol.json")        # doctest: +SKIP
>>> graph.find("MultiBoxDetection")[0].attrs["nms_topk"]     # doctest: +SKIP
'400'
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Union
from common.fileio import PathLike

__all__ = ["Node", "SymbolGraph", "parse_bool", "parse_float", "parse_floats", "parse_int", "parse_ints",
           "parse_symbol", "read_symbol", "single", "spatial_sizes"]

_ATTR_KEYS = ("param", "attr", "attrs")  # oldest first: later ones win
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Node:
    """One node of a symbol graph.

    Attributes
    ----------
    index : int
        Position in the file's node list (inputs always come earlier).
    op : str
        Operator name without MXNet's ``_contrib_`` prefix; ``'null'`` for a
        variable (data or a parameter).
    name : str
    attrs : mapping of str to str
        Operator arguments and attributes, as the file spells them.
    inputs : tuple of (int, int)
        ``(node index, output index)`` of each input.
    source : str
        The file, for messages.
    """

    index: int
    op: str
    name: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[tuple[int, int], ...] = ()
    source: str = "<symbol>"


class SymbolGraph:
    """The nodes of a symbol file, in the file's (topological) order.

    Parameters
    ----------
    nodes : sequence of Node
        Every input refers to an earlier node.
    heads : sequence of (int, int)
        The graph's outputs.
    path : str
        The file, for messages.
    """

    def __init__(self, nodes: Iterable[Node], heads: Iterable[tuple[int, int]], path: str = "<symbol>") -> None:
        self.nodes = tuple(nodes)
        self.heads = tuple(heads)
        self.path = path

    def input(self, node: Node, i: int) -> Node:
        """The node feeding input ``i`` of ``node``.

        Raises
        ------
        ValueError
            ``node`` has fewer inputs.
        """
        if i >= len(node.inputs):
            raise ValueError(f"{self.path}: {node.op} node {node.name!r} has {len(node.inputs)} inputs, "
                             f"expected at least {i + 1}")
        return self.nodes[node.inputs[i][0]]

    def inputs(self, node: Node) -> list[Node]:
        return [self.nodes[i] for i, _ in node.inputs]

    def find(self, op: str) -> list[Node]:
        """Every node of operator ``op`` (without the ``_contrib_`` prefix)."""
        return [n for n in self.nodes if n.op == op]

    def ancestors(self, nodes: Iterable[Node]) -> set[int]:
        """Indices of ``nodes`` and of every node they depend on."""
        seen: set[int] = set()
        stack = [n.index for n in nodes]
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(j for j, _ in self.nodes[i].inputs)
        return seen


def read_symbol(path: PathLike) -> SymbolGraph:
    """Read and validate an MXNet symbol file.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable, not JSON, or not an MXNet symbol graph (the message names
        the file and the problem).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"symbol file not found: {name}") from None
    except OSError as err:
        raise ValueError(f"cannot read symbol file {name}: {err.strerror or err}") from None
    return parse_symbol(data, name)


def parse_symbol(data: Union[bytes, str], name: str = "<symbol>") -> SymbolGraph:
    """Parse and validate the text of a symbol file (``Symbol.tojson()``); ``name`` is
    used in messages.

    Raises
    ------
    ValueError
        Not JSON, or not an MXNet symbol graph.
    """
    try:
        doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{name} is not an MXNet symbol file: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
        raise ValueError(f"{name} is not an MXNet symbol file: no list of nodes")
    nodes = [_node(name, i, raw) for i, raw in enumerate(doc["nodes"])]
    heads = doc.get("heads", [[len(nodes) - 1, 0]])
    if not isinstance(heads, list) or not heads:
        raise ValueError(f"{name} is not an MXNet symbol file: no heads")
    return SymbolGraph(nodes, [_entry(name, h, len(nodes), "heads") for h in heads], name)


def _node(path: str, index: int, raw: object) -> Node:
    where = f"{path} is not an MXNet symbol file: node {index}"
    if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) or not isinstance(raw.get("name"), str):
        raise ValueError(f"{where} has no op and name")
    attrs: dict[str, str] = {}
    for key in _ATTR_KEYS:
        values = raw.get(key, {})
        if not isinstance(values, dict):
            raise ValueError(f"{where} ({raw['name']!r}) has malformed {key!r}")
        attrs.update({str(k): str(v) for k, v in values.items()})
    inputs = raw.get("inputs", [])
    if not isinstance(inputs, list):
        raise ValueError(f"{where} ({raw['name']!r}) has malformed inputs")
    entries = tuple(_entry(path, e, index, f"node {index} ({raw['name']!r}) inputs") for e in inputs)
    op = raw["op"]
    return Node(index, op[len("_contrib_"):] if op.startswith("_contrib_") else op, raw["name"], attrs, entries, path)


def _entry(path: str, raw: object, limit: int, where: str) -> tuple[int, int]:
    """``[node, output(, version)]`` referring to a node before ``limit``."""
    if (not isinstance(raw, list) or not 2 <= len(raw) <= 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
            or not 0 <= raw[0] < limit or raw[1] < 0):
        raise ValueError(f"{path} is not an MXNet symbol file: {where} has a bad entry {raw!r}")
    return raw[0], raw[1]


# ---------------------------------------------------------------------- attributes
def single(x: float) -> float:
    """``x`` in single precision: MXNet's operators parse float arguments as float32, so
    two spellings of a value are the same argument when they agree here."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _fail(node: Node, key: str, value: str, kind: str) -> ValueError:
    return ValueError(f"{node.source}: {node.op} node {node.name!r}: {key}={value!r} is not {kind}")


def parse_floats(node: Node, key: str, default: Optional[tuple[float, ...]] = None) -> tuple[float, ...]:
    """A tuple attribute such as ``"(0.1, 0.141)"``, ``"[1,2]"`` or ``"0.5"``."""
    if key not in node.attrs:
        if default is None:
            raise ValueError(f"{node.source}: {node.op} node {node.name!r} has no {key}")
        return default
    text = node.attrs[key].strip()
    inner = text[1:-1] if text[:1] in "([" and text[-1:] in ")]" else text
    parts = [p.strip() for p in inner.split(",") if p.strip()]
    if not parts or not all(_NUMBER.match(p) for p in parts):
        raise _fail(node, key, text, "a list of numbers")
    values = tuple(float(p) for p in parts)
    if not all(math.isfinite(v) for v in values):
        raise _fail(node, key, text, "a list of finite numbers")
    return values


def parse_ints(node: Node, key: str, default: Optional[tuple[int, ...]] = None) -> tuple[int, ...]:
    """A tuple of integers such as ``"(3, 3)"``."""
    values = parse_floats(node, key, None if default is None else tuple(float(v) for v in default))
    if not all(v == int(v) for v in values):
        raise _fail(node, key, node.attrs[key], "a list of integers")
    return tuple(int(v) for v in values)


def parse_float(node: Node, key: str, default: Optional[float] = None) -> float:
    values = parse_floats(node, key, None if default is None else (default,))
    if len(values) != 1:
        raise _fail(node, key, node.attrs[key], "a number")
    return values[0]


def parse_int(node: Node, key: str, default: Optional[int] = None) -> int:
    values = parse_ints(node, key, None if default is None else (default,))
    if len(values) != 1:
        raise _fail(node, key, node.attrs[key], "an integer")
    return values[0]


def parse_bool(node: Node, key: str, default: bool) -> bool:
    """``True``/``False``/``1``/``0`` (any case)."""
    if key not in node.attrs:
        return default
    text = node.attrs[key].strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _fail(node, key, node.attrs[key], "a boolean")


# ---------------------------------------------------------------------- shapes
#: Operators whose output has the spatial size of their (first sized) input.
_SIZE_PRESERVING = frozenset({"Activation", "BatchNorm", "identity", "_copy", "Dropout", "elemwise_add", "_Plus",
                              "_plus", "broadcast_add", "broadcast_plus", "broadcast_mul", "L2Normalization",
                              "LeakyReLU", "relu", "clip", "Concat", "concat"})


def _window(size: int, kernel: int, stride: int, pad: int, dilate: int = 1, ceil: bool = False) -> int:
    span = size + 2 * pad - dilate * (kernel - 1) - 1
    return (-(-span // stride) if ceil else span // stride) + 1


def spatial_sizes(graph: SymbolGraph, side: int, data: str = "data",
                  nodes: Optional[Iterable[Node]] = None) -> dict[int, tuple[int, int]]:
    """``(height, width)`` of the outputs of the image-shaped nodes for a ``side`` x
    ``side`` input, computed from the convolution and pooling arguments alone.

    Parameters
    ----------
    graph : SymbolGraph
    side : int
        Input height and width.
    data : str
        The input variable.
    nodes : iterable of Node, optional
        Only these and their ancestors (default: every node).

    Returns
    -------
    dict
        Node index -> size, for the input, convolutions, poolings and the
        size-preserving operators after them (activations, BN, sums,
        concatenations, ...). Other nodes are left out.

    Raises
    ------
    ValueError
        A map shrinks to nothing, or a concatenation or sum of maps of
        different sizes.
    """
    wanted = graph.ancestors(nodes) if nodes is not None else set(range(len(graph.nodes)))
    sizes: dict[int, tuple[int, int]] = {}
    for node in graph.nodes:
        if node.index not in wanted:
            continue
        if node.op == "null":
            if node.name == data:
                sizes[node.index] = (side, side)
            continue
        known = [sizes[i] for i, _ in node.inputs if i in sizes]
        if not known:
            continue
        h, w = known[0]
        if node.op == "Convolution" or (node.op == "Pooling" and not parse_bool(node, "global_pool", False)):
            k = parse_ints(node, "kernel")
            s, p, d = (parse_ints(node, key, (default,) * len(k)) for key, default in
                       (("stride", 1), ("pad", 0), ("dilate", 1)))
            if not len(k) == len(s) == len(p) == len(d) == 2 or min(k + s + d) < 1 or min(p) < 0:
                raise ValueError(f"{graph.path}: {node.op} node {node.name!r} has kernel {k}, stride {s}, pad {p}, "
                                 f"dilate {d}: not a 2-d window")
            ceil = node.op == "Pooling" and node.attrs.get("pooling_convention", "valid") == "full"
            out = tuple(_window(n, *args, ceil=ceil) for n, args in zip((h, w), zip(k, s, p, d)))
        elif node.op == "Pooling":  # global
            out = (1, 1)
        elif node.op in _SIZE_PRESERVING:
            if node.op in ("Concat", "concat", "elemwise_add", "_Plus", "_plus") and len(set(known)) > 1:
                raise ValueError(f"{graph.path}: {node.op} node {node.name!r} joins maps of different sizes "
                                 f"{sorted(set(known))} at input size {side}")
            out = (h, w)
        else:
            continue
        if min(out) < 1:
            raise ValueError(f"{graph.path}: the output of {node.op} node {node.name!r} shrinks to nothing at "
                             f"input size {side}")
        sizes[node.index] = out
    return sizes
