"""No silent nonsense: each situation in which mlp once gave a result that looked valid and was
not, reproduced, with the behaviour it has now."""

import json
import re
from pathlib import Path

import pytest
from conftest import FASHION, TINY, epoch_of, mlp, write_idx

from mlpcli import training
from mlpcli.config import load_config
from mlpcli.data import read_idx
from mlpcli.errors import TrainingInterrupted


def sets(*items: str) -> list[str]:
    return [word for item in items for word in ("--set", item)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def train_tiny(idx_dir: Path, out: Path, *items: str):
    return mlp("train", "--config", TINY, *sets(f"data.dir={idx_dir}", *items), "--out", out)


# --- 1. wrong data, confident report ------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_run(fashion_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fashion") / "run"
    items = ["data.source=idx", f"data.dir={fashion_dir}", "model.hidden=[16]", "train.epochs=1"]
    result = mlp("train", "--config", FASHION, *sets(*items), "--out", out)
    assert result.exit_code == 0, result.output
    assert mlp("eval", out).exit_code == 0
    return out


def test_eval_on_another_known_dataset_stops_and_keeps_eval_json(fashion_run, mnist_dir):
    before = (fashion_run / "eval.json").read_bytes()
    result = mlp("eval", fashion_run, "--set", f"data.dir={mnist_dir}")
    assert result.exit_code == 1
    assert f"learnt fashion_mnist, but the data in {mnist_dir} is mnist (recognised by its test set)" in (
        result.output
    )
    assert (fashion_run / "eval.json").read_bytes() == before


def test_training_on_fashion_files_as_mnist_stops_and_says_what_to_pass(fashion_dir, tmp_path):
    out = tmp_path / "run"
    result = mlp("train", *sets("data.source=idx", f"data.dir={fashion_dir}"), "--out", out)
    assert result.exit_code == 1
    assert "is fashion_mnist (recognised by its test set), but data.name is mnist" in result.output
    assert "--config configs/fashion_mnist.yaml" in result.output and not out.exists()


def test_eval_with_a_data_name_the_files_contradict_stops(fashion_run, fashion_dir):
    result = mlp("eval", fashion_run, *sets(f"data.dir={fashion_dir}", "data.name=mnist"))
    assert result.exit_code == 1
    assert f"data.name is mnist, but the data in {fashion_dir} is fashion_mnist" in result.output


def test_the_run_on_its_own_data_records_what_it_was(fashion_run):
    data = json.loads((fashion_run / "eval.json").read_text())["data"]
    assert data["recognised"] == "fashion_mnist" and data["warnings"] == []


def test_unknown_data_unlike_the_training_images_is_warned_about(idx_dir, tmp_path):
    assert train_tiny(idx_dir, tmp_path / "run").exit_code == 0
    other = tmp_path / "inverted"
    other.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        array = read_idx(idx_dir / f"{name}.gz")
        write_idx(other / name, 255 - array if "images" in name else array)
    result = mlp("eval", tmp_path / "run", "--set", f"data.dir={other}")
    assert result.exit_code == 0, result.output
    assert "warning: these images are unlike the ones the weights learnt from: pixel mean" in result.output
    warnings = json.loads((tmp_path / "run" / "eval.json").read_text())["data"]["warnings"]
    assert len(warnings) == 2 and "evaluated on other data than the run's own" in warnings[1]


# --- 2. a broken run is "completed" -------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "why"),
    [
        (["train.optimizer=sgd", "train.momentum=0", "train.lr=5"], "no better than always answering"),
        (["train.lr=1"], "the loss rose to"),
        (["train.lr=1", "data.validation=0", "train.keep=last"], "the loss rose to"),
    ],
    ids=[
        "sgd at lr 5",
        "adam at lr 1",
        "adam at lr 1, no validation split",
    ],
)
def test_training_that_blows_up_without_going_non_finite_is_diverged(mnist_dir, tmp_path, items, why):
    out = tmp_path / "run"
    real = ["data.source=idx", f"data.dir={mnist_dir}", "model.hidden=[128]", "train.epochs=2"]
    result = mlp("train", *sets(*real, *items), "--out", out)
    assert result.exit_code == 1 and why in result.output and "try a lower train.lr" in result.output
    assert "nan" not in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and why in metrics["error"]
    assert not (out / "weights.npz").exists()  # it blew up in epoch 1: nothing worth keeping


