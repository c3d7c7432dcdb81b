"""The CLI as a user drives it, through click's CliRunner, on IDX folders the tests write."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, closed_port, mlp

from mlpcli import cli, output, training
from mlpcli.train import EpochRecord


def train_tiny(idx_dir: Path, out: Path, *sets: str):
    args = ["train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", out]
    for item in sets:
        args += ["--set", item]
    return mlp(*args)


@pytest.fixture
def run_dir(idx_dir, tmp_path):
    result = train_tiny(idx_dir, tmp_path / "run")
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def test_train_writes_the_run_directory(run_dir):
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.npz",
        "config.yaml",
        "curves.png",
        "history.csv",
        "metrics.json",
        "weights.npz",
    ]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9 and metrics["epochs"] == 3 and 1 <= metrics["kept_epoch"] <= 3
    assert {"test_loss", "train_seconds", "status"} <= set(metrics)
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
        "clipped",
    }
    assert "hidden:\n  - 32" in (run_dir / "config.yaml").read_text()


def test_train_prints_a_heading_then_a_line_per_epoch_and_no_bar_off_a_terminal(idx_dir, tmp_path):
    result = train_tiny(idx_dir, tmp_path / "run")
    lines = result.output.splitlines()
    heading = lines.index(training.epoch_heading())
    rows = [line.split() for line in lines[heading + 1 : heading + 4]]
    assert [row[0] for row in rows] == ["1", "2", "3"] and [row[5] for row in rows] == ["0.01"] * 3
    assert "batch/s" not in result.output and "it/s" not in result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert lines[heading + 4] == f"trained 3 epochs in {metrics['train_seconds']:.0f}s"
    assert lines[heading + 5].startswith("test accuracy ")
    assert lines[heading + 5].endswith(f"(weights of epoch {metrics['kept_epoch']})")


def test_the_training_time_is_every_epoch_s_together():
    records = [
        EpochRecord(epoch, 0.1, 0.9, 0.1, 0.9, 0.001, seconds) for epoch, seconds in ((1, 100.4), (2, 57.3))
    ]
    assert training.training_time(records) == "trained 2 epochs in 158s"
    assert training.training_time(records[:1]) == "trained 1 epoch in 100s"


def test_an_epoch_line_fits_an_80_column_terminal_each_value_under_its_heading():
    record = EpochRecord(120, 12.3456, 0.5, 10.25, 0.99, 1.234e-05, 123.4, 46875)
    for clipping in (False, True):
        heading, line = training.epoch_heading(clipping), training.format_epoch(record, True, clipping)
        assert len("  " + line) < 80  # a sweep indents it by two
        heading_ends = [m.end() for m in re.finditer(r"\S+(?: \S+)*", heading)]  # "train loss" is one
        assert [m.end() for m in re.finditer(r"\S+", line)] == [*heading_ends, len(line)]  # then the *


def test_eval_reproduces_the_test_accuracy(run_dir):
    result = mlp("eval", run_dir)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["accuracy"] == metrics["test_accuracy"]
    assert report["loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
    assert np.array(report["confusion_matrix"]).sum() == 300
    assert f"accuracy  {metrics['test_accuracy']:.4f}" in result.output
    assert "confusion matrix" in result.output and "precision" in result.output
    assert mlp("eval", run_dir / "weights.npz").exit_code == 0


def test_eval_takes_data_overrides_only(run_dir, tmp_path):
    result = mlp("eval", run_dir, "--set", "train.epochs=3")
    assert result.exit_code == 2 and "eval takes only data.* keys" in result.output
    result = mlp("eval", run_dir, "--set", f"data.dir={tmp_path / 'nowhere'}")
    assert result.exit_code == 1 and "is not a directory" in result.output


def test_same_seed_same_weights_through_the_cli(idx_dir, tmp_path):
    for name in ("a", "b"):
        assert train_tiny(idx_dir, tmp_path / name).exit_code == 0
    with np.load(tmp_path / "a" / "weights.npz") as a, np.load(tmp_path / "b" / "weights.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.epochs=0"], "train.epochs = 0 is out of range"),
        (["model.hidden=[32,0]"], "model.hidden = [32, 0] is out of range"),
        (["train.optimiser=adam"], "unknown config key 'optimiser' at section 'train'; allowed: epochs,"),
        (["model.activation=softsign"], "model.activation = 'softsign' is out of range"),
        (["data.validation=5000"], "data.validation = 5000 leaves no training data"),
    ],
)
def test_bad_settings_fail_with_a_message_and_write_nothing(idx_dir, tmp_path, sets, message):
    result = train_tiny(idx_dir, tmp_path / "run", *sets)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_full_run_directory_is_not_overwritten(run_dir, idx_dir):
    before = (run_dir / "weights.npz").read_bytes()
    result = train_tiny(idx_dir, run_dir)
    assert result.exit_code == 1 and "already holds files" in result.output
    assert (run_dir / "weights.npz").read_bytes() == before


def test_bad_weights_fail_clearly(tmp_path):
    (tmp_path / "weights.npz").write_bytes(b"PK\x03\x04 broken")
    result = mlp("eval", tmp_path)
    assert result.exit_code == 1 and "not a readable weights file" in result.output
    result = mlp("eval", tmp_path / "missing.npz")
    assert result.exit_code == 1 and "missing.npz: no such run directory or weights file\n" in result.output
    result = mlp("eval", tmp_path / "weigths.npz")  # one who meant the file beside it
    assert (
        f"weigths.npz: no such run directory or weights file; did you mean {tmp_path / 'weights.npz'}?"
        in (result.output)
    )


def test_a_lone_weights_file_knows_its_dataset(idx_dir, tmp_path):
    assert train_tiny(idx_dir, tmp_path / "run", "data.name=fashion_mnist").exit_code == 0
    (tmp_path / "lone").mkdir()
    (tmp_path / "run" / "weights.npz").rename(tmp_path / "lone" / "model.npz")
    result = mlp(
        "eval", tmp_path / "lone" / "model.npz", "--set", "data.source=idx", "--set", f"data.dir={idx_dir}"
    )
    assert result.exit_code == 0, result.output
    assert "on the fashion_mnist test split" in result.output and "9 Ankle boot" in result.output
    report = json.loads((tmp_path / "lone" / "eval.json").read_text())
    assert report["dataset"] == "fashion_mnist"
    assert "warning" not in result.output and report["data"]["warnings"] == []  # no run config to differ from


def test_eval_offline_says_how_to_read_local_files(run_dir, tmp_path):
    """Fashion-MNIST does not ship with mlpcli: offline, eval says how to read local files."""
    dead = f"http://127.0.0.1:{closed_port()}"
    sets = ["data.source=tfds", "data.name=fashion_mnist", f"data.mirror={dead}", f"data.dir={tmp_path}"]
    result = mlp("eval", run_dir, *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 1 and "--set data.source=idx --set data.dir=DIR" in result.output
    assert "mlp train" not in result.output


def test_weights_that_do_not_fit_the_data(run_dir, tmp_path, mnist_dir):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, folder)
    result = mlp("eval", run_dir, "--set", f"data.dir={folder}")
    assert (
        result.exit_code == 1
        and "the model takes 64 inputs but the mnist test images have 784 pixels" in result.output
    )


def test_cli_misuse(tmp_path):
    assert mlp("train", "--config", tmp_path / "missing.yaml").exit_code == 2
    assert mlp("train", "--bogus").exit_code == 2
    assert mlp("eval").exit_code == 2
    assert mlp("train", "--set", "nonsense").exit_code == 1


def test_help_teaches():
    text = mlp("--help").output
    assert "train" in text and "eval" in text and "mlp train --config" in text
    text = mlp("train", "--help").output
    assert "--set KEY=VALUE" in text and "data.source=idx" in text and "--out" in text


def test_commands_that_draw_nothing_load_no_pictures_library():
    """mlp --help stays fast: matplotlib and Pillow load only where pictures are drawn or read."""
    code = "import sys; from mlpcli.cli import main; print(sorted(m for m in sys.modules if m in HEAVY))"
    heavy = "{'matplotlib', 'PIL', 'tensorflow_datasets', 'scipy'}"
    result = subprocess.run(
        [sys.executable, "-c", code.replace("HEAVY", heavy)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_every_command_has_a_whole_sentence_summary():
    text = mlp("--help").output
    commands = text.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 9
    assert all(line.rstrip().endswith(".") and "..." not in line for line in commands)


@pytest.mark.skipif(output.SIGHUP is None, reason="this platform has no SIGHUP")
@pytest.mark.parametrize(
    ("signals", "outcome", "stop_signal"),
    [
        ([output.SIGHUP, signal.SIGTERM], None, signal.SIGTERM),  # the dying shell's SIGHUP came first
        ([signal.SIGTERM, output.SIGHUP], None, signal.SIGTERM),
        ([output.SIGHUP, output.SIGHUP], None, output.SIGHUP),
        ([signal.SIGINT, signal.SIGINT], KeyboardInterrupt, signal.SIGINT),
        ([signal.SIGTERM, signal.SIGTERM], SystemExit, signal.SIGTERM),
        ([output.SIGHUP, signal.SIGINT, signal.SIGINT], KeyboardInterrupt, signal.SIGINT),
    ],
)
def test_which_signals_stop_after_the_batch_and_which_at_once(signals, outcome, stop_signal):
    stop = cli._StopRequests()
    *first, last = signals
    for signum in first:
        stop.handle(signum, None)
    if outcome is None:
        stop.handle(last, None)
    else:
        with pytest.raises(outcome):
            stop.handle(last, None)
    assert stop() and stop.signal == stop_signal


HELP_CHECK = """
import sys
from mlpcli.cli import entry_point
sys.argv = ["mlp", *sys.argv[1:]]
try:
    entry_point()
