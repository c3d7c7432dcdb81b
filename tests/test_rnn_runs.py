"""RNN runs (model.kind: rnn) through every command: trained on the real MNIST from its rows,
evaluated, asked to predict drawn digits, listed, plotted, served (with its hidden states),
gradient-checked from its config; resumed bitwise; and the clip of train.clip, counted."""

import csv
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, TINY, epoch_of, mlp, serving
from PIL import Image
from test_predict import as_drawn
from test_resume import assert_same_run, interrupted, straight

from mlpcli import models, training
from mlpcli.artifacts import Saved, load_weights, save_weights
from mlpcli.config import load_config
from mlpcli.data import N_CLASSES, DataConfig, Normalisation, load_split, load_splits
from mlpcli.nn.rnn import RNN
from mlpcli.train import Trainer

RNN_CONFIG = CONFIGS / "mnist_rnn.yaml"
TINY_RNN = ("model.kind=rnn", "model.activation=tanh", "model.recurrent_init=identity", "train.clip=0.5")


def options(*sets: str) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def rnn_run(mnist_dir, tmp_path_factory) -> Path:
    """configs/mnist_rnn.yaml for three epochs on the real MNIST, evaluated."""
    out = tmp_path_factory.mktemp("rnn") / "runs" / "rnn"
    sets = options("data.source=idx", f"data.dir={mnist_dir}", "train.epochs=3")
    result = mlp("train", "--config", RNN_CONFIG, *sets, "--out", out)
    assert result.exit_code == 0, result.output
    assert "RNN(28 steps of 28 → 256 → 10, tanh, softmax_cross_entropy)" in result.output
    assert mlp("eval", out).exit_code == 0
    return out


