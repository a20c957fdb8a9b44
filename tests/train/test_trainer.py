"""fit() on a tiny synthetic set: loss goes down, checkpoints, resume, NaN, interrupts, contexts,
fine-tuning to a new class list, progress lines."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import train.trainer as trainer_mod
from dataset.loader import DetectionDataset, make_loader
from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
from dataset.voc import VOCFolder
from symbol import get_model
from symbol.checkpoint import load_checkpoint, params_path, save_checkpoint
from train.loss import SSDMultiBoxLoss
from train.trainer import (NonFiniteLossError, best_prefix, finetune_model, fit, format_duration, validate,
                           learning_rate, state_json_path, states_path)

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


def test_learning_rate_schedule():
    assert learning_rate(0, 0, 10, 0.1) == pytest.approx(0.1)
    assert learning_rate(5, 3, 10, 0.1, lr_steps=[5, 8], lr_factor=0.5) == pytest.approx(0.05)
    assert learning_rate(9, 0, 10, 0.1, lr_steps=[5, 8], lr_factor=0.5) == pytest.approx(0.025)
    # warm-up: linear over the first 2 epochs of 10 updates, then the schedule
    assert learning_rate(0, 0, 10, 0.1, warmup_epochs=2) == pytest.approx(0.1 / 20)
    assert learning_rate(1, 9, 10, 0.1, warmup_epochs=2) == pytest.approx(0.1)
    assert learning_rate(2, 0, 10, 0.1, warmup_epochs=2) == pytest.approx(0.1)


def test_loss_goes_down_and_checkpoints_load(data_root, tmp_path):
    ds, loader = _loader(data_root)
    _, val = _loader(data_root, "test", last_batch="keep")
    prefix = tmp_path / "ck" / "ssd"
    net = _net()
    history = fit(net, loader, class_names=NAMES, prefix=prefix, val_loader=val, set_epoch=ds.set_epoch,
                  lr=0.01, end_epoch=8, seed=0, frequent=1, checkpoint_interval=3)
    assert [h.epoch for h in history] == list(range(1, 9))
    assert history[-1].loss < history[0].loss - 0.3, [h.loss for h in history]
    assert all(0.0 <= h.val_map <= 1.0 for h in history), [h.val_map for h in history]
    assert [h.step for h in history] == [2 * e for e in range(1, 9)]  # 9 images, batch 4, rollover
    # checkpoints every 3 epochs and after the last; nothing temporary left behind
    assert sorted(p.name for p in prefix.parent.glob("ssd-00*.params")) == \
        ["ssd-0003.params", "ssd-0006.params", "ssd-0008.params"]
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".")]
    loaded, config = load_checkpoint(prefix, 8)
    assert config.class_names == tuple(NAMES)
    for name, value in _weights(params_path(prefix, 8)).items():
        assert np.isfinite(value).all(), name
    state = json.loads(state_json_path(prefix, 8).read_text())
    assert state == {"epoch": 8, "step": 16, "lr": pytest.approx(0.01), "complete": True}
    assert states_path(prefix, 8).is_file()
    # the best validation checkpoint: PREFIX-best-0000.params + PREFIX-best.json
    best = json.loads(Path(f"{best_prefix(prefix)}.json").read_text())
    maps = [h.val_map for h in history]
    assert best == {"epoch": maps.index(max(maps)) + 1, "metric": "voc07", "mAP": pytest.approx(max(maps))}
    load_checkpoint(best_prefix(prefix), 0)


def test_validate_scores_detections_with_the_voc07_metric():
    """A stand-in network that returns given detections: perfect ones score 1, and a
    duplicate plus a miss give the hand-computed VOC07 AP."""
    # image 0: a circle and a (difficult) square; image 1: two circles
    labels = mx.nd.array([[[0, .1, .1, .3, .3, 0], [1, .5, .5, .9, .9, 1]],
                          [[0, .2, .2, .4, .4, 0], [0, .6, .6, .8, .8, 0]]])
    pad = [-1, -1, -1, -1, -1, -1]
    perfect = np.array([[[0, .9, .1, .1, .3, .3], pad], [[0, .8, .2, .2, .4, .4], [0, .7, .6, .6, .8, .8]]])
    # circles: a hit (0.9), a duplicate of it (0.8, FP), a miss of image 1's second circle
    flawed = np.array([[[0, .9, .1, .1, .3, .3], [0, .8, .1, .1, .3, .3]], [[0, .7, .2, .2, .4, .4], pad]])

    def net_returning(rows):
        return lambda x: mx.nd.array(rows[:x.shape[0]])

    loader = [(mx.nd.zeros((2, 3, 8, 8)), labels)]
    result = validate(net_returning(perfect), loader, [mx.cpu()], NAMES)
    assert result.mAP == pytest.approx(1.0)  # the square is difficult: no counted ground truth
    assert result.no_ground_truth == ("square", "triangle")
    # circles ranked 0.9 TP, 0.8 FP, 0.7 TP of 3: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3
    # 11-point: recall >= 0..0.3 -> 1 (4 points), 0.4..0.6 -> 2/3 (3 points), 0.7..1 -> 0
    result = validate(net_returning(flawed), loader, [mx.cpu()], NAMES)
    assert result.ap["circle"] == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)


def test_resume_reproduces_an_uninterrupted_run(data_root, tmp_path):
    kwargs = dict(class_names=NAMES, lr=0.01, lr_steps=[3], lr_factor=0.5, warmup_epochs=1,
                  end_epoch=4, seed=0, frequent=0)
    # 'discard', not 'rollover': the samples a rollover carries into the next epoch are not
    # part of a checkpoint, so only whole epochs are reproducible across a resume
    ds, loader = _loader(data_root, train=True, last_batch="discard")
    full = fit(_net(), loader, prefix=tmp_path / "a" / "ssd", set_epoch=ds.set_epoch, **kwargs)
    # copy epoch 2 of the uninterrupted run to a fresh prefix and continue from there
    (tmp_path / "b").mkdir()
    for src in (tmp_path / "a").glob("ssd-0002*"):
        shutil.copy(src, tmp_path / "b" / src.name)
    shutil.copy(tmp_path / "a" / "ssd-config.json", tmp_path / "b" / "ssd-config.json")
    ds, loader = _loader(data_root, train=True, last_batch="discard")
    rest = fit(_net(), loader, prefix=tmp_path / "b" / "ssd", set_epoch=ds.set_epoch, begin_epoch=2,
               resume=True, **kwargs)
    assert [(h.epoch, h.step, h.lr) for h in rest] == [(h.epoch, h.step, h.lr) for h in full[2:]]
    assert rest[-1].lr == pytest.approx(0.005)
    for i in (0, 1):
        assert rest[i].loss == pytest.approx(full[2 + i].loss, rel=1e-3)
    a, b = _weights(tmp_path / "a" / "ssd-0004.params"), _weights(tmp_path / "b" / "ssd-0004.params")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-3, atol=1e-4, err_msg=k)


def test_resume_without_files_is_a_clear_error(data_root, tmp_path):
    _, loader = _loader(data_root)
    with pytest.raises(FileNotFoundError, match="cannot resume from epoch 3"):
        fit(_net(), loader, class_names=NAMES, prefix=tmp_path / "ssd", begin_epoch=3, end_epoch=4,
            resume=True)


class _NaNLoss(SSDMultiBoxLoss):
    def hybrid_forward(self, F, *args):
        total, cls_loss, box_loss = super().hybrid_forward(F, *args)
        return total * float("nan"), cls_loss, box_loss


def test_nan_loss_stops_and_keeps_the_last_checkpoint(data_root, tmp_path, monkeypatch):
    _, loader = _loader(data_root)
    prefix = tmp_path / "ssd"
    fit(_net(), loader, class_names=NAMES, prefix=prefix, end_epoch=1, lr=0.01)
    before = params_path(prefix, 1).read_bytes()
    monkeypatch.setattr(trainer_mod, "SSDMultiBoxLoss", _NaNLoss)
    with pytest.raises(NonFiniteLossError, match="training loss became nan at epoch 2, batch 1"):
        fit(_net(), loader, class_names=NAMES, prefix=prefix, begin_epoch=1, end_epoch=3, resume=True,
            lr=0.01)
    assert params_path(prefix, 1).read_bytes() == before
    assert not params_path(prefix, 2).exists()


def test_keyboard_interrupt_saves_the_current_state(data_root, tmp_path):
    _, loader = _loader(data_root)

    def set_epoch(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    prefix = tmp_path / "ssd"
    with pytest.raises(KeyboardInterrupt):
        fit(_net(), loader, class_names=NAMES, prefix=prefix, end_epoch=3, set_epoch=set_epoch, lr=0.01)
    state = json.loads(state_json_path(prefix, 2).read_text())
    assert state["complete"] is False and state["step"] == 2
    load_checkpoint(prefix, 2)


def test_images_without_boxes_train(tmp_path):
    root = tmp_path / "empty"
    assert make_synthetic(root, num_images=4, image_size=SIZE, test_fraction=0, empty_fraction=1.0)["empty"] == 4
    _, loader = _loader(root)
    history = fit(_net(), loader, class_names=NAMES, prefix=tmp_path / "ssd", end_epoch=1, lr=0.01)
    assert history[0].loss == 0.0  # no positives, no negatives: MultiBoxTarget ignores every anchor


def test_two_cpu_contexts(data_root, tmp_path):
    _, loader = _loader(data_root)
    net = _net()
    history = fit(net, loader, class_names=NAMES, prefix=tmp_path / "ssd", end_epoch=2, lr=0.01,
                  ctx=[mx.cpu(0), mx.cpu(1)])
    assert np.isfinite(history[-1].loss) and history[-1].step == 4
    load_checkpoint(tmp_path / "ssd", 2)


def test_freeze_and_caffe_bias(data_root, tmp_path):
    _, loader = _loader(data_root)
    net = _net()
    params = net.collect_params()
    # gluon numbers block prefixes per process (mobilenet0_, mobilenet7_, ...): look the names up
    backbone = next(k for k in params.keys() if k.endswith("_conv0_weight")).rsplit("_conv0_", 1)[0]
    frozen, bias, weight = (f"{backbone}_conv0_weight", f"{backbone}_conv1_bias", f"{backbone}_conv1_weight")
    frozen_before = params[frozen].data().asnumpy()
    trained_before = params[weight].data().asnumpy()
    fit(net, loader, class_names=NAMES, prefix=tmp_path / "ssd", end_epoch=1, lr=0.01,
        freeze=rf"^{backbone}_conv0_")
    np.testing.assert_array_equal(params[frozen].data().asnumpy(), frozen_before)
    assert not np.array_equal(params[weight].data().asnumpy(), trained_before)
    assert params[frozen].grad_req == "null"
    assert (params[bias].lr_mult, params[bias].wd_mult) == (2.0, 0.0)
    assert (params[weight].lr_mult, params[weight].wd_mult) == (1.0, 1.0)
    with pytest.raises(ValueError, match="matches no parameter"):
        fit(_net(), loader, class_names=NAMES, prefix=tmp_path / "x", end_epoch=1, freeze="^nothing$")


def test_bad_arguments(data_root, tmp_path):
    _, loader = _loader(data_root)
    with pytest.raises(ValueError, match="begin_epoch < end_epoch"):
        fit(_net(), loader, class_names=NAMES, prefix=tmp_path / "ssd", begin_epoch=2, end_epoch=2)
    with pytest.raises(ValueError, match="2 class names"):
        fit(_net(), loader, class_names=NAMES[:2], prefix=tmp_path / "ssd", end_epoch=1)


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
    _, loader = _loader(data_root)
    with caplog.at_level(logging.INFO, logger="train.trainer"):
        history = fit(net, loader, class_names=names, prefix=tmp_path / "new" / "ssd", end_epoch=1, lr=0.01,
                      frequent=1)
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
