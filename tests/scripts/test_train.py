"""train.py end to end on a synthetic VOC folder and on RecordIO, fine-tuning, and its one-line errors."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import pytest

from dataset.recordio import make_records
from dataset.synthetic import SYNTHETIC_CLASSES, make_synthetic
from dataset.voc import VOCFolder
from symbol.checkpoint import load_checkpoint
from train.checkpoints import best_prefix, read_best

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    make_synthetic(root, num_images=12, image_size=96, seed=0, test_fraction=0.25, empty_fraction=0.2)
    return root


def run_train(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("train.py: error: ")
    return lines[0]


def test_train_then_resume(data_root, tmp_path):
    prefix, log = tmp_path / "model" / "ssd", tmp_path / "train.log"
    common = ["--network", "mobilenet", "--data-shape", 96, "--dataset", "folder", "--data-root", data_root,
              "--train-set", "train", "--val-set", "test", "--batch-size", 4, "--lr", 0.01,
              "--lr-steps", "2", "--cpu", "--num-cpu-contexts", 2, "--prefix", prefix, "--frequent", 1]
    proc = run_train(*common, "--end-epoch", 2, "--log", log)
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    assert "Epoch[1] Batch [1/2]" in text and "eta=" in text and "Epoch[2] Train-loss=" in text and "Validation-voc07=" in text
    assert "Epoch[2] Train-loss=" in proc.stdout  # the console shows the same lines
    assert "without batch norm, which hardly trains from scratch: add --batch-norm" in text
    net, config = load_checkpoint(prefix, 2)
    assert config.class_names == ("circle", "square", "triangle") and config.data_shape == 96
    best = read_best(prefix)
    assert best["epoch"] in (1, 2) and Path(f"{prefix}-best-{best['epoch']:04d}.params").is_file()
    load_checkpoint(best_prefix(prefix), best["epoch"])

    # the dataset flags and the prefix are enough: network and training settings are the saved ones
    data = common[4:12] + ["--prefix", prefix, "--cpu"]
    proc = run_train(*data, "--resume", "latest", "--end-epoch", 3)
    assert proc.returncode == 0, proc.stderr
    assert "--end-epoch 3 overrides the saved 2" in proc.stdout
    assert proc.stdout.count("overrides the saved") == 1
    state = json.loads(Path(f"{prefix}-0003-state.json").read_text())
    assert state["step"] == 6 and state["lr"] == pytest.approx(0.001)  # lr stepped at epoch 2
    assert state["train"]["batch_size"] == 4 and state["train"]["lr_steps"] == [2] and state["train"]["end_epoch"] == 3


@pytest.mark.parametrize("args, message", [
    (["--network", "nope"], "unknown network 'nope'; valid names:"),
    (["--data-root", "/does/not/exist"], "data root not found"),
    (["--batch-size", "0"], "--batch-size"),
    (["--resume", "5", "--end-epoch", "6"], "cannot resume from epoch 5"),
    (["--resume", "latest"], "no checkpoint"),
    (["--resume", "last"], "expected an epoch number or 'latest'"),
    (["--begin-epoch", "5"], "--end-epoch (1) must be greater than the first epoch (5)"),
    (["--resume", "5", "--begin-epoch", "5"], "drop --begin-epoch"),
    (["--freeze", "^nothing$"], "matches no parameter"),
    (["--class-names", "a,,b"], "empty name"),
    (["--kv-store", "dist_sync"], "needs the processes that 'python -m tools.launch"),
])
def test_errors_are_one_line(data_root, tmp_path, args, message):
    base = {"--network": "mobilenet", "--data-shape": "96", "--dataset": "folder",
            "--data-root": str(data_root), "--train-set": "train", "--cpu": None,
            "--prefix": str(tmp_path / "ssd"), "--end-epoch": "1", "--batch-size": "4"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = [x for k, v in base.items() for x in ((k,) if v is None else (k, v))]
    assert message in one_error_line(run_train(*argv))


def _script():
    """train.py as a module (``import train`` is the train/ package)."""
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_names_the_launcher_that_works():
    """``python -m mxnet.tools.launch`` crashes on Python 3.11; ``tools.launch`` fixes it."""
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "python -m tools.launch" in text and "mxnet.tools.launch" not in text
    assert "--resume EPOCH|latest" in text and "(default: 32)" in text  # a new run's defaults are shown


@pytest.mark.parametrize("args, message", [
    (["--dataset", "rec", "--class-names", "a"], "--dataset rec needs --train-path"),
    (["--dataset", "rec", "--class-names", "a", "--train-rec", "/no/such.rec"], "record file not found"),
    (["--data-root", ".", "--train-path", "x.rec"], "only apply with --dataset rec"),
    (["--data-root", ".", "--finetune", "1"], "--finetune needs --finetune-prefix"),
    (["--data-root", ".", "--finetune", "1", "--finetune-prefix", "m/a", "--prefix", "m/a"], "must differ"),
    (["--data-root", ".", "--finetune", "1", "--finetune-prefix", "m/a", "--resume", "2"], "cannot be combined"),
    (["--data-root", ".", "--finetune-prefix", "m/a"], "only applies with --finetune"),
])
def test_rec_and_finetune_errors_are_one_line(capsys, args, message):
    # in-process, to skip the MXNet start-up of a subprocess per case; all fail before logging is set up,
    # except the missing records file
    argv = [*args, "--cpu"] + ([] if "--prefix" in args else ["--prefix", "/nonexistent/ssd"])
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        assert _script().main(argv) == 1
    finally:
        for h in root.handlers[len(handlers):]:  # main's log handlers, when it got that far
            root.removeHandler(h)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: ") and message in err[0], err


def test_rec_dataset_then_finetune_to_new_classes(tmp_path):
    root = tmp_path / "synth"
    make_synthetic(root, num_images=6, image_size=96, seed=1, test_fraction=0)
    records = tmp_path / "rec" / "train.rec"
    make_records(VOCFolder(root, SYNTHETIC_CLASSES, image_set="train"), records.with_suffix(""))
    names = ",".join(SYNTHETIC_CLASSES)
    src = tmp_path / "src" / "ssd"
    proc = run_train("--network", "mobilenet", "--data-shape", 96, "--dataset", "rec", "--train-rec", records,
                     "--val-rec", records, "--class-names", names, "--batch-size", 3, "--lr", 0.01, "--cpu",
                     "--frequent", 1, "--prefix", src, "--end-epoch", 1)
    assert proc.returncode == 0, proc.stderr
    assert "Epoch[1] Batch [2/2]" in proc.stdout and "eta=0:00:00" in proc.stdout
    assert "Validation-voc07=" in proc.stdout
    assert load_checkpoint(src, 1)[1].class_names == tuple(SYNTHETIC_CLASSES)

    # fine-tune with one class more (records found as DATA_ROOT/TRAIN_SET.rec); network and
    # size come from the source checkpoint
    new = tmp_path / "new" / "ssd"
    proc = run_train("--dataset", "rec", "--data-root", records.parent, "--train-set", "train",
                     "--batch-size", 3, "--lr", 0.01, "--cpu", "--class-names", names + ",star",
                     "--finetune", 1, "--finetune-prefix", src, "--prefix", new, "--end-epoch", 1)
    assert proc.returncode == 0, proc.stderr
    assert "fine-tuning mobilenet" in proc.stdout
    _, config = load_checkpoint(new, 1)
    assert config.class_names == (*SYNTHETIC_CLASSES, "star")
    assert (config.network, config.data_shape) == ("mobilenet", 96)


@pytest.mark.skipif(mx.runtime.Features().is_enabled("CUDA"), reason="needs a CPU-only MXNet")
def test_gpus_on_a_cpu_build(data_root, tmp_path):
    line = one_error_line(run_train("--network", "mobilenet", "--data-shape", 96, "--dataset", "folder",
                                    "--data-root", data_root, "--train-set", "train", "--gpus", "0",
                                    "--prefix", tmp_path / "ssd"))
    assert "mxnet-cu112" in line


def test_two_local_workers_with_dist_sync(data_root, tmp_path):
    """Multi-machine training on this machine: MXNet's launcher (through tools.launch,
    which fixes it for Python >= 3.9) starts a scheduler, two servers and two workers."""
    prefix = tmp_path / "dist" / "ssd"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.launch", "-n", "2", "--launcher", "local",
         sys.executable, "train.py", "--network", "mobilenet", "--data-shape", "96", "--dataset", "folder",
         "--data-root", str(data_root), "--train-set", "train", "--val-set", "test", "--batch-size", "2",
         "--lr", "0.01", "--end-epoch", "2", "--frequent", "0", "--prefix", str(prefix),
         "--kv-store", "dist_sync"],
        cwd=REPO, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "worker 0 of 2" in out and "worker 1 of 2" in out
    # 9 training images: 4 per worker, 2 batches of 2 per epoch on each
    assert out.count("Epoch[2] Train-loss=") == 2 and out.count("step=4\t") == 2
    assert out.count("Validation-voc07=") == 2  # worker 0 only, both epochs
    state = json.loads(Path(f"{prefix}-0002-state.json").read_text())
    assert state["step"] == 4 and state["complete"] is True
    net, config = load_checkpoint(prefix, 2)
    assert config.class_names == tuple(SYNTHETIC_CLASSES)


def test_resume_and_finetune_keep_a_converted_layout(data_root, tmp_path):
    """A converted model (its own priors as the config's layout, no optimizer state) resumes with
    --resume and the prefix alone, and fine-tunes, keeping its layout."""
    import dataclasses

    from symbol import find_preset, get_model
    from symbol.checkpoint import save_checkpoint

    preset = find_preset("mobilenet", 300)
    layout = dataclasses.replace(preset, min_sizes=None, max_sizes=None,
                                 sizes=tuple((0.1 + 0.15 * i, 0.14 + 0.15 * i) for i in range(6))).to_dict()
    net = get_model("mobilenet", 96, len(SYNTHETIC_CLASSES), layout=layout, multiplier=0.25, batch_norm=True)
    prefix = tmp_path / "conv" / "ssd"
    save_checkpoint(net, prefix, 0, SYNTHETIC_CLASSES)
    data = ["--dataset", "folder", "--data-root", data_root, "--train-set", "train", "--batch-size", 4,
            "--lr", 0.01, "--cpu", "--frequent", 0]
    proc = run_train(*data, "--prefix", prefix, "--resume", 0, "--end-epoch", 1)
    assert proc.returncode == 0, proc.stderr
    assert "no optimizer state" in proc.stdout
    _, config = load_checkpoint(prefix, 1)
    assert config.layout == layout and config.backbone_kwargs["multiplier"] == 0.25

    line = one_error_line(run_train(*data, "--prefix", prefix, "--resume", 1, "--end-epoch", 2,
                                    "--network", "vgg16_reduced"))
    assert "--network vgg16_reduced but" in line and "trained with mobilenet" in line

    new = tmp_path / "new" / "ssd"
    proc = run_train(*data, "--finetune", 1, "--finetune-prefix", prefix, "--prefix", new, "--end-epoch", 1,
                     "--class-names", ",".join(SYNTHETIC_CLASSES) + ",star")
    assert proc.returncode == 0, proc.stderr
    _, config = load_checkpoint(new, 1)
    assert config.layout == layout and config.class_names == (*SYNTHETIC_CLASSES, "star")
