"""The SSD training loop: a :class:`Trainer` runs the updates, hooks do everything else.

>>> trainer = Trainer(net, loader, TrainConfig(lr=0.01, end_epoch=40), class_names=names,
...                   prefix="model/ssd", set_epoch=dataset.set_epoch, val_reader=val)   # doctest: +SKIP
>>> history = trainer.train()                                                          # doctest: +SKIP
>>> Trainer(...).train(resume=40)    # continue from model/ssd-0040                    # doctest: +SKIP

:meth:`Trainer.train` is the loop: for every epoch, every batch, the hooks'
``before_step``, :meth:`Trainer.run_step` (forward, targets, loss, backward,
the hooks' ``before_update``, SGD), the hooks' ``after_step``; the hooks
(:mod:`train.hooks`) set the learning rate, log progress, validate and keep
the best, save checkpoints, guard against non-finite losses and save on
Ctrl-C. The files are :mod:`train.checkpoints`'s.

A run is reproducible from its checkpoints: the batches are a function of the
seed and the epoch (:class:`dataset.loader.EpochBatchSampler`), the learning
rate of the epoch and the batch, MXNet's generator is reseeded before every
update, and a checkpoint holds the optimizer's state. Resuming from any
checkpoint, also one taken in the middle of an epoch, gives the weights an
uninterrupted run would have.

:func:`finetune_model` starts a new run from another run's checkpoint with a
new class list: every weight but the class heads is kept.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence, Union

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from common.fileio import PathLike
from symbol.checkpoint import ModelConfig, load_checkpoint, params_path
from symbol.factory import get_model
from symbol.ssd import SSDBase

from . import hooks as hook_types
from .checkpoints import Progress, latest_epoch, load_progress, save_progress
from .config import TrainConfig
from .hooks import HookBase, NonFiniteLossError, format_duration, learning_rate
from .loss import SSDMultiBoxLoss
from .targets import SSDTargetGenerator

__all__ = ["EpochStats", "NonFiniteLossError", "Trainer", "default_hooks", "finetune_model", "format_duration",
           "learning_rate"]

logger = logging.getLogger(__name__)


@dataclass
class EpochStats:
    """What one epoch did; :meth:`Trainer.train` returns one per trained epoch."""

    epoch: int  # completed epochs after this one (the checkpoint number)
    loss: float  # mean total training loss per batch
    cls_loss: float
    box_loss: float
    lr: float  # learning rate of the last update
    step: int  # updates so far
    seconds: float
    val_map: Optional[float] = None  # validation mAP (the config's val_metric)
    extra: dict = field(default_factory=dict)


def default_hooks(val_reader=None, val_batch_size: int = 8) -> list[HookBase]:
    """The hooks of a normal run, in order: learning rate, non-finite guard, progress,
    validation and the best checkpoint (with ``val_reader``), periodic checkpoints,
    Ctrl-C."""
    out: list[HookBase] = [hook_types.LRScheduler(), hook_types.NonFiniteGuard(), hook_types.ProgressLogger()]
    if val_reader is not None:
        out.append(hook_types.Validation(val_reader, val_batch_size))
    out += [hook_types.PeriodicCheckpointer(), hook_types.InterruptCheckpointer()]
    return out


class Trainer:
    """Trains an SSD: SGD over one or more contexts, one worker of a distributed run or alone.

    Parameters
    ----------
    net : SSDBase
        Built by :func:`symbol.get_model`; its parameters are moved to ``ctx``.
    loader : iterable of ``(images (B, 3, S, S), labels (B, M, 6))``
        e.g. :func:`dataset.loader.make_loader` with ``last_batch='rollover'``.
    config : TrainConfig
        The settings; every checkpoint records them.
    class_names : sequence of str
        One per class, stored in the checkpoint config.
    prefix : str or path
        Checkpoint prefix (see :mod:`train.checkpoints`).
    ctx : contexts to split every batch over (data parallel); default ``[cpu()]``.
    kvstore : gradient aggregation: ``None`` (``'device'``), a KVStore type, or a
        KVStore made with ``mx.kv.create``. With a distributed one (``dist_sync``,
        started by ``python -m tools.launch``) every worker trains on its own part
        of the data (:func:`dataset.subset.shard`), gradients are averaged over all
        workers' images, the starting weights are worker 0's, and only worker 0
        writes checkpoints and validates.
    set_epoch : callable, optional
        ``set_epoch(epoch, start_batch)`` before each epoch (0-based), e.g.
        :meth:`dataset.loader.DetectionDataset.set_epoch`: the augmentation and
        the order of the batches, and where a resumed epoch starts. Without it the
        loader is iterated as it is.
    val_reader : dataset reader, optional
        Validated by :class:`train.hooks.Validation` (with the default hooks).
    hooks : sequence of HookBase, optional
        Replace :func:`default_hooks`.
    hybridize : bool
        Hybridize the network, the targets and the loss (static memory).
    """

    def __init__(self, net: SSDBase, loader: Iterable, config: TrainConfig, *, class_names: Sequence[str],
                 prefix: PathLike, ctx: Optional[Sequence[mx.Context]] = None,
                 kvstore: Union[str, "mx.kvstore.KVStore", None] = None,
                 set_epoch: Optional[Callable[..., None]] = None, val_reader=None,
                 hooks: Optional[Sequence[HookBase]] = None, hybridize: bool = True) -> None:
        if len(class_names) != net.num_classes:
            raise ValueError(f"{len(class_names)} class names for a network with {net.num_classes} classes")
        self.net, self.loader, self.config = net, loader, config
        self.class_names = list(class_names)
        self.prefix = prefix
        self.ctx = list(ctx) if ctx else [mx.cpu()]
        self.kvstore = kvstore
        self._set_epoch = set_epoch
        self._hybridize = hybridize
        self.hooks = list(default_hooks(val_reader) if hooks is None else hooks)
        for hook in self.hooks:
            hook.trainer = self
        # state of the loop
        self.epoch = self.batch = self.batches = self.step = 0
        self.lr = config.lr
        self.steps_per_epoch = 0
        self.resumed = False
        self.in_update = False
        self.history: list[EpochStats] = []
        self.last_losses = np.zeros(3)
        self.last_images = self.epoch_images = 0
        self._sums = np.zeros(3)
        self._epoch_steps = 0

    # ------------------------------------------------------------------ the loop
    def train(self, begin_epoch: int = 0, resume: Optional[Union[int, str]] = None) -> list[EpochStats]:
        """Train until ``config.end_epoch`` epochs are complete.

        Parameters
        ----------
        begin_epoch : int
            Epochs already done (a new run: 0).
        resume : int or ``'latest'``, optional
            Continue from checkpoint ``PREFIX-N`` (its weights, optimizer state
            and position, also in the middle of an epoch), or from the newest one.

        Returns
        -------
        list of EpochStats, one per trained epoch.

        Raises
        ------
        NonFiniteLossError
            A NaN or infinite loss; the weights are left as before that update.
        ValueError, FileNotFoundError
            Bad arguments, or files missing or damaged for ``resume``.
        KeyboardInterrupt
            After saving where the run stood (see :class:`train.hooks.InterruptCheckpointer`).
        """
        start = self.prepare(begin_epoch, resume)
        self._call("before_train")
        try:
            for self.epoch in range(start.next_epoch, self.config.end_epoch):
                self._run_epoch(start.next_batch if self.epoch == start.next_epoch else 0)
        except KeyboardInterrupt:
            self._call("on_interrupt")
            raise
        finally:
            self._call("after_train")
        return self.history

    def _run_epoch(self, first_batch: int) -> None:
        self.batch = self.batches = first_batch
        if self._set_epoch is not None:
            self._set_epoch(self.epoch, first_batch)
        self.batches = first_batch + len(self.loader)  # type: ignore[arg-type]
        self._sums, self._epoch_steps, self.epoch_images = np.zeros(3), 0, 0
        tic = time.perf_counter()
        self._call("before_epoch")
        for data, label in self.loader:
            self._call("before_step")
            self.run_step(data, label)
            self._call("after_step")
        # Finish this worker's last gradient push and pull: a distributed worker that
        # exits with them queued would stall the others.
        mx.nd.waitall()
        mean = self.epoch_mean_losses()
        self.history.append(EpochStats(self.epoch + 1, *map(float, mean), self.lr, self.step,
                                       time.perf_counter() - tic))
        self._call("after_epoch")

    def run_step(self, data: mx.nd.NDArray, label: mx.nd.NDArray) -> None:
        """One update: forward over the contexts, targets, loss, backward, SGD."""
        mx.random.seed(self.config.seed * 1_000_003 + self.step)  # reproducible after a resume
        datas = gluon.utils.split_and_load(data, self.ctx, even_split=False)
        labels = gluon.utils.split_and_load(label, self.ctx, even_split=False)
        totals, parts = [], []
        with autograd.record():
            for x, y in zip(datas, labels):
                cls_preds, box_preds, anchors = self.net(x)
                loc_t, loc_m, cls_t = self._targets(anchors, y, cls_preds)
                total, cls_loss, box_loss = self._loss(cls_preds, box_preds, cls_t, loc_t, loc_m)
                totals.append(total)
                parts.append(mx.nd.stack(total.sum(), cls_loss.sum(), box_loss.sum()).reshape(-1))
        autograd.backward(totals)
        self.last_losses = np.sum([p.asnumpy() for p in parts], axis=0) / len(parts)
        self.last_images = int(data.shape[0])
        self._call("before_update")
        self.in_update = True
        self._trainer.step(len(parts) * self._num_workers)  # the mean over every worker's contexts
        self.step += 1
        self.batch += 1
        self.in_update = False
        self._sums += self.last_losses
        self._epoch_steps += 1
        self.epoch_images += self.last_images

    # ------------------------------------------------------------------ set-up
    def prepare(self, begin_epoch: int = 0, resume: Optional[Union[int, str]] = None) -> Progress:
        """Set up the optimizer, the KVStore, the targets and the loss (and load ``resume``'s
        checkpoint); returns where training starts. :meth:`train` calls it; after it,
        :meth:`run_step` may be called directly (as ``benchmarks/train_speed.py`` does)."""
        c = self.config
        if not 0 <= begin_epoch < c.end_epoch:
            raise ValueError(f"need 0 <= begin_epoch < end_epoch, got {begin_epoch} and {c.end_epoch}")
        if self._set_epoch is not None:
            self._set_epoch(0, 0)
        self.steps_per_epoch = len(self.loader)  # type: ignore[arg-type]
        if self.steps_per_epoch <= 0:
            raise ValueError("the training set gives no batch (fewer images than the batch size?)")
        mx.random.seed(c.seed)
        np.random.seed(c.seed)
        frozen = _configure_params(self.net, c.freeze, c.caffe_bias)
        if frozen:
            logger.info("frozen %d parameters matching %r", len(frozen), c.freeze)
        self.net.collect_params().reset_ctx(self.ctx)
        kv = None if self.kvstore in (None, "device", "local") else (
            mx.kv.create(self.kvstore) if isinstance(self.kvstore, str) else self.kvstore)
        distributed = kv is not None and "dist" in kv.type
        self.rank, self._num_workers = (kv.rank, kv.num_workers) if distributed else (0, 1)
        self.primary = self.rank == 0
        if distributed:
            logger.info("distributed training (%s): worker %d of %d", kv.type, self.rank, self._num_workers)
        # Updates on the workers (not the servers): every worker keeps the SGD state, so
        # checkpoints can store it.
        self._trainer = gluon.Trainer(self.net.collect_params(), "sgd",
                                      {"learning_rate": c.lr, "momentum": c.momentum, "wd": c.wd},
                                      kvstore=kv if kv is not None else (self.kvstore or "device"),
                                      update_on_kvstore=False if (len(self.ctx) > 1 or distributed) else None)
        start = Progress(epoch=begin_epoch, batch=0, batches=0, step=0, lr=c.lr, complete=True)
        if resume is not None:
            epoch = latest_epoch(self.prefix) if resume == "latest" else int(resume)
            if epoch is None:
                raise FileNotFoundError(f"--resume latest: no checkpoint of {self.prefix} to resume from")
            start = load_progress(self.net, self._trainer, self.prefix, epoch, self.ctx, self.steps_per_epoch)
            if start.next_epoch >= c.end_epoch:
                raise ValueError(f"{params_path(self.prefix, epoch)} is {start.describe()}: nothing left before "
                                 f"end_epoch {c.end_epoch}; raise --end-epoch")
            self.resumed = True
            logger.info("resumed from %s, %s", params_path(self.prefix, epoch), start.describe())
        self.step, self.lr = start.step, start.lr
        self._targets = SSDTargetGenerator(negative_mining_ratio=c.negative_mining_ratio,
                                           variances=self.net.variances)
        self._loss = SSDMultiBoxLoss(negative_mining_ratio=c.negative_mining_ratio)
        if self._hybridize:
            # Static memory: 8.1 s vs 9.8 s per batch-8 VGG300 step on 2 cores
            # (benchmarks/train_speed.py), on par with GluonCV's training step.
            self.net.hybridize(static_alloc=True, static_shape=True)
            self._targets.hybridize()
            self._loss.hybridize()
        return start

    # ------------------------------------------------------------------ for the hooks
    def _call(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)()

    def set_learning_rate(self, lr: float) -> None:
        self.lr = float(lr)
        self._trainer.set_learning_rate(self.lr)

    def epoch_mean_losses(self) -> np.ndarray:
        """Mean ``[total, cls, box]`` batch loss of the epoch so far."""
        return self._sums / max(self._epoch_steps, 1)

    def describe_position(self) -> str:
        return f"epoch {self.epoch + 1}, after batch {self.batch} of {self.batches} (step {self.step})"

    def weights_finite(self) -> bool:
        for p in self.net.collect_params().values():
            data = p.list_data()[0]
            if not np.isfinite(float(mx.nd.sum(data * data).asscalar())):
                return False
        return True

    def save(self, complete: bool) -> None:
        """Checkpoint ``PREFIX-(epoch + 1)`` where the run stands (worker 0 writes)."""
        if not self.weights_finite():
            raise NonFiniteLossError(f"the weights are not finite after {self.step} updates; checkpoint "
                                     f"{params_path(self.prefix, self.epoch + 1)} not written (the previous one "
                                     f"is kept)")
        save_progress(self.net, self._trainer, self.prefix, self.class_names,
                      Progress(epoch=self.epoch + 1, batch=self.batch, batches=self.batches, step=self.step,
                               lr=self.lr, complete=complete, train=self.config))

    def live_detector(self, batch_size: int):
        """The network being trained as an :class:`evaluate.detector.Detector` (its own
        decoding settings), on the first context, for validation."""
        from evaluate.detector import Detector

        config = ModelConfig.from_net(self.net, self.class_names)
        return Detector(self.net, config, ctx=self.ctx[0], batch_size=batch_size, prepare=False)


# ---------------------------------------------------------------------- fine-tuning
def finetune_model(prefix: PathLike, epoch: int, class_names: Sequence[str], *,
                   data_shape: Optional[int] = None, ctx: Optional[mx.Context] = None) -> SSDBase:
    """The network of checkpoint ``PREFIX-EPOCH`` rebuilt for ``class_names``.

    Network, backbone options, preprocessing and decoding settings come from
    ``PREFIX-config.json``; ``data_shape`` defaults to the checkpoint's. Every
    weight is copied from the checkpoint except the class heads (the
    parameters under ``net.class_head_prefixes``: ``SSD.class_heads``, or the
    convolutions that feed a Caffe graph's class scores), whose shapes depend
    on the class count: they keep the fresh Xavier initialization of
    :func:`symbol.get_model`.

    Raises
    ------
    FileNotFoundError
        The params or the config file of the checkpoint is missing.
    ValueError
        No class names, a damaged checkpoint, or a weight other than the class
        heads whose shape differs at ``data_shape`` (the message names it).
    """
    if len(class_names) == 0:
        raise ValueError("fine-tuning needs at least one class name")
    ctx = ctx or mx.cpu()
    source, config = load_checkpoint(prefix, epoch, ctx=ctx)
    if config.quantized is not None:
        made_from = config.quantized.get("float_checkpoint") or {}
        raise ValueError(f"{params_path(prefix, epoch)} is a {config.quantized['dtype']} checkpoint, which "
                         f"cannot be trained: fine-tune the float checkpoint it was made from"
                         + (f" ({made_from['prefix']}, epoch {made_from['epoch']})" if made_from else ""))
    net = get_model(config.network, data_shape or config.data_shape, len(class_names), layout=config.layout,
                    preprocess=config.preprocess, ctx=ctx, decoding=config.decoding,
                    **dict(config.backbone_kwargs))
    old = source._collect_params_with_prefix()
    for name, param in net._collect_params_with_prefix().items():
        if name.startswith(tuple(net.class_head_prefixes)):
            continue
        if name not in old:
            raise ValueError(f"{params_path(prefix, epoch)} has no weight {name!r} for {config.network} "
                             f"at {net.data_shape}")
        value = old[name].data()
        if value.shape != param.shape:
            raise ValueError(f"weight {name!r} of {params_path(prefix, epoch)} has shape {value.shape}, "
                             f"but {config.network} at {net.data_shape} needs {param.shape}; fine-tune at "
                             f"the checkpoint's data shape ({config.data_shape})")
        param.set_data(value)
    logger.info("fine-tuning %s: %s (%d classes) -> %d classes, class heads re-initialized",
                config.network, params_path(prefix, epoch), config.num_classes, len(class_names))
    return net


# ---------------------------------------------------------------------- parameters
def _configure_params(net: SSDBase, freeze: Optional[str], caffe_bias: bool) -> list[str]:
    """Freeze the parameters whose name matches ``freeze`` (re.search); with
    ``caffe_bias`` biases get twice the learning rate and no weight decay.
    Returns the frozen names."""
    frozen = []
    pattern = None
    if freeze:
        try:
            pattern = re.compile(freeze)
        except re.error as err:
            raise ValueError(f"invalid freeze pattern {freeze!r}: {err}") from None
    for name, p in net.collect_params().items():
        if pattern is not None and pattern.search(name):
            p.grad_req = "null"
            frozen.append(name)
        if caffe_bias and name.endswith("bias"):
            p.lr_mult, p.wd_mult = 2.0, 0.0
    if pattern is not None and not frozen:
        raise ValueError(f"freeze pattern {freeze!r} matches no parameter name (names look like "
                         f"{next(iter(net.collect_params().keys()))!r})")
    return frozen
