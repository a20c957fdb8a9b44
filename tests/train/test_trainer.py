"""The Trainer on a tiny synthetic set: loss goes down, checkpoints, validation through evaluate's path,
exact resume (also from the middle of an epoch), NaN, interrupts, contexts, fine-tuning, progress lines."""
from __future__ import annotations

import json
import logging
import shutil
from itertools import accumulate
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import train.trainer as trainer_mod
from dataset.loader import DetectionDataset, make_loader
from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
from dataset.voc import VOCFolder
from evaluate.detector import Detector
from evaluate.evaluation import evaluate_detector
from symbol import get_model
from symbol.checkpoint import load_checkpoint, mid_epoch_note, params_path, save_checkpoint, state_path
from train.checkpoints import best_prefix, latest_epoch, read_best, states_path
from train.config import TrainConfig
from train.hooks import HookBase, NonFiniteLossError, format_duration, learning_rate
from train.loss import SSDMultiBoxLoss
from train.trainer import Trainer, finetune_model

SIZE = 96
NAMES = list(SYNTHETIC_CLASSES)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    summary = make_synthetic(root, num_images=12, image_size=SIZE, seed=0, force=True,
                             test_fraction=0.25, empty_fraction=0.2)
    assert summary["empty"] > 0  # images without boxes are part of every run below
    return root


def _loader(root: Path, image_set: str = "train", train: bool = False, last_batch: str = "rollover"):
    """Batches of 4; ``train`` turns augmentation and shuffling on."""
    ds = DetectionDataset(VOCFolder(root, NAMES, image_set=image_set), SIZE, train=train, seed=0)
    return ds, make_loader(ds, 4, shuffle=train, last_batch=last_batch)


def _net():
    mx.random.seed(0)
    return get_model("mobilenet", SIZE, num_classes=3, multiplier=0.25)


def _weights(path) -> dict:
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def _trainer(root, prefix, net=None, train=False, last_batch="rollover", hooks=None, **settings) -> Trainer:
    ds, loader = _loader(root, train=train, last_batch=last_batch)
    config = TrainConfig(batch_size=4, lr=settings.pop("lr", 0.01), end_epoch=settings.pop("end_epoch", 1),
                         frequent=settings.pop("frequent", 0), **settings)
    return Trainer(net or _net(), loader, config, class_names=NAMES, prefix=prefix, set_epoch=ds.set_epoch,
                   val_reader=None, hooks=hooks)


def test_learning_rate_schedule():
    assert learning_rate(0, 0, 10, 0.1) == pytest.approx(0.1)
    assert learning_rate(5, 3, 10, 0.1, lr_steps=(5, 8), lr_factor=0.5) == pytest.approx(0.05)
    assert learning_rate(9, 0, 10, 0.1, lr_steps=(5, 8), lr_factor=0.5) == pytest.approx(0.025)
    # warm-up: linear over the first 2 epochs of 10 updates, then the schedule
    assert learning_rate(0, 0, 10, 0.1, warmup_epochs=2) == pytest.approx(0.1 / 20)
    assert learning_rate(1, 9, 10, 0.1, warmup_epochs=2) == pytest.approx(0.1)
    assert learning_rate(2, 0, 10, 0.1, warmup_epochs=2) == pytest.approx(0.1)


