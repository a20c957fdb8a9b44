"""Inference speed of every preset SSD on the CPU, next to GluonCV's SSD300 in the same run.

    python benchmarks/inference.py                                  # all presets, batch 1 and 8
    python benchmarks/inference.py --networks vgg16_reduced:300,mobilenet --batch-sizes 1
    python benchmarks/inference.py --backend none --peer-backend none,MKLDNN
    python benchmarks/inference.py --no-peer --min-time 5

Every network of ``symbol.presets.PRESETS`` (20 classes, random weights) is
hybridized with ``static_alloc`` and ``static_shape`` and timed on a full
forward pass: in-graph preprocessing, backbone, heads, decoding and NMS, up to
the detections being ready. The peer is GluonCV's ``ssd_300_vgg16_atrous_voc``
(random weights, hybridized the same way), run interleaved with each network
so that both see the same machine load; the "vs GluonCV" column is img/s over
the peer's img/s at the same batch size, from the peer's iterations timed
beside that row.

With ``--backend MKLDNN`` (the default) the graphs are hybridized with
``backend='MKLDNN'``: MXNet's subgraph pass fuses conv + bias + BN + ReLU. (The
``MXNET_SUBGRAPH_BACKEND`` variable does not reach Gluon's ``hybridize`` in
MXNet 1.9.1; the flag is the way to get the fusion.) Before timing, each
network's detections are compared with those of the plain hybridized graph on
the same input; a difference above ``--tolerance`` fails that row.

Timing: ``--warmup`` calls first (graph build, weight reorders), then
``--rounds`` rounds; in each round every model runs back to back for at least
``--min-time / --rounds`` seconds (at least one call). A row reports the median
of its calls. Use an otherwise idle machine for figures to quote; the header
prints the load average at the start and the end. ``--threads`` (or
``OMP_NUM_THREADS``) sets the OpenMP threads; the default, all cores, is the
fastest on an idle machine.

Rows are printed on stderr as they are measured, the table on stdout at the
end. Exit status: 0, 1 when a network failed to build or run or its backend
output differed (its row says so), 2 on a bad command line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from tools.benchmarking import parse_networks, set_omp_threads
from tools.cli import ArgumentParser, UsageError, non_negative_int, positive, print_error

_PROG = "inference.py"
BACKENDS = ("none", "MKLDNN")
PEER = "ssd_300_vgg16_atrous_voc"
PEER_SHAPE = 300
NUM_CLASSES = 20
# What the peer expects: ImageNet-normalized RGB (ours take 0..255 pixels).
_PEER_MEAN = (0.485, 0.456, 0.406)
_PEER_STD = (0.229, 0.224, 0.225)






def _int_list(text: str) -> list[int]:
    values = [positive(int)(t.strip()) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers")
    return sorted(set(values))


def _backend_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in BACKENDS:
            raise argparse.ArgumentTypeError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(BACKENDS)}")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Inference img/s of every preset SSD on the CPU, "
                                        f"next to GluonCV's {PEER}.")
    p.add_argument("--networks", default=None,
                   help="comma-separated NAME or NAME:SIZE (default: every preset of symbol.presets.PRESETS)")
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 8], help="comma-separated (default: 1,8)")
    p.add_argument("--backend", choices=BACKENDS, default="MKLDNN",
                   help="graph backend of our networks: 'none' (plain static graph) or 'MKLDNN' "
                        "(subgraph fusion; default)")
    p.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                   help=f"time GluonCV's {PEER} beside each network (default: on)")
    p.add_argument("--peer-backend", type=_backend_list, default=None,
                   help="comma-separated backends of the peer, each timed (default: the same as --backend); "
                        "the ratio column refers to the first")
    p.add_argument("--warmup", type=non_negative_int, default=1,
                   help="untimed calls per model and batch size, after the graph is built (default: 1)")
    p.add_argument("--min-time", type=positive(float), default=2.0,
                   help="seconds of timed calls per model and batch size, at least (default: 2.0)")
    p.add_argument("--rounds", type=positive(int), default=3,
                   help="interleaving rounds, also the least number of timed calls (default: 3)")
    p.add_argument("--threads", type=positive(int), default=None,
                   help="OpenMP threads (sets OMP_NUM_THREADS before MXNet loads; default: the environment's, "
                        "else all cores)")
    p.add_argument("--tolerance", type=positive(float), default=1e-3,
                   help="largest allowed difference between backend and plain detections (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the inputs (default: 0)")
    return p




# --------------------------------------------------------------------------- models
@dataclass
class Model:
    """A hybridized network ready to time."""

    label: str
    data_shape: int
    backend: str
    net: Any  # mx.gluon.HybridBlock
    make_input: Callable[[int], Any]  # batch size -> NDArray
    inputs: dict = field(default_factory=dict)

    def input(self, batch: int):
        if batch not in self.inputs:
            self.inputs.clear()  # one batch size at a time: keep memory flat
            self.inputs[batch] = self.make_input(batch)
        return self.inputs[batch]

    def __call__(self, batch: int) -> None:
        _wait(self.net(self.input(batch)))


def _wait(out) -> None:
    if isinstance(out, (list, tuple)):
        for o in out:
            _wait(o)
    else:
        out.wait_to_read()


def _hybridize(net, backend: str) -> None:
    net.hybridize(backend=None if backend == "none" else backend, static_alloc=True, static_shape=True)


def _pixels(seed: int, batch: int, side: int):
    import mxnet as mx
    import numpy as np

    rng = np.random.RandomState(seed)
    return mx.nd.array(rng.uniform(0, 255, (batch, 3, side, side)).astype("float32"))


def build_ours(name: str, data_shape: int, backend: str, seed: int) -> Model:
    import mxnet as mx

    from symbol import get_model

    mx.random.seed(seed)
    net = get_model(name, data_shape, NUM_CLASSES)
    _hybridize(net, backend)
    return Model(name, data_shape, backend, net, lambda b: _pixels(seed, b, data_shape))


def build_peer(backend: str, seed: int) -> Model:
    import mxnet as mx

    try:
        from gluoncv import model_zoo
    except ImportError as err:
        raise RuntimeError(f"the peer needs gluoncv ({err}); install it or pass --no-peer") from None
    mx.random.seed(seed)
    net = model_zoo.get_model(PEER, pretrained=False, pretrained_base=False)
    net.initialize()
    _hybridize(net, backend)

    def make_input(batch: int):
        x = _pixels(seed, batch, PEER_SHAPE) / 255.0
        mean = mx.nd.array(_PEER_MEAN).reshape((1, 3, 1, 1))
        std = mx.nd.array(_PEER_STD).reshape((1, 3, 1, 1))
        return mx.nd.broadcast_div(mx.nd.broadcast_sub(x, mean), std)

    return Model(f"gluoncv {PEER}", PEER_SHAPE, backend, net, make_input)


def _detections(out):
    """The model's output as one (B, K, 6) NumPy array (GluonCV's ids, scores, boxes joined)."""
    import numpy as np

    if isinstance(out, (list, tuple)):
        return np.concatenate([o.asnumpy() for o in out], axis=-1)
    return out.asnumpy()


def detection_difference(a, b) -> float:
    """Largest difference between two (B, K, 6) detection arrays.

    Row by row when the orders agree; otherwise each row is matched to the
    closest row of the other array (both ways), so that two detections with
    near-equal scores that swap places do not count as a difference.
    """
    import numpy as np

    if a.shape != b.shape:
        return float("inf")
    direct = float(np.abs(a - b).max()) if a.size else 0.0
    if direct == 0.0 or a.size == 0:
        return direct
    worst = 0.0  # never above ``direct``: a row's own counterpart is one of its candidates
    for x, y in zip(a, b):
        d = np.abs(x[:, None, :] - y[None, :, :]).max(axis=-1)  # (K, K)
        worst = max(worst, float(d.min(axis=1).max()), float(d.min(axis=0).max()))
    return worst


def check_backend(model: Model, batch: int) -> float:
    """Max difference between the model's detections and the plain static graph's on one input."""
    x = model.input(batch)
    _hybridize(model.net, "none")
    ref = _detections(model.net(x))
    _hybridize(model.net, model.backend)
    return detection_difference(_detections(model.net(x)), ref)


# --------------------------------------------------------------------------- timing
def time_interleaved(runners: Sequence[Callable[[], None]], warmup: int, min_time: float,
                     rounds: int) -> list[list[float]]:
    """Seconds per call of each runner, the runners taking turns.

    Each runner is called ``warmup`` times untimed; then in each of ``rounds``
    rounds every runner is called back to back until ``min_time / rounds``
    seconds have passed (at least once).
    """
    for run in runners:
        for _ in range(warmup):
            run()
    samples: list[list[float]] = [[] for _ in runners]
    chunk = min_time / rounds
    for _ in range(rounds):
        for run, times in zip(runners, samples):
            spent = 0.0
            while True:
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
                spent += times[-1]
                if spent >= chunk:
                    break
    return samples


@dataclass
class Row:
    label: str
    data_shape: int
    batch: int
    backend: str
    order: int = 0  # position in the network list, for sorting; the peer comes last
    times: list[float] = field(default_factory=list)
    ratio: Optional[float] = None
    note: str = ""

    @property
    def seconds(self) -> Optional[float]:
        return statistics.median(self.times) if self.times else None

    def cells(self) -> list[str]:
        s = self.seconds
        if s is None:
            return [self.label, str(self.data_shape), str(self.batch), self.backend, "-", "-", "-", "-",
                    self.note]
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}x"
        return [self.label, str(self.data_shape), str(self.batch), self.backend, f"{s * 1e3:.1f}",
                f"{self.batch / s:.2f}", str(len(self.times)), ratio, self.note]


_HEADER = ["network", "size", "batch", "backend", "ms/batch", "img/s", "calls", "vs GluonCV", "note"]


def format_table(rows: Sequence[Row]) -> str:
    cells = [_HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEADER) - 1)]
    right = {1, 2, 4, 5, 6, 7}
    lines = []
    for c in cells:
        parts = [c[i].rjust(w) if i in right else c[i].ljust(w) for i, w in enumerate(widths)]
        lines.append("  ".join(parts + [c[-1]]).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


# --------------------------------------------------------------------------- run
def _progress(row: Row) -> None:
    print("  " + "  ".join(c for c in row.cells() if c), file=sys.stderr, flush=True)


def _check(model: Model, batch: int, row: Row, tolerance: float) -> bool:
    """Compare the model's backend graph with the plain one; note the result in ``row``."""
    diff = check_backend(model, batch)
    if diff <= tolerance:
        row.note = f"max diff vs plain graph {diff:.1e}"
        return True
    row.note = f"{model.backend} DIFFERS from the plain graph: max diff {diff:.3g}"
    return False


