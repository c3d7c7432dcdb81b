"""mlp runs and mlp plot over a folder holding complete, interrupted, diverged, half-written
and damaged runs: every run listed with its status, never a traceback."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, held_lock, mlp
from PIL import Image

from mlpcli import training
from mlpcli.config import load_config
from mlpcli.errors import DivergedError, TrainingInterrupted
from mlpcli.runs import find_runs, labels, table


def train(idx_dir: Path, out: Path, *sets: str, should_stop=lambda: False) -> None:
    config = load_config(TINY, [f"data.dir={idx_dir}", *sets])
    training.train_run(config, out, lambda line: None, False, should_stop)


@pytest.fixture
def runs_dir(idx_dir, tmp_path) -> Path:
    folder = tmp_path / "runs"
    train(idx_dir, folder / "a-complete")
    train(idx_dir, folder / "b-faster", "train.lr=0.05")
    calls = iter(range(1000))
    with pytest.raises(TrainingInterrupted):
        train(idx_dir, folder / "c-interrupted", should_stop=lambda: next(calls) == 40)
    with pytest.raises(DivergedError):
        train(idx_dir, folder / "d-diverged", "train.optimizer=sgd", "train.lr=1e6")
    train(idx_dir, folder / "e-damaged")
    (folder / "e-damaged" / "metrics.json").write_text("{not json")
    (folder / "e-damaged" / "history.csv").write_text("epoch,val_accuracy\n1,x\n")
    (folder / "f-half-written").mkdir()  # a run that crashed after writing its config alone
    (folder / "f-half-written" / "config.yaml").write_bytes(
        (folder / "a-complete" / "config.yaml").read_bytes()
    )
    odd = folder / "g-odd-metrics"  # a hand-edited metrics.json
    shutil.copytree(folder / "a-complete", odd)
    (odd / "metrics.json").write_text('{"status": "completed", "kept_epoch": "1", "test_accuracy": 0.5}')
    (folder / "not-a-run").mkdir()
    (folder / "notes.txt").write_text("a file, not a run")
    return folder


def test_a_run_from_before_clipping_was_counted_is_listed_and_plotted(runs_dir, tmp_path):
    """history.csv of older versions has no `clipped` column: the run is read all the same."""
    history = runs_dir / "a-complete" / "history.csv"
    lines = history.read_text().splitlines()
    history.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    assert "clipped" not in history.read_text()
    result = mlp("runs", runs_dir)
    assert result.exit_code == 0 and "completed" in rows(result.output)["a-complete"]
    assert mlp("plot", runs_dir / "a-complete", "--out", tmp_path / "old.png").exit_code == 0


def rows(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines()[2:]}


def test_every_run_is_listed_with_its_status(runs_dir):
    result = mlp("runs", runs_dir)
    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert sorted(table) == [
        "a-complete",
        "b-faster",
        "c-interrupted",
        "d-diverged",
        "e-damaged",
        "f-half-written",
        "g-odd-metrics",
    ]
    assert table["a-complete"].endswith("completed") and table["c-interrupted"].endswith("interrupted")
    assert table["d-diverged"].endswith("diverged")
    assert "broken: metrics.json unreadable (JSONDecodeError); history.csv unreadable" in table["e-damaged"]
    assert "broken: no metrics.json; no history.csv" in table["f-half-written"]
    assert table["g-odd-metrics"].split()[-5:-2] == ["-", "-", "0.5000"]  # kept "1": not an epoch number
    header = result.output.splitlines()[0].split()
    assert header[:2] == ["run", "dataset"] and header[-6:] == [
        "epochs",
        "kept",
        "val_acc",
        "test_acc",
        "time",
        "status",
    ]
    assert {"train.lr", "train.optimizer"} <= set(header)  # the keys that differ
    assert "data.dir" not in header and "model.hidden" not in header  # the same in every run
    assert "Traceback" not in result.output


def test_a_run_in_progress_shows_its_process(runs_dir):
    with held_lock(runs_dir / "a-complete", pid=4242):
        table = rows(mlp("runs", runs_dir).output)
    assert table["a-complete"].endswith("training (process 4242)")


def test_the_table_sorts_by_any_column(runs_dir):
    result = mlp("runs", runs_dir, "--sort", "train.lr")
    assert column(result.output, "train.lr") == ["0.01"] * 5 + ["0.05", "1e+06"]
    result = mlp("runs", runs_dir, "--sort", "test_acc")
    accuracies = column(result.output, "test_acc")
    known = [float(a) for a in accuracies if a != "-"]
    assert known == sorted(known) and len(known) == 3 and accuracies[-1] == "-"  # missing values last
    result = mlp("runs", runs_dir, "--sort", "test_acc", "--reverse")
    known = [float(a) for a in column(result.output, "test_acc") if a != "-"]
    assert known == sorted(known, reverse=True) and column(result.output, "test_acc")[-1] == "-"
    result = mlp("runs", runs_dir, "--sort", "model.hidden")  # the same in every run: not shown, allowed
    assert result.exit_code == 0 and "model.hidden" not in result.output
    result = mlp("runs", runs_dir, "--sort", "colour")
    assert result.exit_code == 2 and "choose one of run, dataset, epochs" in result.output
    assert "model.kind" not in result.output  # the main columns, not every config key
    result = mlp("runs", runs_dir, "--sort", "test_accurcy")
    assert result.exit_code == 2
    assert (
        "'test_accurcy' is not a column or config key of these runs; did you mean 'test_acc'?"
        in result.output
    )


def column(output: str, name: str) -> list[str]:
    """The cells of the column `name`, top to bottom."""
    lines = output.splitlines()
    index = lines[0].split().index(name)
    return [line.split()[index] for line in lines[2:]]


def test_runs_in_a_folder_beside_the_runs_are_pointed_to(runs_dir, idx_dir, tmp_path):
    """A sweep's trials sit one folder down (runs/sweep-NAME/trial-000): a listing of runs/
    says where they are and how to list them."""
    train(idx_dir, runs_dir / "sweep-tiny" / "trial-000")
    train(idx_dir, runs_dir / "sweep-tiny" / "trial-001")
    result = mlp("runs", runs_dir)
    assert result.exit_code == 0 and "trial-000" not in result.output
    assert f"{runs_dir / 'sweep-tiny'} holds 2 more runs: mlp runs {runs_dir / 'sweep-tiny'}" in result.output
    for name in [p.name for p in runs_dir.iterdir() if p.name != "sweep-tiny"]:
        shutil.rmtree(runs_dir / name) if (runs_dir / name).is_dir() else (runs_dir / name).unlink()
    result = mlp("runs", runs_dir)
    assert result.exit_code == 1
    assert f"holds no run directories; {runs_dir / 'sweep-tiny'} holds 2 more runs: mlp runs" in result.output


def test_a_table_wider_than_the_terminal_comes_in_blocks_that_fit(runs_dir, idx_dir):
    train(idx_dir, runs_dir / "h-rnn", "model.kind=rnn", "model.activation=tanh", "train.clip=1")
    found = [run_ for run_ in find_runs(runs_dir) if not run_.problems]  # a broken run's status is long
    wide = table(found).splitlines()
    assert max(map(len, wide)) > 80
    blocks = table(found, width=80).split("\n\n")
    assert len(blocks) > 1 and all(len(line) <= 80 for block in blocks for line in block.splitlines())
    assert all(block.split()[0] == "run" for block in blocks)  # each block names its rows
    assert sorted({cell for block in blocks for cell in block.splitlines()[0].split()}) == sorted(
        set(wide[0].split())
    )


def test_a_folder_without_runs_and_a_run_directory_itself(runs_dir, tmp_path):
    result = mlp("runs", tmp_path / "runs" / "not-a-run")
    assert result.exit_code == 1 and "holds no run directories" in result.output
    assert mlp("runs", tmp_path / "missing").exit_code == 2
    result = mlp("runs", runs_dir / "a-complete")  # one run: its row
    assert result.exit_code == 0 and list(rows(result.output)) == ["a-complete"]


def test_widths_sort_as_numbers_and_paths_show_what_tells_them_apart(idx_dir, tmp_path):
    folder = tmp_path / "runs"
    for name, hidden in (("w64", "[64]"), ("w128", "[128]"), ("w512x2", "[512,512]"), ("w8", "[8]")):
        train(idx_dir, folder / name, f"model.hidden={hidden}", "train.epochs=1")
    other = shutil.copytree(idx_dir, tmp_path / "elsewhere" / "deep" / "idx")
    train(other, folder / "other-data", "model.hidden=[8]", "train.epochs=1", "data.name=fashion_mnist")
    result = mlp("runs", folder, "--sort", "model.hidden")
    assert column(result.output, "model.hidden") == ["8", "8", "64", "128", "512,512"]  # not as text
    header = result.output.splitlines()[0].split()
    assert "data.name" not in header  # the dataset column says it
    assert set(column(result.output, "data.dir")) == {"…/deep/idx", f"…/{idx_dir.parent.name}/idx"}
    assert max(len(line) for line in result.output.splitlines()) < 140


def test_plot_draws_several_runs_labelled_by_what_differs(runs_dir, tmp_path):
    out = tmp_path / "lr.png"
    result = mlp("plot", runs_dir / "a-complete", runs_dir / "b-faster", "--out", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (900, 700)
        assert np.asarray(image.convert("L")).std() > 20
    found = [run for run in find_runs(runs_dir) if run.path.name in ("a-complete", "b-faster")]
    assert labels(found) == ["a-complete: train.lr=0.01", "b-faster: train.lr=0.05"]


def test_plot_leaves_out_what_has_no_curves_and_takes_a_folder(runs_dir, tmp_path):
    out = tmp_path / "all.jpg"
    result = mlp("plot", runs_dir, "--out", out)  # the folder: its runs, the diverged one among them
    assert result.exit_code == 0, result.output
    assert f"left out {runs_dir / 'f-half-written'}: nothing to plot (no metrics.json; no history.csv)" in (
        result.output
    )
    with Image.open(out) as image:
        assert image.format == "JPEG"
    result = mlp("plot", runs_dir / "f-half-written", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "nothing to plot: no epoch finished in" in result.output
    assert not (tmp_path / "x.png").exists()
    result = mlp("plot", runs_dir / "a-complete", "--out", tmp_path / "x.gif")
    assert result.exit_code == 2 and "name a .png, .svg, .pdf or .jpg file" in result.output
    result = mlp("plot", runs_dir / "nothing", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "nothing: no such run directory" in result.output