def test_loss_goes_down_checkpoints_and_validation(data_root, tmp_path):
    ds, loader = _loader(data_root)
    val = VOCFolder(data_root, NAMES, image_set="test")
    prefix = tmp_path / "ck" / "ssd"
    config = TrainConfig(batch_size=4, lr=0.01, end_epoch=8, seed=0, frequent=1, checkpoint_interval=3)
    history = Trainer(_net(), loader, config, class_names=NAMES, prefix=prefix, set_epoch=ds.set_epoch,
                      val_reader=val).train()
    assert [h.epoch for h in history] == list(range(1, 9))
    assert history[-1].loss < history[0].loss - 0.3, [h.loss for h in history]
    assert all(0.0 <= h.val_map <= 1.0 for h in history), [h.val_map for h in history]
    # 9 images, batch 4, rollover: an epoch takes (carried + 9) // 4 batches and carries the rest
    carried, batches = 0, []
    for _ in range(8):
        batches.append((carried + 9) // 4)
        carried = (carried + 9) % 4
    assert [h.step for h in history] == list(accumulate(batches)) and batches[3] == 3
    # checkpoints every 3 epochs and after the last; nothing temporary left behind
    assert sorted(p.name for p in prefix.parent.glob("ssd-00*.params")) == \
        ["ssd-0003.params", "ssd-0006.params", "ssd-0008.params"]
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".")]
    loaded, saved = load_checkpoint(prefix, 8)
    assert saved.class_names == tuple(NAMES)
    for name, value in _weights(params_path(prefix, 8)).items():
        assert np.isfinite(value).all(), name
    state = json.loads(state_path(prefix, 8).read_text())
    assert state == {"epoch": 8, "batch": batches[-1], "batches": batches[-1], "step": sum(batches),
                     "lr": pytest.approx(0.01), "complete": True, "train": config.to_dict()}
    assert states_path(prefix, 8).is_file() and latest_epoch(prefix) == 8
    # the best validation checkpoint: PREFIX-best-EPOCH.params + PREFIX-best.json, the only one kept
    best = read_best(prefix)
    maps = [h.val_map for h in history]
    assert best == {"epoch": maps.index(max(maps)) + 1, "metric": "voc07", "mAP": pytest.approx(max(maps))}
    assert [p.name for p in prefix.parent.glob("ssd-best-*.params")] == [f"ssd-best-{best['epoch']:04d}.params"]
    # validation is evaluate.py's path: the same mAP from the saved best checkpoint
    net, model = load_checkpoint(best_prefix(prefix), best["epoch"])
    again = evaluate_detector(Detector(net, model, batch_size=8, backend=None), val, "voc07")
    assert again.mAP == pytest.approx(best["mAP"], abs=1e-9)


class _StopAfter(HookBase):
    """Ctrl-C after update ``step`` (between updates, where the signal handler stops)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self) -> None:
        if self.trainer.step == self.step:
            raise KeyboardInterrupt


def test_resume_from_any_checkpoint_is_exact(data_root, tmp_path):
    """Augmented, shuffled, rollover batches and a warm-up: resuming from a complete checkpoint,
    and from one taken in the middle of an epoch, gives the uninterrupted run's weights, bit for bit."""
    settings = dict(train=True, lr=0.01, lr_steps=(3,), lr_factor=0.5, warmup_epochs=1, end_epoch=4)
    full = _trainer(data_root, tmp_path / "a" / "ssd", **settings).train()
    final = params_path(tmp_path / "a" / "ssd", 4).read_bytes()

    # from the complete checkpoint of epoch 2, copied to a fresh prefix
    (tmp_path / "b").mkdir()
    for src in (tmp_path / "a").glob("ssd-0002*"):
        shutil.copy(src, tmp_path / "b" / src.name)
    shutil.copy(tmp_path / "a" / "ssd-config.json", tmp_path / "b" / "ssd-config.json")
    rest = _trainer(data_root, tmp_path / "b" / "ssd", **settings).train(resume=2)
    assert [(h.epoch, h.step, h.lr) for h in rest] == [(h.epoch, h.step, h.lr) for h in full[2:]]
    assert rest[-1].lr == pytest.approx(0.005)
    assert params_path(tmp_path / "b" / "ssd", 4).read_bytes() == final

    # interrupted after update 7, in the middle of epoch 3, then resumed from the newest checkpoint
    stop = _StopAfter(full[1].step + 1)
    interrupted = _trainer(data_root, tmp_path / "c" / "ssd", **settings)
    interrupted.hooks.insert(0, stop)
    stop.trainer = interrupted
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    state = json.loads(state_path(tmp_path / "c" / "ssd", 3).read_text())
    assert (state["epoch"], state["batch"], state["complete"]) == (3, 1, False)
    assert "in the middle of epoch 3 (after batch 1 of" in mid_epoch_note(tmp_path / "c" / "ssd", 3)
    assert latest_epoch(tmp_path / "c" / "ssd") == 3
    _trainer(data_root, tmp_path / "c" / "ssd", **settings).train(resume="latest")
    assert params_path(tmp_path / "c" / "ssd", 4).read_bytes() == final
    assert json.loads(state_path(tmp_path / "c" / "ssd", 3).read_text())["complete"] is True