def test_an_rnn_reading_rows_learns_the_real_mnist(rnn_run):
    metrics = json.loads((rnn_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.93  # chance is 0.1; the MLP's three epochs: 0.97
    eval_report = json.loads((rnn_run / "eval.json").read_text())
    assert eval_report["accuracy"] == metrics["test_accuracy"]  # mlp eval rebuilds the same RNN
    history = list(csv.DictReader((rnn_run / "history.csv").open()))
    assert all(0 <= int(row["clipped"]) <= 430 for row in history)  # 430 batches an epoch
    with np.load(rnn_run / "weights.npz") as npz:
        assert str(npz["kind"]) == "rnn" and int(npz["steps"]) == 28
        assert {"U", "W", "b", "V", "c"} <= set(npz.files) and "W1" not in npz.files


def test_predict_reads_drawn_digits_with_the_rnn(rnn_run, mnist_dir, tmp_path):
    test = load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test")
    paths = []
    for i, digit in enumerate(test.images[:30].reshape(-1, 28, 28)):
        paths.append(tmp_path / f"{i:02d}.png")
        as_drawn(digit, i).save(paths[-1])
    result = mlp("predict", rnn_run, *paths, "--json")
    assert result.exit_code == 0, result.output
    said = [answer["predictions"][0]["class"] for answer in json.loads(result.output)]
    assert np.mean(np.array(said) == test.labels[:30]) >= 0.8


def test_serve_answers_with_the_rnn_and_shows_its_states(rnn_run, tmp_path):
    """The answer equals mlp predict's; the why is the gradient of the RNN's own margin (a
    central difference agrees); the page gets h^(28) and every h^(t)."""
    digit = tmp_path / "three.png"
    Image.open(CONFIGS.parent / "docs" / "three.png").save(digit)
    expected = json.loads(mlp("predict", rnn_run, digit, "--json", "--top", "10").output)[0]
    with serving(rnn_run.parent) as url:
        request = urllib.request.Request(f"{url}/api/predict?run=rnn&top=10", data=digit.read_bytes())
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
    assert [p["class"] for p in answer["predictions"]] == [p["class"] for p in expected["predictions"]]
    states = np.array(answer["states"])
    assert states.shape == (28, 256) and np.abs(states).max() <= 1 and states.min() < 0  # tanh's h^(t)
    assert answer["activations"] == [answer["states"][-1]] and answer["layer_names"][0].startswith("h(28)")
    saved = load_weights(rnn_run)
    pixels = np.array(answer["input"], dtype=np.float64).ravel()
    gradient = np.array(answer["gradient"]).ravel()
    k, j = answer["predictions"][0]["class"], answer["predictions"][1]["class"]

    def margin(image: np.ndarray) -> float:
        Z = saved.model.forward(saved.norm.apply(image.reshape(1, -1)))[0].astype(np.float64)
        return Z[k] - Z[j]

    for index in np.argsort(-np.abs(gradient))[:5]:
        step = np.zeros(28 * 28)
        step[index] = 0.5
        assert margin(pixels + step) - margin(pixels - step) == pytest.approx(gradient[index], rel=0.02)


def test_runs_and_plot_show_rnn_and_mlp_runs_side_by_side(idx_dir, tmp_path):
    folder = tmp_path / "runs"
    for name, sets in (("mlp", ()), ("rnn", TINY_RNN)):
        sets = options(f"data.dir={idx_dir}", *sets)
        result = mlp("train", "--config", TINY, *sets, "--out", folder / name)
        assert result.exit_code == 0, result.output
    result = mlp("runs", folder)
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    kinds = {line.split()[0]: line.split()[header.split().index("model.kind")] for line in rows[1:]}
    assert kinds == {"mlp": "mlp", "rnn": "rnn"}
    assert mlp("plot", folder, "--out", tmp_path / "both.png").exit_code == 0
    assert Image.open(tmp_path / "both.png").size[0] > 300


def test_an_rnn_learns_which_rows_lit_up(idx_dir, tmp_path):
    """The synthetic digits are bands of bright rows: read row by row, the class is *when* the
    band came, which only an error carried back through W teaches the early rows."""
    out = tmp_path / "run"
    result = mlp("train", "--config", TINY, *options(f"data.dir={idx_dir}", *TINY_RNN), "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] >= 0.95
    assert (
        training.epoch_heading(clipping=True) in result.output.splitlines()
    )  # the epoch lines say how often


@pytest.mark.parametrize("calls", [pytest.param(50, id="mid-epoch 2"), pytest.param(65, id="after epoch 2")])
def test_an_rnn_run_stopped_and_resumed_equals_a_straight_one(idx_dir, tmp_path, calls):
    """Dropout on h^(T), augmentation and clipping on: every draw and count resumes exactly."""
    reference = straight(idx_dir, tmp_path / "straight", extra=TINY_RNN)
    interrupted(idx_dir, tmp_path / "stopped", calls, extra=TINY_RNN)
    result = mlp("train", "--resume", tmp_path / "stopped")
    assert result.exit_code == 0, result.output
    assert_same_run(reference, tmp_path / "stopped")
    assert any(int(row["clipped"]) for row in csv.DictReader((reference / "history.csv").open()))


def test_gradcheck_of_the_rnn_config_checks_every_tensor_of_it():
    result = mlp("gradcheck", "--config", RNN_CONFIG)
    assert result.exit_code == 0, result.output
    checked = {line.split()[4] for line in result.output.splitlines() if line.startswith("rnn 28×28-256-10")}
    assert checked == {"U", "W", "b", "V", "c", "input"}
    assert "all 6 tensors passed" in result.output


def test_a_tiny_clip_clips_every_batch_and_none_clips_none(idx_dir, tmp_path):
    """An MLP may clip too: train.clip far below any gradient's length clips all 32 batches of
    each epoch; without train.clip nothing is clipped and the lines do not speak of it."""
    for clip, expected in (("1e-9", 32), ("0", 0)):
        out = tmp_path / clip
        sets = options(f"data.dir={idx_dir}", f"train.clip={clip}")
        result = mlp("train", "--config", TINY, *sets, "--out", out)
        assert result.exit_code == 0, result.output
        history = list(csv.DictReader((out / "history.csv").open()))
        assert [int(row["clipped"]) for row in history] == [expected] * 3
        lines = result.output.splitlines()
        assert (training.epoch_heading(clipping=True) in lines) == bool(expected)
        rows = [line.split() for line in lines if epoch_of(line)]
        assert len(rows) == 3 and all(len(row) > 7 and row[7] == "32" for row in rows) == bool(expected)


def test_a_clipped_step_has_the_clip_as_its_length(idx_dir):
    """Plain SGD at lr 1 moves the weights by the gradient the optimizer got: rescaled to
    length train.clip, in its own direction."""
    sets = [f"data.dir={idx_dir}", "train.clip=0.01", "train.optimizer=sgd", "train.momentum=0"]
    config = load_config(TINY, sets)
    splits = load_splits(config.data, 0)
    model = models.build_model(config.model, splits.train.image_shape, N_CLASSES, np.random.default_rng(0))
    norm = Normalisation.of(splits.train.images)
    trainer = Trainer(model, splits.train, splits.validation, norm, config.train, np.random.default_rng(1))
    before = model.params.copy()
    _, _, clipped = trainer._step(np.arange(32), lr=1.0)
    assert clipped and np.linalg.norm(before - model.params) == pytest.approx(0.01, rel=1e-4)


def test_predict_refuses_an_rnn_that_reads_784_pixels_in_other_rows(tmp_path):
    model = RNN(49, 16, 8, 10)  # 49 rows of 16: 784 inputs, but not a 28×28 image's rows
    model.init(np.random.default_rng(0))
    save_weights(tmp_path / "weights.npz", Saved(model, Normalisation(33.0, 78.0), "mnist"))
    result = mlp("predict", tmp_path / "weights.npz", CONFIGS.parent / "docs" / "three.png")
    assert result.exit_code == 1
    assert "the model takes 784 inputs as 49 rows, not 28×28 images" in result.output


def test_an_rnn_run_that_blows_up_is_stopped_and_said_so(idx_dir, tmp_path):
    sets = options(f"data.dir={idx_dir}", *TINY_RNN[:3], "train.optimizer=sgd", "train.lr=1e4")
    result = mlp("train", "--config", TINY, *sets, "--out", tmp_path / "run")
    assert result.exit_code == 1 and "try a lower train.lr" in result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "diverged"
