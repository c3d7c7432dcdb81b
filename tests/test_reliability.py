"""Full disks, read-only directories and diverging runs: a clear error, a non-zero exit, and
the files already there left whole."""

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, mlp

from mlpcli import artifacts


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def finished_run(idx_dir: Path, out: Path) -> Path:
    assert mlp("train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", out).exit_code == 0
    return out


def fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, __import__("os").strerror(code))

    return fail


def test_a_full_disk_stops_with_a_message_and_keeps_the_previous_run(idx_dir, tmp_path, monkeypatch):
    out = finished_run(idx_dir, tmp_path / "run")
    before = snapshot(out)
    monkeypatch.setattr(artifacts.os, "fsync", fail_with(errno.ENOSPC))  # every write fails before its rename
    result = mlp("train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", out, "--overwrite")
    assert (
        result.exit_code == 1
        and "No space left on device" in result.output
        and "Traceback" not in result.output
    )
    assert snapshot(out) == before  # every file whole and unchanged, no temporary left, no lock


def test_a_full_disk_while_resuming_keeps_the_checkpoint(idx_dir, tmp_path, monkeypatch):
    out = finished_run(idx_dir, tmp_path / "run")
    before = snapshot(out)
    monkeypatch.setattr(artifacts.os, "fsync", fail_with(errno.ENOSPC))
    result = mlp("train", "--resume", out, "--set", "train.epochs=5")
    assert result.exit_code == 1 and "cannot write" in result.output
    assert snapshot(out) == before


def test_a_read_only_run_directory_fails_eval_clearly(idx_dir, tmp_path, monkeypatch):
    out = finished_run(idx_dir, tmp_path / "run")
    assert mlp("eval", out).exit_code == 0
    before = snapshot(out)
    monkeypatch.setattr(artifacts.os, "replace", fail_with(errno.EACCES))  # root ignores chmod: simulate
    result = mlp("eval", out)
    assert result.exit_code == 1 and f"cannot write {out / 'eval.json'}: Permission denied" in result.output
    assert snapshot(out) == before


def test_a_run_diverging_in_epoch_1_suggests_a_lower_rate_and_saves_no_weights(idx_dir, tmp_path):
    out = tmp_path / "run"
    sets = ["train.lr=1e6", "train.optimizer=sgd", "train.momentum=0.0", f"data.dir={idx_dir}"]
    result = mlp("train", "--config", TINY, *[a for s in sets for a in ("--set", s)], "--out", out)
    assert result.exit_code == 1 and "try a lower train.lr" in result.output
    assert "No epoch had finished before, so there are no weights to keep" in result.output
    assert not (out / "weights.npz").exists()
    assert json.loads((out / "metrics.json").read_text())["status"] == "diverged"
    result = mlp("eval", out)
    assert result.exit_code == 1 and "Train it again (with a lower train.lr if it diverged)" in result.output


def test_a_run_diverging_later_keeps_the_weights_of_its_kept_epoch(idx_dir, tmp_path):
    out = finished_run(idx_dir, tmp_path / "run")
    before = (out / "weights.npz").read_bytes()
    result = mlp("train", "--resume", out, "--set", "train.epochs=5", "--set", "train.lr=1e30")
    assert result.exit_code == 1 and "(kept so far by best_val_accuracy) were kept" in result.output
    assert (out / "weights.npz").read_bytes() == before
    with np.load(out / "weights.npz") as npz:
        assert all(np.isfinite(npz[name]).all() for name in npz.files if name.startswith(("W", "b")))
    assert mlp("eval", out).exit_code == 0  # the kept weights still evaluate


def test_no_temporary_files_survive_a_failed_write(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts.os, "fsync", fail_with(errno.EIO))
    path = tmp_path / "metrics.json"
    with pytest.raises(artifacts.RunDirError, match="Input/output error"):
        artifacts.write_json(path, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_after_divergence_resume_with_a_lower_rate_continues_from_the_last_checkpoint(idx_dir, tmp_path):
    out = finished_run(idx_dir, tmp_path / "run")  # 3 epochs, a checkpoint after each
    result = mlp("train", "--resume", out, "--set", "train.epochs=5", "--set", "train.lr=1e30")
    assert result.exit_code == 1 and "try a lower train.lr" in result.output
    result = mlp("train", "--resume", out, "--set", "train.epochs=5", "--set", "train.lr=0.01")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "in epoch 4, after 0 of its batches" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 5 and metrics["test_accuracy"] > 0.9