def test_resume_errors(data_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume from epoch 3"):
        _trainer(data_root, tmp_path / "ssd", end_epoch=4).train(resume=3)
    with pytest.raises(FileNotFoundError, match="no checkpoint of .* to resume from"):
        _trainer(data_root, tmp_path / "ssd", end_epoch=4).train(resume="latest")
    _trainer(data_root, tmp_path / "ssd", end_epoch=1).train()
    with pytest.raises(ValueError, match="nothing left before end_epoch 1"):
        _trainer(data_root, tmp_path / "ssd", end_epoch=1).train(resume=1)


class _NaNLoss(SSDMultiBoxLoss):
    def hybrid_forward(self, F, *args):
        total, cls_loss, box_loss = super().hybrid_forward(F, *args)
        return total * float("nan"), cls_loss, box_loss


def test_nan_loss_stops_and_keeps_the_last_checkpoint(data_root, tmp_path, monkeypatch):
    prefix = tmp_path / "ssd"
    _trainer(data_root, prefix, end_epoch=1).train()
    before = params_path(prefix, 1).read_bytes()
    monkeypatch.setattr(trainer_mod, "SSDMultiBoxLoss", _NaNLoss)
    with pytest.raises(NonFiniteLossError, match="training loss became nan at epoch 2, batch 1"):
        _trainer(data_root, prefix, end_epoch=3).train(resume=1)
    assert params_path(prefix, 1).read_bytes() == before
    assert not params_path(prefix, 2).exists()


def test_keyboard_interrupt_saves_the_current_state(data_root, tmp_path):
    ds, loader = _loader(data_root)

    def set_epoch(epoch, start_batch=0):
        ds.set_epoch(epoch, start_batch)
        if epoch == 1:
            raise KeyboardInterrupt

    prefix = tmp_path / "ssd"
    trainer = Trainer(_net(), loader, TrainConfig(batch_size=4, lr=0.01, end_epoch=3), class_names=NAMES,
                      prefix=prefix, set_epoch=set_epoch)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    state = json.loads(state_path(prefix, 2).read_text())
    assert state["complete"] is False and state["step"] == 2 and state["batch"] == 0
    load_checkpoint(prefix, 2)


def test_images_without_boxes_train(tmp_path):
    root = tmp_path / "empty"
    assert make_synthetic(root, num_images=4, image_size=SIZE, test_fraction=0, empty_fraction=1.0)["empty"] == 4
    history = _trainer(root, tmp_path / "ssd").train()
    assert history[0].loss == 0.0  # no positives, no negatives: MultiBoxTarget ignores every anchor


def test_two_cpu_contexts(data_root, tmp_path):
    ds, loader = _loader(data_root)
    trainer = Trainer(_net(), loader, TrainConfig(batch_size=4, lr=0.01, end_epoch=2), class_names=NAMES,
                      prefix=tmp_path / "ssd", ctx=[mx.cpu(0), mx.cpu(1)], set_epoch=ds.set_epoch)
    history = trainer.train()
    assert np.isfinite(history[-1].loss) and history[-1].step == 4
    load_checkpoint(tmp_path / "ssd", 2)


def test_freeze_and_caffe_bias(data_root, tmp_path):
    net = _net()
    params = net.collect_params()
    # gluon numbers block prefixes per process (mobilenet0_, mobilenet7_, ...): look the names up
    backbone = next(k for k in params.keys() if k.endswith("_conv0_weight")).rsplit("_conv0_", 1)[0]
    frozen, bias, weight = (f"{backbone}_conv0_weight", f"{backbone}_conv1_bias", f"{backbone}_conv1_weight")
    frozen_before = params[frozen].data().asnumpy()
    trained_before = params[weight].data().asnumpy()
    _trainer(data_root, tmp_path / "ssd", net=net, freeze=rf"^{backbone}_conv0_").train()
    np.testing.assert_array_equal(params[frozen].data().asnumpy(), frozen_before)
    assert not np.array_equal(params[weight].data().asnumpy(), trained_before)
    assert params[frozen].grad_req == "null"
    assert (params[bias].lr_mult, params[bias].wd_mult) == (2.0, 0.0)
    assert (params[weight].lr_mult, params[weight].wd_mult) == (1.0, 1.0)
    with pytest.raises(ValueError, match="matches no parameter"):
        _trainer(data_root, tmp_path / "x", freeze="^nothing$").train()


def test_bad_arguments(data_root, tmp_path):
    with pytest.raises(ValueError, match="begin_epoch < end_epoch"):
        _trainer(data_root, tmp_path / "ssd", end_epoch=2).train(begin_epoch=2)
    _, loader = _loader(data_root)
    with pytest.raises(ValueError, match="2 class names"):
        Trainer(_net(), loader, TrainConfig(), class_names=NAMES[:2], prefix=tmp_path / "ssd")
    with pytest.raises(ValueError, match="momentum must be in"):
        TrainConfig(momentum=1.5)
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"lr": 0.1, "colour": "red"})


