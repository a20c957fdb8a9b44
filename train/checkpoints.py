"""A training run's files besides the model checkpoint: where training stands, the optimizer, the best.

Beside ``PREFIX-EPOCH.params`` and ``PREFIX-config.json`` (:mod:`symbol.checkpoint`)::

    PREFIX-EPOCH.states           the optimizer's state (SGD momentum): gluon.Trainer.save_states
    PREFIX-EPOCH-state.json       where training stands (:class:`Progress`), written last: a
                                  checkpoint is whole when this file names it
    PREFIX-best-EPOCH.params      the best validation mAP so far (PREFIX-best-config.json beside
    PREFIX-best.json              it); {"epoch", "metric", "mAP"} of that checkpoint

``PREFIX-N`` is a checkpoint of epoch ``N`` (1-based): complete, after ``N``
epochs; or taken in the middle of it (an interrupt), after ``N - 1`` epochs and
``batch`` batches of epoch ``N``, which a resume finishes. Every file is
written atomically, so a run killed at any moment leaves whole checkpoints.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import mxnet as mx
from mxnet import gluon

from common.fileio import PathLike, atomic_path, read_json, write_json
from symbol.checkpoint import params_path, save_checkpoint, state_path
from symbol.ssd import SSDBase

from .config import TrainConfig

__all__ = ["Progress", "best_prefix", "latest_epoch", "load_progress", "read_best", "read_progress",
           "save_best", "save_progress", "states_path"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """Where a run stands at a checkpoint.

    Attributes
    ----------
    epoch : int
        The checkpoint's number: the epoch (1-based) it was taken in or after.
    batch : int
        Batches of that epoch done (all of them when ``complete``).
    batches : int
        Batches in that epoch.
    step : int
        Updates since the run began.
    lr : float
        Learning rate of the last update.
    complete : bool
        The epoch is done.
    train : TrainConfig, optional
        The run's settings (None for checkpoints written before they were recorded).
    """

    epoch: int
    batch: int
    batches: int
    step: int
    lr: float
    complete: bool
    train: Optional[TrainConfig] = None

    @property
    def next_epoch(self) -> int:
        """The 0-based index of the epoch a resume trains first."""
        return self.epoch if self.complete else self.epoch - 1

    @property
    def next_batch(self) -> int:
        """The batch of :attr:`next_epoch` a resume starts at."""
        return 0 if self.complete else self.batch

    def to_dict(self) -> dict:
        d = {"epoch": self.epoch, "batch": self.batch, "batches": self.batches, "step": self.step,
             "lr": self.lr, "complete": self.complete}
        if self.train is not None:
            d["train"] = self.train.to_dict()
        return d

    def describe(self) -> str:
        if self.complete:
            return f"after epoch {self.epoch} (step {self.step})"
        return f"in epoch {self.epoch}, after batch {self.batch} of {self.batches} (step {self.step})"


def states_path(prefix: PathLike, epoch: int) -> Path:
    """``PREFIX-EPOCH.states``: the optimizer state saved with that checkpoint."""
    return params_path(prefix, epoch).with_suffix(".states")


def best_prefix(prefix: PathLike) -> str:
    """Prefix of the best-validation checkpoint: ``load_checkpoint(best_prefix(p), read_best(p)["epoch"])``."""
    return f"{os.fspath(prefix)}-best"


# ---------------------------------------------------------------------- progress
def save_progress(net: SSDBase, trainer: gluon.Trainer, prefix: PathLike, class_names: Sequence[str],
                  progress: Progress) -> None:
    """Write checkpoint ``PREFIX-EPOCH`` with ``progress``: weights and config, the
    optimizer state, then the progress file, which makes it whole."""
    save_checkpoint(net, prefix, progress.epoch, class_names)
    with atomic_path(states_path(prefix, progress.epoch)) as tmp:
        trainer.save_states(os.fspath(tmp))
    write_json(state_path(prefix, progress.epoch), progress.to_dict())
    logger.info("saved %s (%s)", params_path(prefix, progress.epoch), progress.describe())


def read_progress(prefix: PathLike, epoch: int) -> Optional[Progress]:
    """The progress of checkpoint ``PREFIX-EPOCH``; None without a progress file.

    Raises
    ------
    ValueError
        A damaged progress file (the message names it).
    """
    path = state_path(prefix, epoch)
    if not path.is_file():
        return None
    data = read_json(path, "training state file")
    try:
        step = int(data["step"])
        complete = bool(data.get("complete", True))
        batches = int(data.get("batches", 0))
        batch = int(data.get("batch", batches if complete else 0))
        train = TrainConfig.from_dict(data["train"]) if "train" in data else None
        return Progress(epoch=int(data["epoch"]), batch=batch, batches=batches, step=step,
                        lr=float(data.get("lr", 0.0)), complete=complete, train=train)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"training state file {path} is damaged ({err}); resume from another epoch") from None


def latest_epoch(prefix: PathLike) -> Optional[int]:
    """The newest whole checkpoint of ``prefix`` (its progress file and weights exist),
    complete or taken in the middle of an epoch; None if there is none."""
    prefix = Path(prefix)
    pattern = re.compile(re.escape(prefix.name) + r"-(\d{4,})-state\.json$")
    found = []
    for path in prefix.parent.glob(f"{prefix.name}-*-state.json"):
        m = pattern.match(path.name)
        if m and params_path(prefix, int(m.group(1))).is_file():
            found.append(int(m.group(1)))
    return max(found, default=None)


def load_progress(net: SSDBase, trainer: gluon.Trainer, prefix: PathLike, epoch: int, ctx: Sequence[mx.Context],
                  steps_per_epoch: int) -> Progress:
    """Load checkpoint ``PREFIX-EPOCH``'s weights and, when it has them, its optimizer state
    and progress; a checkpoint with neither (a converted model) continues with a fresh
    optimizer, as complete after ``epoch`` epochs of ``steps_per_epoch`` updates.

    Raises
    ------
    FileNotFoundError
        No weights, or only one of the optimizer state and the progress file.
    ValueError
        Weights that do not fit the network, or a damaged progress file.
    """
    files = (params_path(prefix, epoch), states_path(prefix, epoch), state_path(prefix, epoch))
    if not files[0].is_file():
        raise FileNotFoundError(f"cannot resume from epoch {epoch}: missing {os.fspath(files[0])}")
    try:
        net.load_parameters(os.fspath(files[0]), ctx=list(ctx))
    except (AssertionError, ValueError, RuntimeError, KeyError, mx.base.MXNetError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot resume: {files[0]} does not fit the network ({first})") from None
    have = [f.is_file() for f in files[1:]]
    if not any(have):
        logger.warning("%s has no optimizer state (a converted model?): SGD starts afresh", files[0])
        return Progress(epoch=epoch, batch=steps_per_epoch, batches=steps_per_epoch,
                        step=epoch * steps_per_epoch, lr=0.0, complete=True)
    if not all(have):
        missing = files[1] if not have[0] else files[2]
        raise FileNotFoundError(f"cannot resume from epoch {epoch}: missing {os.fspath(missing)}")
    progress = read_progress(prefix, epoch)
    trainer.load_states(os.fspath(files[1]))
    return progress


# ---------------------------------------------------------------------- best
def save_best(net: SSDBase, prefix: PathLike, epoch: int, class_names: Sequence[str], metric: str,
              value: float) -> None:
    """Keep the checkpoint of ``epoch`` as ``PREFIX-best-EPOCH`` (the previous best is removed)."""
    previous = read_best(prefix)
    save_checkpoint(net, best_prefix(prefix), epoch, class_names)
    write_json(f"{best_prefix(prefix)}.json", {"epoch": epoch, "metric": metric, "mAP": value})
    if previous is not None and int(previous.get("epoch", -1)) != epoch:
        old = params_path(best_prefix(prefix), int(previous["epoch"]))
        if old.is_file():
            old.unlink()
    logger.info("Epoch[%d] new best validation %s %.5f: %s", epoch, metric, value,
                params_path(best_prefix(prefix), epoch))


def read_best(prefix: PathLike) -> Optional[dict[str, Any]]:
    """``{"epoch", "metric", "mAP"}`` of the best checkpoint so far, None if there is none."""
    try:
        data = read_json(f"{best_prefix(prefix)}.json", "best checkpoint record")
        float(data["mAP"]), int(data["epoch"])
        return data
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