except SystemExit:
    pass
print("numpy" in sys.modules)
"""


@pytest.mark.parametrize("command", ["", *cli.main.commands])
def test_help_answers_without_loading_numpy(command):
    """`mlp --help` and `mlp COMMAND --help` load click and the options' settings alone: the
    library (NumPy and the rest) loads when a command runs."""
    result = subprocess.run(
        [sys.executable, "-c", HELP_CHECK, *command.split(), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "Usage: mlp" in result.stdout, result.stderr
    assert result.stdout.rstrip().endswith("False"), result.stdout


def test_tab_completion_answers_without_loading_numpy():
    env = os.environ | {"_MLP_COMPLETE": "bash_complete", "COMP_WORDS": "mlp tr", "COMP_CWORD": "1"}
    result = subprocess.run([sys.executable, "-c", HELP_CHECK], capture_output=True, text=True, env=env)
    assert (
        result.returncode == 0 and "plain,train" in result.stdout and result.stdout.rstrip().endswith("False")
    )


@pytest.mark.parametrize("command", ["", *cli.main.commands])
def test_help_fits_an_80_column_terminal(command):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli.main, [*command.split(), "--help"], terminal_width=80)
    assert result.exit_code == 0 and max(map(len, result.output.splitlines())) <= 80, result.output
