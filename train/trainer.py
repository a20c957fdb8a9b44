"""The SSD training loop: SGD over one or more contexts, checkpoints, resume, validation.

:func:`fit` trains a network built by :func:`symbol.get_model` on batches from
:func:`dataset.loader.make_loader`. Files written under ``prefix`` (epochs are
*completed* epochs, four digits, as in mxnet-ssd)::

    PREFIX-config.json            network configuration (symbol.checkpoint)
    PREFIX-EPOCH.params           weights after EPOCH epochs (symbol.checkpoint)
    PREFIX-EPOCH.states           SGD state (momentum) of gluon.Trainer.save_states
    PREFIX-EPOCH-state.json       {"epoch", "step", "lr", "complete", ...}
    PREFIX-best-0000.params       weights of the best validation mAP so far,
    PREFIX-best-config.json       loadable with load_checkpoint(PREFIX + "-best", 0)
    PREFIX-best.json              {"epoch", "metric", "mAP"} of that best checkpoint

Every file is written atomically (temporary file, then rename). A checkpoint
is only written when every weight is finite, so a diverging run never
replaces a good checkpoint. ``resume=True`` with ``begin_epoch=N`` loads
``PREFIX-N.params``, ``.states`` and ``-state.json`` and continues with the
same step count, learning rate and momentum.

:func:`finetune_model` starts a new run from another run's checkpoint with a
new class list: every weight but the class heads is kept.

The learning rate is a pure function of the epoch and the step count
(:func:`learning_rate`), set before every update, so a resumed run follows
the schedule of an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from common.fileio import atomic_path, write_json
from symbol.checkpoint import load_checkpoint, params_path, save_checkpoint
from symbol.factory import get_model
from evaluate.metrics import VOCMetric, VOCResult
from symbol.ssd import SSDBase

from .loss import SSDMultiBoxLoss
from .targets import SSDTargetGenerator

__all__ = ["EpochStats", "NonFiniteLossError", "best_prefix", "finetune_model", "fit", "format_duration",
           "learning_rate", "states_path", "state_json_path", "validate", "validation_loss"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class EpochStats:
    """What one epoch did; :func:`fit` returns one per trained epoch."""

    epoch: int  # completed epochs after this one (the checkpoint number)
    loss: float  # mean total training loss per batch
    cls_loss: float
    box_loss: float
    lr: float  # learning rate of the last update
    step: int  # updates so far
    seconds: float
    val_map: Optional[float] = None  # validation mAP (VOC07 unless fit's val_metric says otherwise)
    extra: dict = field(default_factory=dict)


def states_path(prefix: PathLike, epoch: int) -> Path:
    """``PREFIX-EPOCH.states``: the gluon.Trainer state saved with that checkpoint."""
    return params_path(prefix, epoch).with_suffix(".states")


def state_json_path(prefix: PathLike, epoch: int) -> Path:
    """``PREFIX-EPOCH-state.json``: epoch, step count and learning rate of that checkpoint."""
    return Path(f"{os.fspath(prefix)}-{epoch:04d}-state.json")


def best_prefix(prefix: PathLike) -> str:
    """Prefix of the best-validation checkpoint: ``load_checkpoint(best_prefix(p), 0)``."""
    return f"{os.fspath(prefix)}-best"


def learning_rate(epoch: int, step_in_epoch: int, steps_per_epoch: int, base_lr: float,
                  lr_steps: Sequence[int] = (), lr_factor: float = 0.1,
                  warmup_epochs: float = 0.0) -> float:
    """The learning rate of update ``step_in_epoch`` (0-based) of epoch ``epoch`` (0-based).

    ``base_lr * lr_factor ** k`` where ``k`` counts the ``lr_steps`` at or before
    ``epoch``; during the first ``warmup_epochs`` it rises linearly from
    ``base_lr / warmup_updates`` to the scheduled value.
    """
    lr = base_lr * lr_factor ** sum(1 for s in lr_steps if epoch >= s)
    warmup_updates = int(round(warmup_epochs * steps_per_epoch))
    done = epoch * steps_per_epoch + step_in_epoch
    if done < warmup_updates:
        lr *= (done + 1) / warmup_updates
    return float(lr)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` of a non-negative duration, rounded to the second (``3725.4`` -> ``1:02:05``)."""
    total = int(round(max(seconds, 0.0)))
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


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
    net = get_model(config.network, data_shape or config.data_shape, len(class_names), layout=config.layout,
                    preprocess=config.preprocess, ctx=ctx, **dict(config.backbone_kwargs), **dict(config.nms))
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