def test_a_healthy_slow_start_is_not_called_diverged(idx_dir, tmp_path):
    result = train_tiny(idx_dir, tmp_path / "run", "train.optimizer=sgd", "train.lr=0.001", "train.epochs=1")
    assert result.exit_code == 0, result.output


# --- 3. interrupted in epoch 1 ------------------------------------------------------------------


def test_interrupted_before_any_epoch_says_so_and_leaves_no_weights(idx_dir, tmp_path):
    out = tmp_path / "run"
    config = load_config(TINY, [f"data.dir={idx_dir}"])
    calls = iter(range(100))
    with pytest.raises(TrainingInterrupted, match="no epoch has finished, so nothing has been learnt yet"):
        training.train_run(config, out, lambda line: None, False, lambda: next(calls) == 14)
    assert not (out / "weights.npz").exists() and (out / "checkpoint.npz").exists()
    assert (
        out / "history.csv"
    ).read_text() == "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds,clipped\n"
    metrics = json.loads((out / "metrics.json").read_text())
    data = {"source": "idx", "dir": str(idx_dir)}
    assert metrics == {"status": "interrupted", "epochs": 0, "kept_epoch": 0, "data": data}
    result = mlp("eval", out)
    assert result.exit_code == 1 and "stopped before that epoch finished" in result.output
    assert f"Resume it with: mlp train --resume {out}" in result.output
    assert mlp("train", "--resume", out).exit_code == 0  # and then it trains as if never stopped
    assert (out / "weights.npz").exists()


# --- 4. resuming a finished run -----------------------------------------------------------------


