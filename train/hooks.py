"""The side tasks of a training run, one hook each (detectron2's ``HookBase``).

:class:`train.trainer.Trainer` calls every hook, in order, at each point of
its loop: ``before_train``, ``before_epoch``, ``before_step``,
``before_update`` (gradients computed, weights not yet changed),
``after_step``, ``after_epoch``, ``after_train`` (always, also after an
error), and ``on_interrupt`` (Ctrl-C). A hook reads and changes the trainer's
state (``trainer.epoch``, ``.batch``, ``.step``, ``.lr``, the config ...) and
keeps its own.
"""
from __future__ import annotations

import logging
import math
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .checkpoints import read_best, save_best

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["HookBase", "InterruptCheckpointer", "LRScheduler", "NonFiniteGuard", "NonFiniteLossError",
           "PeriodicCheckpointer", "ProgressLogger", "Validation", "format_duration", "learning_rate"]

logger = logging.getLogger("train.trainer")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class HookBase:
    """A side task of the training loop; override the points it needs."""

    trainer: "Trainer"

    def before_train(self) -> None: ...

    def before_epoch(self) -> None: ...

    def before_step(self) -> None: ...

    def before_update(self) -> None: ...

    def after_step(self) -> None: ...

    def after_epoch(self) -> None: ...

    def after_train(self) -> None: ...

    def on_interrupt(self) -> None: ...


def learning_rate(epoch: int, step_in_epoch: int, steps_per_epoch: int, base_lr: float,
                  lr_steps: tuple[int, ...] = (), lr_factor: float = 0.1, warmup_epochs: float = 0.0) -> float:
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


class LRScheduler(HookBase):
    """Sets the learning rate of every update: a pure function of the epoch and the batch."""

    def before_step(self) -> None:
        t = self.trainer
        c = t.config
        t.set_learning_rate(learning_rate(t.epoch, t.batch, t.steps_per_epoch, c.lr, c.lr_steps, c.lr_factor,
                                          c.warmup_epochs))


class NonFiniteGuard(HookBase):
    """Stops before a NaN or infinite loss changes the weights; the last checkpoint stays."""

    def before_update(self) -> None:
        t = self.trainer
        loss = t.last_losses
        if not np.all(np.isfinite(loss)):
            raise NonFiniteLossError(
                f"the training loss became {loss[0]} at epoch {t.epoch + 1}, batch {t.batch + 1} (step "
                f"{t.step + 1}, lr {t.lr:g}); lower --lr or add --warmup-epochs. The last good checkpoint is "
                f"kept")


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` of a non-negative duration, rounded to the second (``3725.4`` -> ``1:02:05``)."""
    total = int(round(max(seconds, 0.0)))
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


class ProgressLogger(HookBase):
    """Every ``frequent`` batches: speed, mean losses, learning rate and the epoch's ETA;
    after each epoch its summary line."""

    def before_epoch(self) -> None:
        self._tic = self._window_tic = time.perf_counter()
        self._window_images = 0
        self._first_batch = self.trainer.batch

    def after_step(self) -> None:
        t = self.trainer
        self._window_images += t.last_images
        frequent = t.config.frequent
        if not frequent or t.batch % frequent:
            return
        now = time.perf_counter()
        speed = self._window_images / max(now - self._window_tic, 1e-9)
        done = t.batch - self._first_batch
        eta = (t.batches - t.batch) * (now - self._tic) / max(done, 1)  # batches left x mean batch time
        logger.info("Epoch[%d] Batch [%d/%d]\tSpeed: %.1f img/s\tloss=%.5f\tcls=%.5f\tbox=%.5f\tlr=%.6g\teta=%s",
                    t.epoch + 1, t.batch, t.batches, speed, *t.epoch_mean_losses(), t.lr, format_duration(eta))
        self._window_tic, self._window_images = now, 0

    def after_epoch(self) -> None:
        t = self.trainer
        stats = t.history[-1]
        logger.info("Epoch[%d] Train-loss=%.5f\tcls=%.5f\tbox=%.5f\tlr=%.6g\tstep=%d\t%.1f img/s\ttime=%.1fs",
                    stats.epoch, stats.loss, stats.cls_loss, stats.box_loss, stats.lr, stats.step,
                    t.epoch_images / max(stats.seconds, 1e-9), stats.seconds)


class PeriodicCheckpointer(HookBase):
    """Saves every ``checkpoint_interval`` epochs and after the last (worker 0 only)."""

    def after_epoch(self) -> None:
        t = self.trainer
        done = t.epoch + 1
        if t.primary and (done % t.config.checkpoint_interval == 0 or done == t.config.end_epoch):
            t.save(complete=True)


class Validation(HookBase):
    """Every ``val_interval`` epochs and after the last: the VOC mAP of the validation set,
    through the evaluation path of ``evaluate.py``; keeps the best as ``PREFIX-best-EPOCH``.

    Parameters
    ----------
    reader : dataset reader
        The validation set (difficult objects flagged; the metric ignores them).
    batch_size : int
        Images per forward.
    """

    def __init__(self, reader: Any, batch_size: int = 8) -> None:
        self.reader = reader
        self.batch_size = batch_size
        self.best = -math.inf

    def before_train(self) -> None:
        best = read_best(self.trainer.prefix) if self.trainer.resumed else None
        self.best = float(best["mAP"]) if best is not None else -math.inf

    def after_epoch(self) -> None:
        t = self.trainer
        done = t.epoch + 1
        if not t.primary or not (done % t.config.val_interval == 0 or done == t.config.end_epoch):
            return
        from evaluate.evaluation import evaluate_detector

        result = evaluate_detector(t.live_detector(self.batch_size), self.reader, t.config.val_metric)
        t.history[-1].val_map = result.mAP
        logger.info("Epoch[%d] Validation-%s=%.5f", done, t.config.val_metric, result.mAP)
        if result.mAP > self.best and t.weights_finite():
            self.best = result.mAP
            save_best(t.net, t.prefix, done, t.class_names, t.config.val_metric, result.mAP)


class InterruptCheckpointer(HookBase):
    """Ctrl-C loses nothing: the first SIGINT lets the current update finish, then the
    run is saved where it stands (``PREFIX-EPOCH``, marked as taken in the middle of
    the epoch) and ``KeyboardInterrupt`` raised; a second one stops at once.

    An interrupt that reaches the loop another way (raised between updates) is
    saved the same way.
    """

    def __init__(self) -> None:
        self._requested = False
        self._previous: Optional[Any] = None

    def before_train(self) -> None:
        self._requested = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self._requested:  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._requested = True
        logger.warning("interrupted: saving after the current update (Ctrl-C again to stop at once)")

    def after_step(self) -> None:
        if self._requested:
            raise KeyboardInterrupt

    def on_interrupt(self) -> None:
        t = self.trainer
        if not t.primary:
            return
        if t.in_update:
            logger.error("stopped during an update: not saved; the last checkpoint is the latest")
            return
        logger.warning("saving %s", t.describe_position())
        t.save(complete=False)

    def after_train(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

