"""data.validation = 0: a run that trains on every training image (as the literature's final
runs do), keeps its last epoch, and says everywhere that it has no validation figures."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, mlp, trainer_for

from mlpcli import plots, train, training
from mlpcli.config import TrainConfig
from mlpcli.errors import ConfigError, DivergedError
from mlpcli.train import Position, Trainer

ALL_IMAGES = ("data.validation=0", "train.keep=last")
pytestmark = pytest.mark.filterwarnings("error")  # an empty split's mean of nothing warns: none is taken


def train_on_all(idx_dir: Path, out: Path, *sets: str):
    items = [f"data.dir={idx_dir}", *ALL_IMAGES, *sets]
    return mlp("train", "--config", TINY, *[a for item in items for a in ("--set", item)], "--out", out)


@pytest.fixture
def run_dir(idx_dir, tmp_path) -> Path:
    result = train_on_all(idx_dir, tmp_path / "run")
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def not_a_number(text: str) -> float:
    raise ValueError(f"{text} in JSON")


def test_it_trains_on_every_training_image_and_shows_no_validation_figures(idx_dir, tmp_path):
    result = train_on_all(idx_dir, tmp_path / "run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "1200 training examples, none held out for validation (data.validation = 0)" in lines
    heading = lines.index(training.epoch_heading())
    rows = [line.split() for line in lines[heading + 1 : heading + 4]]
    assert [row[:1] + row[3:5] + row[-1:] for row in rows] == [[str(e), "-", "-", "*"] for e in (1, 2, 3)]
    assert lines[heading + 5].endswith("(weights of epoch 3)")


def test_its_files_hold_no_validation_figures_and_stay_readable(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text(), parse_constant=not_a_number)  # strict JSON
    assert (
        metrics["kept_epoch"] == 3
        and metrics["kept_val_accuracy"] is None
        and metrics["kept_val_loss"] is None
    )
    rows = list(csv.DictReader((run_dir / "history.csv").read_text().splitlines()))
    assert all(math.isnan(float(row[key])) for row in rows for key in ("val_loss", "val_accuracy"))
    assert all(0 < float(row["train_loss"]) < 3 for row in rows)
    listing = mlp("runs", run_dir.parent)
    assert listing.exit_code == 0 and "nan" not in listing.output
    header, _, row = listing.output.splitlines()[:3]
    assert row.split()[header.split().index("val_acc")] == "-"


def test_eval_has_no_validation_split_to_evaluate_but_the_others(run_dir):
    result = mlp("eval", run_dir, "--split", "validation")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "held no examples out for validation (data.validation = 0)" in result.output
    assert not (run_dir / "eval-validation.json").exists()
    result = mlp("eval", run_dir, "--split", "validation", "--set", "data.validation=100")
    assert (
        result.exit_code == 1 and "data.validation cannot be --set for the validation split" in result.output
    )
    assert not (run_dir / "eval-validation.json").exists()
    result = mlp("eval", run_dir, "--split", "train", "--json")
    assert result.exit_code == 0, result.output
    confusion = json.loads((run_dir / "eval-train.json").read_text())["confusion_matrix"]
    assert sum(map(sum, confusion)) == 1200  # every training image


def unvalidated_rows() -> list[dict]:
    """history.csv's rows of three epochs of a run that held no validation examples out."""
    return [
        {"epoch": e, "train_loss": 1 / e, "train_accuracy": 0.8 + e / 100, "val_loss": "nan"}
        | {"val_accuracy": "nan", "lr": 0.01, "seconds": 1.0, "clipped": 0}
        for e in (1, 2, 3)
    ]


def test_the_curves_draw_training_alone_and_say_which_epoch_is_kept():
    rows = unvalidated_rows()
    figure = plots.curves(rows, 3, "a run on all its images")
    loss, accuracy = figure.axes[:2]
    for axes, key in ((loss, "loss"), (accuracy, "accuracy")):
        assert [t.get_text() for t in axes.get_legend().texts] == [
            f"train {key} (as trained)",
            "kept: epoch 3",
        ]
    assert accuracy.get_yscale() == "logit" and not accuracy.texts  # no kept validation accuracy written


def test_runs_side_by_side_show_the_training_accuracy_of_one_without_validation():
    rows = unvalidated_rows()
    held_out = [row | {"val_loss": 0.5, "val_accuracy": 0.9} for row in rows]
    figure = plots.compare([("all", rows), ("held out", held_out)], "t")
    assert [t.get_text() for t in figure.legends[0].texts] == [
        "all (no validation split: training accuracy)",
        "held out",
    ]
    accuracy = figure.axes[0]
    assert [list(line.get_ydata()) for line in accuracy.lines] == [
        [row["train_accuracy"] for row in rows],
        [0.9] * 3,
    ]
    assert [line.get_linestyle() for line in accuracy.lines] == ["--", "-"]
    alone = plots.compare([("all", rows)], "t").axes[0]
    assert alone.get_yscale() == "logit" and alone.get_ylabel().startswith("accuracy; dashed: train")


@pytest.fixture
def trainer(idx_dir) -> Trainer:
    """A Trainer on every training image of the tests' digits, its initial weights' loss 1."""
    trainer = trainer_for(["data.source=idx", f"data.dir={idx_dir}"], *ALL_IMAGES)
    trainer.history.start_loss = 1.0
    return trainer


def test_an_epoch_at_chance_is_caught_by_its_training_accuracy(trainer):
    """Real runs at chance need a learning rate on a knife's edge: an epoch's sums set by hand."""
    chance = np.bincount(trainer.train.labels).max() / len(trainer.train)
    trainer.position = Position(loss_sum=2.0 * 1200, correct=round(chance * 1200), seen=1200)
    with pytest.raises(DivergedError, match=f"the training accuracy is {chance:.4f}, no better than always"):
        trainer._end_epoch(0.01)
    trainer.position = Position(loss_sum=2.0 * 1200, correct=round((chance + 0.05) * 1200), seen=1200)
    record = trainer._end_epoch(0.01)  # a slow start, not chance
    assert math.isnan(record.val_loss) and math.isnan(record.val_accuracy) and trainer.history.kept_epoch == 1


def test_keeping_a_best_epoch_needs_validation_examples():
    with pytest.raises(
        ConfigError,
        match=r"validation = 0 holds out no examples to choose an epoch by \(train.keep = best_val_loss\)",
    ):
        train.check(TrainConfig(keep="best_val_loss"), 1000, 0)
    train.check(TrainConfig(keep="last"), 1000, 0)
    with pytest.raises(
        ConfigError, match=r"keeps its last epoch \(train.keep = last\): set train.patience=0$"
    ):
        train.check(TrainConfig(keep="last", patience=3), 1000, 0)  # no other train.keep to suggest
