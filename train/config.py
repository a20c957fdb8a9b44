"""The training settings of a run, declared once.

A :class:`TrainConfig` is what ``train.py`` builds from its flags, what every
checkpoint's state file records, and what ``--resume`` restores (a flag given
again overrides the recorded value). Defaults are mxnet-ssd's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from dataset import AUGMENTATIONS

__all__ = ["METRICS", "TrainConfig"]

METRICS = ("voc07", "voc10")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (not what: the network is the checkpoint's config, the data the dataset's).

    Attributes
    ----------
    batch_size : int
        Images per update, over all contexts of a worker.
    lr, lr_steps, lr_factor, warmup_epochs : schedule (:func:`train.trainer.learning_rate`):
        the rate is multiplied by ``lr_factor`` at each epoch of ``lr_steps``, and
        rises linearly over the first ``warmup_epochs``.
    momentum, wd : SGD settings.
    end_epoch : int
        Train until this many epochs are complete.
    seed : int
        Seeds the augmentation, the shuffling and MXNet's generator.
    augment : {'caffe', 'photometric', 'none'}, expand : bool
        The training augmentation (:class:`dataset.loader.DetectionDataset`).
    checkpoint_interval, val_interval : int
        Save, and validate, every this many epochs (and after the last).
    val_metric : {'voc07', 'voc10'}
    frequent : int
        Log progress every this many batches (0: once per epoch).
    freeze : str, optional
        Parameters whose name matches this regular expression are not trained.
    caffe_bias : bool
        Biases get twice the learning rate and no weight decay (Caffe's habit).
    negative_mining_ratio : float
        Negatives per positive in the targets and the loss.
    """

    batch_size: int = 32
    lr: float = 0.001
    lr_steps: tuple[int, ...] = (80, 100)
    lr_factor: float = 0.1
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    wd: float = 0.0005
    end_epoch: int = 120
    seed: int = 0
    augment: str = "caffe"
    expand: bool = True
    checkpoint_interval: int = 1
    val_interval: int = 1
    val_metric: str = "voc07"
    frequent: int = 20
    freeze: Optional[str] = None
    caffe_bias: bool = True
    negative_mining_ratio: float = 3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr_steps", tuple(int(s) for s in self.lr_steps))
        checks = [
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size must be a positive integer"),
            (self.lr > 0, "lr must be positive"),
            (all(s >= 0 for s in self.lr_steps), "lr_steps must be epochs >= 0"),
            (self.lr_factor > 0, "lr_factor must be positive"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.wd >= 0, "wd must be >= 0"),
            (isinstance(self.end_epoch, int) and self.end_epoch >= 1, "end_epoch must be a positive integer"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed must be an integer >= 0"),
            (self.augment in AUGMENTATIONS, f"augment must be one of {AUGMENTATIONS}"),
            (self.checkpoint_interval >= 1, "checkpoint_interval must be >= 1"),
            (self.val_interval >= 1, "val_interval must be >= 1"),
            (self.val_metric in METRICS, f"val_metric must be one of {METRICS}"),
            (self.frequent >= 0, "frequent must be >= 0"),
            (self.negative_mining_ratio > 0, "negative_mining_ratio must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}, got {self.to_dict()}")

    def to_dict(self) -> dict:
        """A JSON-serializable dict (a checkpoint state file's ``train`` entry)."""
        d = dataclasses.asdict(self)
        d["lr_steps"] = list(self.lr_steps)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def differences(self, other: "TrainConfig") -> dict[str, tuple[Any, Any]]:
        """``{name: (self's value, other's value)}`` of the settings that differ."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}