def test_resuming_a_finished_run_changes_nothing_and_says_how_to_extend_it(idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train_tiny(idx_dir, out).exit_code == 0
    before = snapshot(out)
    result = mlp("train", "--resume", out)
    assert result.exit_code == 0
    assert "has finished after 3 of its 3 epochs" in result.output
    assert f"mlp train --resume {out} --set train.epochs=N" in result.output
    assert "resuming " not in result.output and snapshot(out) == before


def test_a_finished_run_whose_results_were_never_written_gets_them_on_resume(idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train_tiny(idx_dir, out).exit_code == 0
    for name in ("weights.npz", "metrics.json", "curves.png"):  # as if killed while saving them
        (out / name).unlink()
    result = mlp("train", "--resume", out)
    assert result.exit_code == 0 and "finished training but its results were never written" in result.output
    assert json.loads((out / "metrics.json").read_text())["status"] == "completed"
    assert (out / "weights.npz").exists()
    assert not [line for line in result.output.splitlines() if epoch_of(line)]  # nothing retrained


def test_an_overwriting_run_removes_the_old_results_once_its_first_epoch_ends(idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train_tiny(idx_dir, out).exit_code == 0
    assert mlp("eval", out).exit_code == 0
    config = load_config(TINY, [f"data.dir={idx_dir}", "train.seed=1"])
    calls = iter(range(1000))

    def killed_in_epoch_2() -> bool:  # 32 batches an epoch: a second Ctrl-C in the 40th
        if next(calls) == 40:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        training.train_run(config, out, lambda line: None, False, killed_in_epoch_2, overwrite=True)
    left = {p.name for p in out.iterdir()}
    assert left == {"checkpoint.npz", "config.yaml", "history.csv"}  # the new run's, whole
    assert "seed: 1" in (out / "config.yaml").read_text()


# --- 5 and 6. gradcheck ----------------------------------------------------------------------------


def test_gradcheck_rows_say_which_rule_passed_them():
    result = mlp("gradcheck", "--set", "model.hidden=[16,16]", "--samples", "60", "--threshold", "1e-10")
    assert result.exit_code == 0, result.output
    assert "by abs)" in result.output  # passed by |a − n| ≤ atol, not by the relative error
    assert "'by abs' when |a − n| is at most 1e-09" in result.output


def test_a_large_step_fails_with_a_hint_that_the_step_is_at_fault():
    result = mlp("gradcheck", "--set", "model.hidden=[16,16]", "--samples", "60", "--eps", "1e-3")
    assert result.exit_code == 1 and "FAIL" in result.output
    assert "hint: at the default step ε = 1e-05 these pass:" in result.output
    assert "For them the step ε = 0.001 is at fault, not the backprop" in result.output


def test_a_real_bug_is_told_apart_from_a_bad_step(monkeypatch):
    from mlpcli.nn.activations import ReLU

    monkeypatch.setattr(ReLU, "backward", lambda self, delta, a: None)  # relu' = 1 everywhere
    result = mlp("gradcheck", "--set", "model.hidden=[16,16]", "--samples", "60", "--eps", "1e-3")
    assert result.exit_code == 1
    hint = result.output[result.output.index("hint:") :]
    assert "W1" not in hint.split("fail at the default step too")[0]  # the bug's tensors are not excused
    assert "fail at the default step too" in hint and "W1" in hint.split("fail at the default step too")[1]


def test_explain_shows_the_comparison_itself():
    result = mlp("gradcheck", "--set", "model.hidden=[8]", "--samples", "10", "--explain")
    assert result.exit_code == 0, result.output
    assert "analytic   a = " in result.output and "numerical  n = " in result.output
    assert "|a − n| / max(|a| + |n|, 1e-12) = " in result.output
    assert result.output.count("analytic   a = ") == 5  # W1, b1, W2, b2, input
    assert "--explain shows" not in result.output  # it is on


def test_the_table_ends_with_a_line_that_sums_it_up(monkeypatch):
    result = mlp("gradcheck", "--all")
    assert result.exit_code == 0
    assert re.search(
        r"^all 66 tensors passed \(\d+ entries checked(, \d+ by abs)?(, \d+ at a kink)?\)$",
        result.output,
        re.M,
    )
    from mlpcli.nn.activations import ReLU

    monkeypatch.setattr(ReLU, "backward", lambda self, delta, a: None)  # relu' = 1 everywhere
    result = mlp("gradcheck", "--set", "model.hidden=[16,16]", "--samples", "30")
    assert result.exit_code == 1 and re.search(r"^[1-5] of 7 tensors FAILED \(", result.output, re.M)


# --- 7. small things ----------------------------------------------------------------------------


def test_softmax_regression_trains_and_is_gradchecked(idx_dir, tmp_path):
    result = train_tiny(idx_dir, tmp_path / "dropout", "model.hidden=[]")
    assert result.exit_code == 1 and "model.dropout = 0.1 drops hidden activations" in result.output
    result = train_tiny(idx_dir, tmp_path / "run", "model.hidden=[]", "model.dropout=0")
    assert result.exit_code == 0, result.output
    assert "MLP(64 → 10" in result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_accuracy"] > 0.9
    result = mlp("gradcheck", "--set", "model.hidden=[]", "--set", "model.dropout=0", "--samples", "40")
    assert result.exit_code == 0 and "784-10 softmax_cross_entropy  W1" in result.output  # no hidden σ
    report = json.loads(mlp("gradcheck", "--all", "--json").output)
    assert any(row["check"].startswith("12-5 ") for row in report["checks"]) and report["passed"]


def test_evaluation_rows_name_each_digit_once(idx_dir, tmp_path):
    assert train_tiny(idx_dir, tmp_path / "run").exit_code == 0
    lines = mlp("eval", tmp_path / "run").output.splitlines()
    row = next(line for line in lines if line.startswith("0 "))
    assert len(row.split()) == 5 and 0 <= float(row.split()[1]) <= 1  # class, precision, recall, f1, support
