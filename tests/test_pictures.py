"""The pictures of a run and of an evaluation, checked for real: each PNG opens with Pillow, has
the size it should, and is not blank; and what eval.json gained (F1, top-3, the mistakes)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, mlp
from PIL import Image

from mlpcli import training
from mlpcli.artifacts import load_weights
from mlpcli.config import load_config
from mlpcli.data import DataConfig, load_split
from mlpcli.errors import DivergedError, TrainingInterrupted


def assert_picture(path: Path, size: tuple[int, int]) -> None:
    """A PNG of `size` (width, height) with something drawn on it."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size
        grey = np.asarray(image.convert("L"), dtype=float)
    assert grey.std() > 20, f"{path.name} looks blank"


@pytest.fixture
def run_dir(idx_dir, tmp_path) -> Path:
    result = mlp("train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def test_a_run_draws_its_curves(run_dir):
    assert_picture(run_dir / "curves.png", (800, 700))


def test_history_is_rewritten_after_every_epoch(idx_dir, tmp_path):
    out, rows_seen = tmp_path / "run", []

    def should_stop() -> bool:  # asked before every batch: look at what a watcher would see
        if (out / "history.csv").exists():
            rows_seen.append(len(list(csv.DictReader((out / "history.csv").open()))))
        return False

    config = load_config(TINY, [f"data.dir={idx_dir}"])
    training.train_run(config, out, lambda line: None, False, should_stop)
    assert sorted(set(rows_seen)) == [1, 2]  # during epochs 2 and 3: one row, then two


def test_an_interrupted_run_draws_its_curves_and_keeps_a_header(idx_dir, tmp_path):
    out = tmp_path / "run"
    config = load_config(TINY, [f"data.dir={idx_dir}"])
    with pytest.raises(TrainingInterrupted):
        training.train_run(config, out, lambda line: None, False, lambda: True)  # before any batch
    assert (out / "history.csv").read_text().startswith("epoch,train_loss,train_accuracy,val_loss")
    with Image.open(out / "curves.png") as image:
        assert image.size == (800, 700)


def test_a_diverged_run_draws_its_curves(run_dir):
    """Trained 3 epochs, resumed at a rate that blows up in epoch 4: the curves of the three
    epochs are drawn, and the title says the run diverged."""
    before = (run_dir / "curves.png").read_bytes()
    with pytest.raises(DivergedError):
        training.resume_run(run_dir, ["train.epochs=6", "train.lr=1e30"], lambda line: None, False)
    assert (run_dir / "curves.png").read_bytes() != before  # drawn again
    assert_picture(run_dir / "curves.png", (800, 700))
    from mlpcli import plots

    figure = plots.curves(list(csv.DictReader((run_dir / "history.csv").open())), 3, "run: mnist, diverged")
    loss, accuracy, rate = figure.axes
    assert [len(line.get_xdata()) for line in loss.get_lines()[:2]] == [3, 3]  # train and validation
    assert figure.get_suptitle() == "run: mnist, diverged"


def test_the_curves_name_the_dataset_once():
    assert training.curves_title("mnist", "mnist", {"status": "completed", "test_accuracy": 0.99212}) == (
        "mnist, completed, test accuracy 0.9921"
    )
    assert training.curves_title("mnist-20261203-101500", "mnist", {"status": "interrupted"}) == (
        "mnist-20261203-101500, interrupted"
    )
    assert (
        training.curves_title("lr-0.01", "fashion_mnist", {"status": "diverged"})
        == "lr-0.01: fashion_mnist, diverged"
    )


def test_a_run_diverging_before_any_epoch_says_so_in_its_picture(idx_dir, tmp_path):
    out = tmp_path / "run"
    config = load_config(TINY, [f"data.dir={idx_dir}", "train.optimizer=sgd", "train.lr=1e6"])
    with pytest.raises(DivergedError):
        training.train_run(config, out, lambda line: None, False)
    with Image.open(out / "curves.png") as image:
        assert image.size == (800, 700)
        ink = np.asarray(image.convert("L")) < 128
    rows = np.flatnonzero(ink.any(axis=1))
    assert len(rows) and rows.min() < 60 and rows.max() > 300  # the title, and the words in the middle


def test_eval_draws_the_confusion_and_the_mistakes(run_dir):
    result = mlp("eval", run_dir)
    assert result.exit_code == 0, result.output
    assert_picture(run_dir / "confusion.png", (1500, 700))  # the counts, and the shares by row
    with Image.open(run_dir / "mistakes.png") as image:
        assert image.size[0] == 960


def test_eval_json_gains_f1_top3_and_the_mistakes(run_dir, idx_dir):
    assert mlp("eval", run_dir).exit_code == 0
    report = json.loads((run_dir / "eval.json").read_text())
    saved = load_weights(run_dir)
    test = load_split(DataConfig(source="idx", dir=str(idx_dir)), "test")
    probabilities = saved.model.output.scores(saved.model.forward(saved.norm.apply(test.images)))
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != test.labels)
    assert sorted(report["mistakes"]) == wrong.tolist()
    confidence = probabilities[report["mistakes"], predicted[report["mistakes"]]]
    assert np.all(np.diff(confidence) <= 0)  # the most confident mistake first
    top3 = np.argsort(-probabilities, axis=1)[:, :3]
    assert report["top3_accuracy"] == pytest.approx(np.mean((top3 == test.labels[:, None]).any(axis=1)))
    f1 = [c["f1"] for c in report["per_class"]]
    assert report["macro_f1"] == pytest.approx(np.mean(f1))
    support = [c["support"] for c in report["per_class"]]
    assert report["weighted_f1"] == pytest.approx(np.dot(f1, support) / sum(support))
    assert report["accuracy"] <= report["top3_accuracy"] and report["split"] == "test"
    counts, shares = np.array(report["confusion_matrix"]), np.array(report["confusion_matrix_by_row"])
    np.testing.assert_allclose(shares, counts / counts.sum(axis=1, keepdims=True))
    assert np.diag(shares) == pytest.approx([c["recall"] for c in report["per_class"]])