def run(args: argparse.Namespace, networks: list[tuple[str, int]]) -> int:
    import mxnet as mx

    peer_backends = (args.peer_backend or [args.backend]) if args.peer else []
    if "MKLDNN" in [args.backend] + peer_backends and not mx.runtime.Features().is_enabled("MKLDNN"):
        raise UsageError("this MXNet build has no MKLDNN; use --backend none --peer-backend none")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"mxnet {mx.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', '(unset)')}, load average {load}")
    print(f"ours: {NUM_CLASSES} classes, random weights, backend {args.backend}; peer: "
          + (f"GluonCV {PEER}, backend {', '.join(peer_backends)}" if peer_backends else "none")
          + f"; median of >= {args.rounds} calls and >= {args.min_time:g} s after {args.warmup} warm-up",
          flush=True)
    started = time.perf_counter()
    failed = False
    rows: list[Row] = []
    last = len(networks)  # the peer rows sort after every network
    peers: list[Model] = []
    peer_rows: dict[tuple[str, int], Row] = {}
    for backend in peer_backends:
        try:
            peers.append(build_peer(backend, args.seed))
        except Exception as err:  # a benchmark reports a broken peer and goes on
            rows += [Row(f"gluoncv {PEER}", PEER_SHAPE, b, backend, last,
                         note=f"build failed: {_one_line(err)}") for b in args.batch_sizes]
            failed = True
    for batch in args.batch_sizes:
        for peer in peers:
            peer_rows[(peer.backend, batch)] = Row(peer.label, PEER_SHAPE, batch, peer.backend, last)
    unchecked = [p for p in peers if p.backend != "none"]

    for order, (name, shape) in enumerate(networks):
        try:
            model = build_ours(name, shape, args.backend, args.seed)
        except Exception as err:  # e.g. a backbone still being written: report it in the table
            for batch in args.batch_sizes:
                rows.append(Row(name, shape, batch, args.backend, order, note=f"build failed: {_one_line(err)}"))
                _progress(rows[-1])
            failed = True
            continue
        for batch in args.batch_sizes:
            row = Row(name, shape, batch, args.backend, order)
            rows.append(row)
            try:
                if args.backend != "none" and batch == args.batch_sizes[0]:
                    if not _check(model, batch, row, args.tolerance):
                        failed = True
                        _progress(row)
                        continue
                while unchecked:
                    peer = unchecked.pop(0)
                    failed |= not _check(peer, batch, peer_rows[(peer.backend, batch)], args.tolerance)
                runners = [lambda m=model, b=batch: m(b)] + [lambda p=p, b=batch: p(b) for p in peers]
                samples = time_interleaved(runners, args.warmup, args.min_time, args.rounds)
            except Exception as err:  # out of memory, an operator error: report and go on
                row.note = f"failed: {_one_line(err)}"
                failed = True
                _progress(row)
                continue
            row.times = samples[0]
            for peer, times in zip(peers, samples[1:]):
                peer_rows[(peer.backend, batch)].times += times
            if peers:
                row.ratio = statistics.median(samples[1]) / row.seconds  # same batch size: the img/s ratio
            _progress(row)
        del model

    for batch in args.batch_sizes:
        ref = peer_rows.get((peers[0].backend, batch)) if peers else None
        for peer in peers:
            row = peer_rows[(peer.backend, batch)]
            if row.times and ref is not None and ref.times:
                row.ratio = ref.seconds / row.seconds
            rows.append(row)
    rows.sort(key=lambda r: (r.batch, r.order))
    print()
    print(format_table(rows))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\n{time.perf_counter() - started:.0f} s; load average now {load}")
    return 1 if failed else 0


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit status (0 ok, 1 a network failed or differed, 2 bad usage)."""
    try:
        args = build_parser().parse_args(argv)
        set_omp_threads(args.threads)
        networks = parse_networks(args.networks)
        return run(args, networks)
    except UsageError as err:
        _error(err)
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
