"""Interrupt and resume: a run stopped anywhere and resumed ends bitwise where a straight run
ends (dropout and augmentation on); signals give 130 / 143; the run directory is protected."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DEFAULT_SIGNALS, MLP_COMMAND, TINY, epoch_of, held_lock, mlp, write_idx_dir

import mlpcli.train
from mlpcli import optim, training
from mlpcli.artifacts import load_checkpoint
from mlpcli.config import load_config
from mlpcli.errors import TrainingInterrupted
from mlpcli.train import CHECKPOINT_KEYS


def settings(idx_dir: Path, epochs: int = 4, extra: tuple[str, ...] = ()) -> list[str]:
    """Dropout and augmentation on: their random draws must resume exactly too."""
    augment = [
        "data.augment.shift=1",
        "data.augment.rotate=5",
        "data.augment.flip=true",
        "data.augment.elastic.alpha=8",
    ]
    return [f"data.dir={idx_dir}", f"train.epochs={epochs}", "model.dropout=0.3", *augment, *extra]


def straight(idx_dir: Path, out: Path, epochs: int = 4, extra: tuple[str, ...] = ()) -> Path:
    sets = [a for s in settings(idx_dir, epochs, extra) for a in ("--set", s)]
    assert mlp("train", "--config", TINY, *sets, "--out", out).exit_code == 0
    return out


def stop_after(calls: int):
    """A should_stop that says yes on its `calls`-th question (one before each batch)."""
    count = [0]

    def should_stop() -> bool:
        count[0] += 1
        return count[0] >= calls

    return should_stop


def interrupted(idx_dir: Path, out: Path, calls: int, extra: tuple[str, ...] = ()) -> None:
    config = load_config(TINY, settings(idx_dir, extra=extra))
    with pytest.raises(TrainingInterrupted, match=f"Resume with: mlp train --resume {out}"):
        training.train_run(config, out, lambda line: None, False, stop_after(calls))


def weights(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / "weights.npz") as npz:
        return {name: npz[name] for name in npz.files}


def history_without_timings(out: Path) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k != "seconds"}
        for row in csv.DictReader((out / "history.csv").open())
    ]


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)  # bitwise
    assert history_without_timings(a) == history_without_timings(b)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert (ma["test_accuracy"], ma["test_loss"], ma["kept_epoch"]) == (
        mb["test_accuracy"],
        mb["test_loss"],
        mb["kept_epoch"],
    )


# 1000 training examples, batch 32: 32 batches an epoch, should_stop asked before each
@pytest.mark.parametrize(
    "calls",
    [
        pytest.param([1], id="before the first batch"),
        pytest.param([65], id="after epoch 2"),
        pytest.param([50], id="mid-epoch 2"),
        pytest.param([10, 40], id="twice"),
    ],
)
def test_interrupted_and_resumed_equals_straight(idx_dir, tmp_path, calls):
    reference = straight(idx_dir, tmp_path / "straight")
    out = tmp_path / "stopped"
    for count in calls:
        if not out.exists():
            interrupted(idx_dir, out, count)
        else:
            with pytest.raises(TrainingInterrupted):
                training.resume_run(out, [], lambda line: None, False, stop_after(count))
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["status"] == "interrupted" and (out / "checkpoint.npz").exists()
    result = mlp("train", "--resume", out)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "test accuracy" in result.output
    assert_same_run(reference, out)


def test_a_run_on_all_the_training_images_resumes_bitwise(idx_dir, tmp_path):
    on_all = ("data.validation=0", "train.keep=last")
    reference = straight(idx_dir, tmp_path / "straight", extra=on_all)
    interrupted(idx_dir, tmp_path / "stopped", 50, extra=on_all)  # mid-epoch 2
    result = mlp("train", "--resume", tmp_path / "stopped")
    assert result.exit_code == 0, result.output
    assert_same_run(reference, tmp_path / "stopped")


@pytest.mark.parametrize("nesterov", ["false", "true"])
def test_an_sgd_run_with_momentum_resumes_bitwise(idx_dir, tmp_path, nesterov):
    """SGD's velocity is saved and restored as Adam's moments are."""
    sgd = ("train.optimizer=sgd", "train.momentum=0.9", f"train.nesterov={nesterov}")
    reference = straight(idx_dir, tmp_path / "straight", extra=sgd)
    out = tmp_path / "stopped"
    interrupted(idx_dir, out, 50, sgd)  # in epoch 2
    assert mlp("train", "--resume", out).exit_code == 0
    assert_same_run(reference, out)


def test_resumed_equals_straight_with_the_optimizer_on_two_threads_and_flushes(
    idx_dir, tmp_path, monkeypatch
):
    """300k parameters (their optimizer passes shared by two threads, even on one core) and
    63 batches an epoch, stopped at batch 45 of epoch 2, between that epoch's flushes at
    batches 40 and 50. The flush is made to shrink the weights and momenta by 1 %, so that a
    flush at another step than the straight run's would show in the weights."""
    monkeypatch.setattr(mlpcli.train, "available", lambda: True)
    monkeypatch.setattr(optim, "flush_denormals", lambda buffer: np.multiply(buffer, 0.99, out=buffer))
    extra = ("model.hidden=[512,512]", "train.batch_size=16")
    reference = straight(idx_dir, tmp_path / "straight", extra=extra)
    out = tmp_path / "stopped"
    interrupted(idx_dir, out, 63 + 46, extra)
    result = mlp("train", "--resume", out)
    assert result.exit_code == 0, result.output
    assert_same_run(reference, out)