def test_eval_of_the_validation_split_reproduces_the_kept_epoch(run_dir):
    result = mlp("eval", run_dir, "--split", "validation")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((run_dir / "eval-validation.json").read_text())
    assert report["accuracy"] == metrics["kept_val_accuracy"]  # the same seeded split training held out
    assert sum(c["support"] for c in report["per_class"]) == 200
    assert (run_dir / "confusion-validation.png").exists() and (run_dir / "mistakes-validation.png").exists()
    assert not (run_dir / "eval.json").exists()  # the test split's report is another file


def test_eval_of_the_training_split_is_the_images_it_trained_on(run_dir):
    result = mlp("eval", run_dir, "--split", "train")
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "eval-train.json").read_text())
    assert report["split"] == "train" and sum(c["support"] for c in report["per_class"]) == 1000
    assert "on the mnist train split (1000 examples)" in result.output


@pytest.mark.parametrize("split", ["validation", "train"])
def test_a_lone_weights_file_has_no_validation_or_training_split(run_dir, tmp_path, split):
    (tmp_path / "lone").mkdir()
    (run_dir / "weights.npz").rename(tmp_path / "lone" / "weights.npz")
    result = mlp("eval", tmp_path / "lone" / "weights.npz", "--split", split)
    assert result.exit_code == 1 and f"a weights file alone has no {split} split" in result.output


def test_training_again_removes_the_pictures_of_the_old_weights(run_dir, idx_dir):
    assert mlp("eval", run_dir).exit_code == 0
    args = ["train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", run_dir, "--overwrite"]
    assert mlp(*args).exit_code == 0
    assert not any((run_dir / name).exists() for name in ("eval.json", "confusion.png", "mistakes.png"))


def test_each_mistake_is_titled_with_its_index_in_the_split():
    from mlpcli import plots

    images = np.zeros((2, 28, 28), np.uint8)
    figure = plots.mistakes(
        images,
        np.array([4242, 7]),
        np.array([3, 5]),
        np.array([8, 6]),
        np.array([0.91, 0.5]),
        list("0123456789"),
        "",
    )
    titles = [axes.get_title() for axes in figure.axes[:2]]
    assert titles == ["#4242: true 3\nsaid 8 0.91", "#7: true 5\nsaid 6 0.50"]
