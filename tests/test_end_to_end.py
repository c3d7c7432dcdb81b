"""Real runs: Fashion-MNIST from Debian's IDX files and the real MNIST, each trained briefly
with the shipped augmentation, then evaluated."""

import csv
import json

from click.testing import CliRunner
from conftest import FASHION

from mlpcli.cli import main


def test_train_then_eval_on_fashion_mnist(fashion_dir, tmp_path):
    out = tmp_path / "run"
    sets = ["data.source=idx", f"data.dir={fashion_dir}", "train.epochs=2"]
    args = ["train", "--config", FASHION, "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.84

    result = CliRunner().invoke(main, ["eval", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "eval.json").read_text())["accuracy"] == metrics["test_accuracy"]
    assert "Ankle boot" in result.output


def test_a_small_net_learns_real_mnist(mnist_dir, tmp_path):
    out = tmp_path / "run"
    sets = ["data.source=idx", f"data.dir={mnist_dir}", "model.hidden=[128]", "train.epochs=2"]
    result = CliRunner().invoke(main, ["train", "--out", str(out)] + [a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert "55000 training and 5000 validation examples" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95  # chance is 0.1
    history = list(csv.DictReader((out / "history.csv").open()))
    accuracies = [float(row["val_accuracy"]) for row in history]
    assert metrics["keep"] == "best_val_accuracy" and metrics["kept_val_accuracy"] == max(accuracies)
    assert float(history[metrics["kept_epoch"] - 1]["val_accuracy"]) == max(accuracies)