def _weights_finite(net: SSDBase) -> bool:
    for p in net.collect_params().values():
        data = p.list_data()[0]
        if not np.isfinite(float(mx.nd.sum(data * data).asscalar())):
            return False
    return True


# ---------------------------------------------------------------------- checkpoints
def _save(net: SSDBase, trainer: gluon.Trainer, prefix: PathLike, epoch: int,
          class_names: Sequence[str], step: int, lr: float, complete: bool) -> None:
    if not _weights_finite(net):
        raise NonFiniteLossError(f"the weights are not finite after {step} updates; checkpoint "
                                 f"{params_path(prefix, epoch)} not written (the previous one is kept)")
    save_checkpoint(net, prefix, epoch, class_names)
    with atomic_path(states_path(prefix, epoch)) as tmp:
        trainer.save_states(os.fspath(tmp))
    write_json(state_json_path(prefix, epoch),
               {"epoch": epoch, "step": step, "lr": lr, "complete": complete})


def _load_state(net: SSDBase, trainer: gluon.Trainer, prefix: PathLike, epoch: int,
                ctx: list[mx.Context], steps_per_epoch: int) -> dict:
    """Load ``PREFIX-EPOCH``'s weights and, when saved, the optimizer state; a
    checkpoint without both state files (a converted model) continues with a
    fresh optimizer at step ``epoch * steps_per_epoch``."""
    files = (params_path(prefix, epoch), states_path(prefix, epoch), state_json_path(prefix, epoch))
    if not files[0].is_file():
        raise FileNotFoundError(f"cannot resume from epoch {epoch}: missing {os.fspath(files[0])}")
    try:
        net.load_parameters(os.fspath(files[0]), ctx=ctx)
    except (AssertionError, ValueError, RuntimeError, KeyError, mx.base.MXNetError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot resume: {files[0]} does not fit the network ({first})") from None
    have = [f.is_file() for f in files[1:]]
    if not any(have):
        logger.warning("%s has no optimizer state (a converted model?): SGD starts afresh", files[0])
        return {"epoch": epoch, "step": epoch * steps_per_epoch}
    if not all(have):
        missing = files[1] if not have[0] else files[2]
        raise FileNotFoundError(f"cannot resume from epoch {epoch}: missing {os.fspath(missing)}")
    trainer.load_states(os.fspath(files[1]))
    try:
        state = json.loads(files[2].read_text(encoding="utf-8"))
        int(state["step"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot resume: {files[2]} is damaged ({err})") from None
    return state


# ---------------------------------------------------------------------- the loop
def fit(net: SSDBase, train_loader: Iterable, *, class_names: Sequence[str], prefix: PathLike,
        ctx: Optional[Sequence[mx.Context]] = None, val_loader: Optional[Iterable] = None,
        set_epoch: Optional[Callable[[int], None]] = None,
        lr: float = 0.001, lr_steps: Sequence[int] = (), lr_factor: float = 0.1,
        warmup_epochs: float = 0.0, momentum: float = 0.9, wd: float = 0.0005,
        begin_epoch: int = 0, end_epoch: int = 120, resume: bool = False,
        checkpoint_interval: int = 1, val_interval: int = 1, frequent: int = 20,
        seed: Optional[int] = None, freeze: Optional[str] = None, caffe_bias: bool = True,
        negative_mining_ratio: float = 3.0, hybridize: bool = True,
        kvstore: Union[str, "mx.kvstore.KVStore", None] = None,
        val_metric: str = "voc07") -> list[EpochStats]:
    """Train ``net`` from epoch ``begin_epoch`` to ``end_epoch`` (exclusive bounds as counts
    of completed epochs: epochs ``begin_epoch + 1 .. end_epoch`` are run).

    Parameters
    ----------
    net : SSDBase
        Built by :func:`symbol.get_model`; its parameters are moved to ``ctx``.
    train_loader : iterable of ``(images (B,3,S,S), labels (B,M,6))``
        e.g. :func:`dataset.loader.make_loader` with ``last_batch='rollover'``;
        ``len(train_loader)`` batches an epoch.
    class_names : one name per class, stored in the checkpoint config.
    prefix : checkpoint path prefix (see the module docstring).
    ctx : contexts to split every batch over (data parallel); default ``[cpu()]``.
    val_loader : optional, e.g. ``make_loader(DetectionDataset(reader, size, train=False), ...)``
        (labels with the difficult column); its mAP is computed every
        ``val_interval`` epochs and after the last (:func:`validate`), and the
        best checkpoint kept as ``PREFIX-best``.
    val_metric : ``'voc07'`` (11-point, the default) or ``'voc10'`` (area).
    set_epoch : called with the 0-based epoch index before each epoch (e.g.
        ``DetectionDataset.set_epoch``, for the augmentation and shuffle seeds).
    lr, lr_steps, lr_factor, warmup_epochs : the schedule of :func:`learning_rate`.
    momentum, wd : SGD settings.
    begin_epoch, end_epoch : completed epochs at the start and at the end.
    resume : load ``PREFIX-begin_epoch`` (weights; SGD state and step count when saved) first.
    checkpoint_interval : save every this many epochs (and always after the last).
    frequent : log every this many batches (0: only per epoch): speed over those
        batches, mean losses so far, learning rate, and the epoch's ETA (batches
        left times the mean batch time so far, data loading included).
    seed : seeds MXNet's and NumPy's global generators.
    freeze : regular expression (``re.search``) over parameter names such as
        ``mobilenet0_conv0_weight``; matching parameters are not trained.
    caffe_bias : biases get twice the learning rate and no weight decay (Caffe).
    negative_mining_ratio : negatives per positive (targets and loss).
    hybridize : hybridize the network and the loss.
    kvstore : gradient aggregation: ``None`` (``'device'``), a KVStore type, or a
        KVStore made with ``mx.kv.create``. With a distributed one
        (``dist_sync``, started by ``python -m tools.launch``) every
        worker trains on its own part of the data (:class:`dataset.loader.Shard`,
        same number of batches everywhere), gradients are averaged over all
        workers' images, the starting weights are worker 0's, and only worker
        0 writes checkpoints and runs validation.

    Returns
    -------
    list of EpochStats, one per trained epoch.

    Raises
    ------
    NonFiniteLossError
        NaN or infinite loss (or weights); no checkpoint is written for it.
    ValueError, FileNotFoundError
        Bad arguments, or files missing or damaged for ``resume``.
    KeyboardInterrupt
        After saving ``PREFIX-(epoch+1)`` with ``"complete": false`` in its
        state JSON (resuming from it starts the next epoch).
    """
    ctx = list(ctx) if ctx else [mx.cpu()]
    _check(lr > 0, f"lr must be positive, got {lr}")
    _check(0 <= momentum < 1, f"momentum must be in [0, 1), got {momentum}")
    _check(wd >= 0, f"wd must be >= 0, got {wd}")
    _check(lr_factor > 0, f"lr_factor must be positive, got {lr_factor}")
    _check(warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {warmup_epochs}")
    _check(0 <= begin_epoch < end_epoch, f"need 0 <= begin_epoch < end_epoch, got {begin_epoch} and {end_epoch}")
    _check(checkpoint_interval >= 1, f"checkpoint_interval must be >= 1, got {checkpoint_interval}")
    _check(val_interval >= 1, f"val_interval must be >= 1, got {val_interval}")
    _check(val_metric in ("voc07", "voc10"), f"val_metric must be voc07 or voc10, got {val_metric!r}")
    _check(frequent >= 0, f"frequent must be >= 0, got {frequent}")
    _check(len(class_names) == net.num_classes,
           f"{len(class_names)} class names for a network with {net.num_classes} classes")
    steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
    _check(steps_per_epoch > 0, "the training set gives no batch (fewer images than the batch size?)")
    if seed is not None:
        mx.random.seed(seed)
        np.random.seed(seed)

    frozen = _configure_params(net, freeze, caffe_bias)
    if frozen:
        logger.info("frozen %d parameters matching %r", len(frozen), freeze)
    net.collect_params().reset_ctx(ctx)
    kv = None if kvstore in (None, "device", "local") else (
        mx.kv.create(kvstore) if isinstance(kvstore, str) else kvstore)
    distributed = kv is not None and "dist" in kv.type
    rank, num_workers = (kv.rank, kv.num_workers) if distributed else (0, 1)
    primary = rank == 0
    if distributed:
        logger.info("distributed training (%s): worker %d of %d", kv.type, rank, num_workers)
    # Updates on the workers (not the servers): every worker keeps the SGD
    # state, so checkpoints can store it for --resume.
    trainer = gluon.Trainer(net.collect_params(), "sgd",
                            {"learning_rate": lr, "momentum": momentum, "wd": wd},
                            kvstore=kv if kv is not None else (kvstore or "device"),
                            update_on_kvstore=False if (len(ctx) > 1 or distributed) else None)
    step = 0
    if resume:
        state = _load_state(net, trainer, prefix, begin_epoch, ctx, steps_per_epoch)
        step = int(state["step"])
        logger.info("resumed from %s at step %d", params_path(prefix, begin_epoch), step)
    targets = SSDTargetGenerator(negative_mining_ratio=negative_mining_ratio, variances=net.variances)
    loss_fn = SSDMultiBoxLoss(negative_mining_ratio=negative_mining_ratio)
    if hybridize:
        # Static memory: 8.1 s vs 9.8 s per batch-8 VGG300 step on 2 cores
        # (benchmarks/train_speed.py), on par with GluonCV's training step.
        net.hybridize(static_alloc=True, static_shape=True)
        targets.hybridize()
        loss_fn.hybridize()

    history: list[EpochStats] = []
    best_val = _read_best(prefix) if resume else -math.inf
    cur_lr = learning_rate(begin_epoch, 0, steps_per_epoch, lr, lr_steps, lr_factor, warmup_epochs)
    epoch = begin_epoch
    try:
        for epoch in range(begin_epoch, end_epoch):
            if set_epoch is not None:
                set_epoch(epoch)
            tic = time.perf_counter()
            sums = np.zeros(3)
            n_batches = n_images = 0
            window_tic, window_images = tic, 0
            for i, (data, label) in enumerate(train_loader):
                if i >= steps_per_epoch:
                    break
                cur_lr = learning_rate(epoch, i, steps_per_epoch, lr, lr_steps, lr_factor, warmup_epochs)
                trainer.set_learning_rate(cur_lr)
                parts = _forward_backward(net, targets, loss_fn, data, label, ctx)
                batch = np.sum([p.asnumpy() for p in parts], axis=0) / len(parts)
                if not np.all(np.isfinite(batch)):
                    raise NonFiniteLossError(
                        f"the training loss became {batch[0]} at epoch {epoch + 1}, batch {i + 1} "
                        f"(step {step + 1}, lr {cur_lr:g}); lower --lr or add --warmup-epochs. "
                        f"The last good checkpoint is kept")
                trainer.step(len(parts) * num_workers)  # the mean over every worker's contexts
                step += 1
                sums += batch
                n_batches += 1
                n_images += data.shape[0]
                window_images += data.shape[0]
                if frequent and (i + 1) % frequent == 0:
                    now = time.perf_counter()
                    speed = window_images / max(now - window_tic, 1e-9)
                    eta = (steps_per_epoch - i - 1) * (now - tic) / (i + 1)  # batches left x mean batch time
                    logger.info("Epoch[%d] Batch [%d/%d]\tSpeed: %.1f img/s\tloss=%.5f\tcls=%.5f\t"
                                "box=%.5f\tlr=%.6g\teta=%s", epoch + 1, i + 1, steps_per_epoch, speed,
                                *(sums / n_batches), cur_lr, format_duration(eta))
                    window_tic, window_images = now, 0
            # Finish this worker's last gradient push and pull: a distributed
            # worker that exits with them queued would stall the others.
            mx.nd.waitall()
            seconds = time.perf_counter() - tic
            mean = sums / max(n_batches, 1)
            stats = EpochStats(epoch + 1, float(mean[0]), float(mean[1]), float(mean[2]), cur_lr,
                               step, seconds)
            logger.info("Epoch[%d] Train-loss=%.5f\tcls=%.5f\tbox=%.5f\tlr=%.6g\tstep=%d\t%.1f img/s\t"
                        "time=%.1fs", epoch + 1, *mean, cur_lr, step, n_images / max(seconds, 1e-9), seconds)
            last = epoch + 1 == end_epoch
            if primary and val_loader is not None and ((epoch + 1) % val_interval == 0 or last):
                result = validate(net, val_loader, ctx, class_names, val_metric)
                stats.val_map = result.mAP
                logger.info("Epoch[%d] Validation-%s=%.5f", epoch + 1, val_metric, result.mAP)
                if result.mAP > best_val:
                    best_val = result.mAP
                    _save_best(net, prefix, epoch + 1, class_names, val_metric, best_val)
            if primary and ((epoch + 1) % checkpoint_interval == 0 or last):
                _save(net, trainer, prefix, epoch + 1, class_names, step, cur_lr, complete=True)
            history.append(stats)
    except KeyboardInterrupt:
        if not primary:
            raise
        logger.warning("interrupted during epoch %d: saving %s", epoch + 1, params_path(prefix, epoch + 1))
        try:
            _save(net, trainer, prefix, epoch + 1, class_names, step, cur_lr, complete=False)
        except NonFiniteLossError as err:
            logger.error("%s", err)
        raise
    return history


def _forward_backward(net, targets, loss_fn, data, label, ctx) -> list[mx.nd.NDArray]:
    """One data-parallel forward and backward; returns each context's
    ``[total, cls, box]`` batch loss as a (3,) array."""
    datas = gluon.utils.split_and_load(data, ctx, even_split=False)
    labels = gluon.utils.split_and_load(label, ctx, even_split=False)
    totals, parts = [], []
    with autograd.record():
        for x, y in zip(datas, labels):
            cls_preds, box_preds, anchors = net(x)
            loc_t, loc_m, cls_t = targets(anchors, y, cls_preds)
            total, cls_loss, box_loss = loss_fn(cls_preds, box_preds, cls_t, loc_t, loc_m)
            totals.append(total)
            parts.append(mx.nd.stack(total.sum(), cls_loss.sum(), box_loss.sum()).reshape(-1))
    autograd.backward(totals)
    return [p.as_in_context(mx.cpu()) for p in parts]


def validation_loss(net: SSDBase, loader: Iterable, ctx: Sequence[mx.Context],
                    targets: Optional[SSDTargetGenerator] = None,
                    loss_fn: Optional[SSDMultiBoxLoss] = None) -> float:
    """Mean total loss per batch over ``loader``, batch norm in inference mode."""
    targets = targets or SSDTargetGenerator()
    loss_fn = loss_fn or SSDMultiBoxLoss()
    total, n = 0.0, 0
    with autograd.predict_mode():
        for data, label in loader:
            x, y = data.as_in_context(ctx[0]), label.as_in_context(ctx[0])
            cls_preds, box_preds, anchors = net.raw_predictions(x)
            loc_t, loc_m, cls_t = targets(anchors, y, cls_preds)
            total += float(loss_fn(cls_preds, box_preds, cls_t, loc_t, loc_m)[0].sum().asscalar())
            n += 1
    if n == 0:
        raise ValueError("the validation set gives no batch")
    return total / n


def validate(net: SSDBase, loader: Iterable, ctx: Sequence[mx.Context], class_names: Sequence[str],
             metric: str = "voc07") -> VOCResult:
    """VOC mAP of ``net``'s detections (its own decoding settings) over ``loader``.

    ``loader`` gives ``(images (B,3,S,S), labels (B,M,6))`` with rows ``[class,
    xmin, ymin, xmax, ymax, difficult]`` normalized to [0, 1] (-1 padding), as
    :func:`dataset.loader.make_loader` over a validation
    :class:`~dataset.loader.DetectionDataset` (warp-resize only) gives them.
    Boxes are compared in normalized coordinates: IoU does not change when
    both axes are scaled, so this is the devkit's score in pixels. Difficult
    objects are ignored. Runs on ``ctx[0]`` in inference mode.
    """
    voc = VOCMetric(class_names, metric=metric)
    with autograd.predict_mode():
        for data, label in loader:
            det = net(data.as_in_context(ctx[0])).asnumpy()
            y = label.asnumpy()
            voc.update_batch(det[:, :, 2:6], det[:, :, 0], det[:, :, 1], y[:, :, 1:5], y[:, :, 0],
                             y[:, :, 5] if y.shape[2] > 5 else None)
    if voc.num_images == 0:
        raise ValueError("the validation set gives no batch")
    return voc.get()


def _save_best(net: SSDBase, prefix: PathLike, epoch: int, class_names: Sequence[str], metric: str,
               value: float) -> None:
    if not _weights_finite(net):
        return
    save_checkpoint(net, best_prefix(prefix), 0, class_names)
    write_json(f"{best_prefix(prefix)}.json", {"epoch": epoch, "metric": metric, "mAP": value})
    logger.info("Epoch[%d] new best validation %s %.5f: %s", epoch, metric, value,
                params_path(best_prefix(prefix), 0))


def _read_best(prefix: PathLike) -> float:
    try:
        return float(json.loads(Path(f"{best_prefix(prefix)}.json").read_text(encoding="utf-8"))["mAP"])
    except (OSError, ValueError, KeyError, TypeError):
        return -math.inf


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