def test_resume_can_extend_a_finished_run(idx_dir, tmp_path):
    reference = straight(idx_dir, tmp_path / "six", epochs=6)
    out = straight(idx_dir, tmp_path / "four", epochs=4)
    assert mlp("train", "--resume", out, "--set", "train.epochs=6").exit_code == 0
    assert_same_run(reference, out)
    assert "epochs: 6" in (out / "config.yaml").read_text()


def rates(out: Path) -> list[float]:
    return [float(row["lr"]) for row in csv.DictReader((out / "history.csv").open())]


def test_a_cosine_run_stopped_and_resumed_longer_goes_on_without_a_jump(idx_dir, tmp_path):
    """Stopped in epoch 2 of 4, resumed for 6: the epoch under way keeps its rate, the rest
    come down from it to 0 at epoch 6; stopped again and resumed, the new curve is kept."""
    cosine = ("train.schedule=cosine",)
    out = tmp_path / "run"
    interrupted(idx_dir, out, 50, cosine)  # in epoch 2
    result = mlp("train", "--resume", out, "--set", "train.epochs=6")
    assert result.exit_code == 0, result.output
    assert "train.epochs 4 → 6: the cosine schedule goes on from where it stands, down to 0 at epoch 6" in (
        result.output
    )
    lr, reached = 0.01, 0.01 * 0.5 * (1 + np.cos(np.pi / 4))  # epoch 2's rate in a 4-epoch run
    expected = [lr, *(0.5 * reached * (1 + np.cos(np.pi * (e - 1) / 5)) for e in range(1, 6))]
    assert rates(out) == pytest.approx(expected, rel=1e-6)
    assert f"epoch 2 trains at {reached:.3g}" in result.output
    again = tmp_path / "again"
    interrupted(idx_dir, again, 50, cosine)
    with pytest.raises(TrainingInterrupted):  # stopped again, in epoch 4 of the new curve
        training.resume_run(again, ["train.epochs=6"], lambda line: None, False, stop_after(70))
    result = mlp("train", "--resume", again)
    assert result.exit_code == 0 and "the cosine schedule" not in result.output  # nothing changed now
    assert_same_run(out, again)  # the checkpoint kept the new curve


def test_a_finished_cosine_run_trained_longer_restarts_its_curve_and_says_so(idx_dir, tmp_path):
    out = straight(idx_dir, tmp_path / "run", epochs=4, extra=("train.schedule=cosine",))
    result = mlp("train", "--resume", out, "--set", "train.epochs=6")
    assert result.exit_code == 0, result.output
    assert "the cosine schedule had come down to 0; it starts again at train.lr" in result.output
    assert rates(out)[4:] == pytest.approx([0.01, 0.005], rel=1e-9)
    result = mlp("train", "--resume", out, "--set", "train.epochs=5")
    assert result.exit_code == 1 and "train.epochs = 5, but" in result.output
    assert "has trained 6 epochs already: to train it longer, set train.epochs above 6" in result.output


