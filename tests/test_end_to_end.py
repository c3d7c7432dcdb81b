"""One real run: Fashion-MNIST from Debian's IDX files, trained for two epochs, then evaluated."""

import json
from pathlib import Path

from click.testing import CliRunner

from mlpcli.cli import main

FASHION = str(Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist.yaml")


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