def test_format_duration():
    assert format_duration(0) == "0:00:00"
    assert format_duration(59.6) == "0:01:00"
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(-3) == "0:00:00"


def test_finetune_keeps_every_weight_but_the_class_heads(data_root, tmp_path, caplog):
    source = _net()
    save_checkpoint(source, tmp_path / "src" / "ssd", 4, NAMES)
    saved = _weights(params_path(tmp_path / "src" / "ssd", 4))  # structural names
    names = NAMES + ["star", "ring"]
    net = finetune_model(tmp_path / "src" / "ssd", 4, names)
    assert net.num_classes == 5 and net.build_args["kwargs"] == source.build_args["kwargs"]
    params = net._collect_params_with_prefix()
    assert params.keys() == saved.keys()
    heads = [k for k in params if k.startswith("class_heads.")]
    assert heads and any(k.startswith("box_heads.") for k in params)
    for name, param in params.items():
        if name in heads:
            assert param.shape[0] == saved[name].shape[0] // 4 * 6, name  # anchors x (classes + 1)
        else:
            np.testing.assert_array_equal(param.data().asnumpy(), saved[name], err_msg=name)
    # then trains like any new network: epoch 0, fresh optimizer, progress lines with the ETA
    ds, loader = _loader(data_root)
    with caplog.at_level(logging.INFO, logger="train.trainer"):
        history = Trainer(net, loader, TrainConfig(batch_size=4, lr=0.01, end_epoch=1, frequent=1),
                          class_names=names, prefix=tmp_path / "new" / "ssd", set_epoch=ds.set_epoch).train()
    assert [(h.epoch, h.step) for h in history] == [(1, 2)] and np.isfinite(history[0].loss)
    assert load_checkpoint(tmp_path / "new" / "ssd", 1)[1].class_names == tuple(names)
    progress = [r.getMessage() for r in caplog.records if "Batch [" in r.getMessage()]
    assert [m.split("\t")[0] for m in progress] == ["Epoch[1] Batch [1/2]", "Epoch[1] Batch [2/2]"]
    assert all("img/s" in m and "cls=" in m and "box=" in m for m in progress)
    assert progress[-1].endswith("eta=0:00:00")  # nothing left after the last batch


def test_finetune_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint params not found"):
        finetune_model(tmp_path / "nothing", 1, NAMES)
    save_checkpoint(_net(), tmp_path / "ssd", 1, NAMES)
    with pytest.raises(ValueError, match="at least one class name"):
        finetune_model(tmp_path / "ssd", 1, [])