def test_an_interrupted_run_keeps_its_best_weights_for_eval(idx_dir, tmp_path):
    out = tmp_path / "stopped"
    interrupted(idx_dir, out, 70)
    history = list(csv.DictReader((out / "history.csv").open()))
    assert len(history) == 2
    kept = json.loads((out / "metrics.json").read_text())["kept_epoch"]
    assert kept == 1 + max(
        range(2), key=lambda i: (history[i]["val_accuracy"], -float(history[i]["val_loss"]))
    )
    result = mlp("eval", out)
    assert result.exit_code == 0 and "accuracy" in result.output
    assert f", the weights of epoch {kept} of a run interrupted after 2 epochs on the mnist test split" in (
        result.output
    )
    arrays, meta = load_checkpoint(out / "checkpoint.npz", CHECKPOINT_KEYS)
    assert meta["position"]["epoch"] == 2 and meta["position"]["batch"] == 5 and len(arrays["order"]) == 1000


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["model.hidden=[64]"],
            "--resume keeps the run's model and data and what its saved state was made with:"
            " model.hidden cannot change",
        ),
        (["data.validation=100"], "data.validation cannot change"),
        (["train.batch_size=16"], "train.batch_size cannot change"),
        (["train.momentum=0.5"], "train.momentum cannot change"),
        (["train.keep=last"], "train.keep cannot change"),
        (["train.beta1=0.8"], "train.beta1 cannot change (the run has 0.9, --set asks 0.8)"),
        (["train.beta2=0.99"], "train.beta2 cannot change"),
        (["data.augment.rotate=20"], "data.augment.rotate cannot change (the run has 5.0, --set asks 20.0)"),
        (["train.epochs=zero"], "train.epochs = 'zero' must be int"),
    ],
)
def test_resume_refuses_changes_to_model_and_data(idx_dir, tmp_path, sets, message):
    out = tmp_path / "stopped"
    interrupted(idx_dir, out, 40)
    before = (out / "checkpoint.npz").read_bytes()
    result = mlp("train", "--resume", out, *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 1 and message in result.output
    assert (out / "checkpoint.npz").read_bytes() == before


def test_resume_misuse(idx_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    result = mlp("train", "--resume", tmp_path / "empty")
    assert result.exit_code == 1 and "no checkpoint to resume from" in result.output
    out = straight(idx_dir, tmp_path / "done")
    (out / "checkpoint.npz").unlink()
    result = mlp("train", "--resume", out)
    assert result.exit_code == 1 and "no checkpoint to resume from" in result.output
    assert mlp("train", "--resume", out, "--out", tmp_path / "x").exit_code == 2
    assert mlp("train", "--resume", tmp_path / "missing").exit_code == 2
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 broken")
    result = mlp("train", "--resume", out)
    assert result.exit_code == 1 and "not a readable checkpoint" in result.output
    np.savez(out / "checkpoint.npz", params=np.zeros(3), meta=np.array("[1, 2]"))
    result = mlp("train", "--resume", out)
    assert (
        result.exit_code == 1 and "not a readable checkpoint (it needs config, history, norm" in result.output
    )


def test_overwrite_and_the_lock(idx_dir, tmp_path):
    out = straight(idx_dir, tmp_path / "run")
    before = (out / "weights.npz").read_bytes()
    sets = [a for s in settings(idx_dir) for a in ("--set", s)]
    result = mlp("train", "--config", TINY, *sets, "--out", out)
    assert result.exit_code == 1 and "already holds files" in result.output
    assert (out / "weights.npz").read_bytes() == before
    with held_lock(out, pid=4242):  # a live run holds it
        result = mlp("train", "--config", TINY, *sets, "--out", out, "--overwrite")
    assert result.exit_code == 1 and "in use by another mlp train (process 4242)" in result.output
    assert (out / "weights.npz").read_bytes() == before
    (out / ".lock").unlink()
    assert mlp("eval", out).exit_code == 0
    result = mlp("train", "--config", TINY, *sets, "--set", "train.seed=1", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "weights.npz").read_bytes() != before and not (out / ".lock").exists()
    assert not (out / "eval.json").exists()  # it spoke of the replaced weights


# --- real signals, in a child process ---------------------------------------------------------
# Windows delivers no SIGINT or SIGTERM to another process (its Ctrl-C reaches the console's
# processes): there, tests/as_windows.py's stand-in covers the same path (test_platforms.py).
posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals to a child process")


def start_training(
    idx_dir: Path, out: Path, epochs: int, mlp_command: list[str] = MLP_COMMAND, env: dict | None = None
) -> subprocess.Popen:
    sets = [a for s in settings(idx_dir, epochs) for a in ("--set", s)]
    command = [*mlp_command, "train", "--config", TINY, *sets]
    env = (env or os.environ) | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*command, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **DEFAULT_SIGNALS,
    )


def signal_after_first_epoch(
    child: subprocess.Popen, *signals: int, wait_for: Path | None = None
) -> tuple[str, str]:
    """Send `signals` once the first epoch line is out (and the file `wait_for` exists)."""
    line = child.stdout.readline()
    while epoch_of(line) is None:
        line = child.stdout.readline()
        assert line, "training ended before its first epoch line"
    while wait_for is not None and not wait_for.exists():
        time.sleep(0.01)
    for signum in signals:
        child.send_signal(signum)
    stdout, stderr = child.communicate(timeout=120)
    return line + stdout, stderr


@pytest.fixture
def big_idx_dir(tmp_path):
    return write_idx_dir(tmp_path / "big", n_train=6000, n_test=300)


@posix_signals
def test_ctrl_c_checkpoints_and_resume_equals_straight(big_idx_dir, tmp_path):
    out = tmp_path / "stopped"
    child = start_training(big_idx_dir, out, epochs=30)
    _, stderr = signal_after_first_epoch(child, signal.SIGINT)
    assert child.returncode == 130, stderr
    assert (
        "SIGINT: stopping after this batch" in stderr and f"Resume with: mlp train --resume {out}" in stderr
    )
    assert "Traceback" not in stderr
    assert mlp("train", "--resume", out).exit_code == 0
    assert_same_run(straight(big_idx_dir, tmp_path / "straight", epochs=30), out)


@posix_signals
def test_sigterm_exits_143_with_a_checkpoint(big_idx_dir, tmp_path):
    child = start_training(big_idx_dir, tmp_path / "run", epochs=30)
    _, stderr = signal_after_first_epoch(child, signal.SIGTERM)
    assert child.returncode == 143, stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz", CHECKPOINT_KEYS)[1]["position"]["epoch"] >= 1


@posix_signals
def test_a_second_ctrl_c_stops_at_once_and_leaves_whole_files(big_idx_dir, tmp_path):
    out = tmp_path / "run"
    child = start_training(big_idx_dir, out, epochs=30)
    # once the epoch-end checkpoint is there (before it, a second Ctrl-C leaves none to resume)
    _, stderr = signal_after_first_epoch(child, signal.SIGINT, signal.SIGINT, wait_for=out / "checkpoint.npz")
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    load_checkpoint(
        out / "checkpoint.npz", CHECKPOINT_KEYS
    )  # whole: the epoch-end checkpoint, or the stop's own
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()


def test_a_checkpoint_of_another_format_is_refused_and_one_without_a_format_resumes(idx_dir, tmp_path):
    out = tmp_path / "stopped"
    interrupted(idx_dir, out, 40)
    _, meta = load_checkpoint(out / "checkpoint.npz", CHECKPOINT_KEYS)
    assert meta["format_version"] == 1
    with np.load(out / "checkpoint.npz") as npz:
        saved = dict(npz)
    np.savez(out / "checkpoint.npz", **saved | {"meta": np.array(json.dumps(meta | {"format_version": 2}))})
    result = mlp("train", "--resume", out)
    assert result.exit_code == 1 and "a checkpoint of format 2; this mlp resumes format 1" in result.output
    del meta["format_version"]  # as the checkpoints written before formats were compared
    np.savez(out / "checkpoint.npz", **saved | {"meta": np.array(json.dumps(meta))})
    assert mlp("train", "--resume", out).exit_code == 0
