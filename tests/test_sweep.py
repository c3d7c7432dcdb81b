"""`mlp sweep` on Optuna: bad specs fail before any trial; each trial is an ordinary run, the
objective its kept validation accuracy; best.yaml retrains bit for bit; the same command
again continues the study; hopeless trials are pruned; two workers share one study, on the
embedded SQLite file and on a real PostgreSQL server started here, and a worker killed in the
middle of a trial leaves it failed and run again by the other, every trial accounted for."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import MLP_COMMAND, TINY, closed_port, epoch_of, mlp, require
from PIL import Image

optuna = pytest.importorskip("optuna")
SIGNALS = pytest.mark.skipif(sys.platform == "win32", reason="Windows sends a child no SIGINT or SIGKILL")


def write_spec(folder: Path, space: dict, **keys) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({"config": TINY, **keys, "space": space}))
    return path


SPACE = {
    "train.lr": {"low": 1.0e-4, "high": 0.1, "log": True},
    "model.hidden": {"choices": [[16], [32, 32]]},
    "train.batch_size": {"low": 16, "high": 64, "step": 16},
}


def study_of(out: Path, storage: str | None = None):
    return optuna.load_study(study_name="sweep", storage=storage or f"sqlite:///{out / 'study.db'}")


# --- bad specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space, sets, message",
    [
        (
            {"train.lrr": {"low": 0.1, "high": 1}},
            [],
            "'train.lrr' is not a config key; did you mean 'train.lr'?",
        ),
        (
            {"train.batch_size": {"low": 32.5, "high": 64}},
            [],
            "train.batch_size is a whole number: low, high and step must be ints",
        ),
        (
            {"model.dropout": {"low": 0.0, "high": 1.5}},
            [],
            "model.dropout reaches a value the config refuses: model.dropout = 1.5 is out of range",
        ),
        (
            {"model.activation": {"choices": ["relu", "swish"]}},
            [],
            "model.activation = 'swish' is out of range: it must be one of relu, sigmoid, tanh",
        ),
        (
            {"model.hidden": {"low": 1, "high": 2}},
            [],
            "model.hidden takes list values: give it {choices: [...]}",
        ),
        ({}, [], "space must map config keys to ranges"),
        (
            {"train.lr": {"low": 0.0, "high": 0.1, "log": True}},
            [],
            "log must be true or false, needs low > 0",
        ),
        ({"train.lr": {"low": 0.1, "high": 0.01}}, [], "low (0.1) must not be above high (0.01)"),
        (
            {"train.lr": {"low": 0.01, "high": 0.1}},
            ["train.lr=0.05"],
            "train.lr is swept, and --set fixes it too",
        ),
        ({"train.lr": {"low": 0.01, "high": 0.1, "by": 2}}, [], "train.lr needs low and high"),
    ],
)
def test_a_bad_spec_fails_before_any_trial_naming_the_key(tmp_path, space, sets, message):
    spec = write_spec(tmp_path, space)
    result = mlp("sweep", spec, "--out", tmp_path / "out", *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_spec_with_an_unknown_key_or_a_missing_config_fails(tmp_path):
    (tmp_path / "spec.yaml").write_text("trails: 3\nspace: {train.lr: {low: 0.1, high: 1}}\n")
    result = mlp("sweep", tmp_path / "spec.yaml", "--out", tmp_path / "out")
    assert (
        result.exit_code == 1
        and "unknown key 'trails'; allowed: config, trials, seed, space" in result.output
    )
    (tmp_path / "spec.yaml").write_text("config: nowhere.yaml\nspace: {train.lr: {low: 0.1, high: 1}}\n")
    result = mlp("sweep", tmp_path / "spec.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "cannot read config nowhere.yaml" in result.output
    assert not (tmp_path / "out").exists()


def test_an_unreachable_storage_is_a_clear_error_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path, SPACE)
    url = f"postgresql://mlp:secret@127.0.0.1:{closed_port()}/sweep"
    result = mlp("sweep", spec, "--out", tmp_path / "out", "--storage", url)
    assert (
        result.exit_code == 1
        and "cannot open the study's storage postgresql://mlp:***@127.0.0.1" in result.output
    )
    assert "secret" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


# --- one worker -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from conftest import write_idx_dir

    folder = tmp_path_factory.mktemp("sweep")
    idx = write_idx_dir(folder / "idx")
    spec = write_spec(folder, SPACE, trials=5, seed=0)
    result = mlp("sweep", spec, "--out", folder / "out", "--set", f"data.dir={idx}")
    assert result.exit_code == 0, result.output
    return folder, idx, result.output


def test_each_trial_is_an_ordinary_run_and_its_objective_the_kept_validation_accuracy(swept):
    folder, _, output = swept
    out = folder / "out"
    study = study_of(out)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    for trial in study.trials:
        run_dir = out / f"trial-{trial.number:03d}"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert trial.value == metrics["kept_val_accuracy"] != metrics["test_accuracy"] or trial.value == 1.0
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["train"]["lr"] == trial.params["train.lr"]
        assert config["model"]["hidden"] == yaml.safe_load(trial.params["model.hidden"])
    result = mlp("runs", out)
    assert result.exit_code == 0 and result.output.count("completed") == 5
    assert mlp("eval", out / "trial-000").exit_code == 0
    assert "5 trials (5 complete); best: trial" in output


def test_best_yaml_retrains_to_the_same_kept_validation_accuracy_bit_for_bit(swept, tmp_path):
    folder, _, _ = swept
    out = folder / "out"
    summary = json.loads((out / "sweep.json").read_text())
    best = summary["best"]
    assert best["val_accuracy"] == max(t["val_accuracy"] for t in summary["trials"])
    result = mlp("train", "--config", out / "best.yaml", "--out", tmp_path / "again")
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["kept_val_accuracy"] == best["val_accuracy"]
    with np.load(tmp_path / "again" / "weights.npz") as a, np.load(Path(best["run"]) / "weights.npz") as b:
        assert all(np.array_equal(a[name], b[name]) for name in a.files)


def test_the_pictures_are_drawn(swept):
    out = swept[0] / "out"
    for name in ("history.png", "importances.png", "slices.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] >= 600


def test_the_same_command_again_goes_on_with_the_study(swept):
    folder, idx, _ = swept
    out = folder / "out"
    before = (out / "trial-000" / "weights.npz").read_bytes()
    result = mlp("sweep", folder / "spec.yaml", "--out", out, "--trials", "7", "--set", f"data.dir={idx}")
    assert result.exit_code == 0, result.output
    assert "trial 5:" in result.output and "trial 6:" in result.output and "trial 4:" not in result.output
    assert len(study_of(out).trials) == 7 and (out / "trial-000" / "weights.npz").read_bytes() == before


def test_an_integer_range_without_a_step_and_on_a_log_scale(idx_dir, tmp_path):
    spec = write_spec(tmp_path, {"train.batch_size": {"low": 16, "high": 64, "log": True}}, trials=2)
    result = mlp("sweep", spec, "--out", tmp_path / "out", "--set", f"data.dir={idx_dir}")
    assert result.exit_code == 0, result.output
    sizes = [t.params["train.batch_size"] for t in study_of(tmp_path / "out").trials]
    assert len(sizes) == 2 and all(isinstance(n, int) and 16 <= n <= 64 for n in sizes)


def test_a_model_the_keys_make_together_is_checked_before_any_trial(tmp_path):
    spec = write_spec(tmp_path, {"model.hidden": {"choices": [[16], [16, 16]]}})
    result = mlp("sweep", spec, "--out", tmp_path / "out", "--set", "model.kind=rnn")
    assert result.exit_code == 1 and "model.kind = rnn has one recurrent layer" in result.output
    assert not (tmp_path / "out").exists()


def test_hopeless_trials_are_pruned_and_shown_so(idx_dir, tmp_path):
    """With a learning rate too small to learn in 8 epochs among the choices, the median
    pruner stops such a trial after its warm-up epochs once four trials have completed."""
    space = {"train.lr": {"choices": [1.0e-6, 0.01]}}
    spec = write_spec(tmp_path, space, trials=8, seed=1)
    sets = ["--set", f"data.dir={idx_dir}", "--set", "train.epochs=8"]
    result = mlp("sweep", spec, "--out", tmp_path / "out", *sets)
    assert result.exit_code == 0, result.output
    pruned = [t for t in study_of(tmp_path / "out").trials if t.state.name == "PRUNED"]
    assert pruned and all(yaml.safe_load(t.params["train.lr"]) == 1.0e-6 for t in pruned)
    for trial in pruned:
        metrics = json.loads((tmp_path / "out" / f"trial-{trial.number:03d}" / "metrics.json").read_text())
        assert metrics["status"] == "pruned" and metrics["epochs"] < 8
    assert "pruned" in mlp("runs", tmp_path / "out").output


# --- many workers -----------------------------------------------------------------------------------


def worker(spec: Path, out: Path, idx: Path, *options: str) -> subprocess.Popen:
    command = [*MLP_COMMAND, "sweep", str(spec), "--out", str(out), "--set", f"data.dir={idx}", *options]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}  # each epoch's line as it happens
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def accounted_for(study, out_dirs: list[Path], n: int) -> None:
    """n trials completed or pruned, each in its own run directory with its metrics; nothing
    running, nothing done twice."""
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == n and not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    runs = [
        d / f"trial-{t.number:03d}"
        for t in finished
        for d in out_dirs
        if (d / f"trial-{t.number:03d}").exists()
    ]
    assert len(runs) == n and all((run / "metrics.json").exists() for run in runs)


def test_two_workers_share_the_embedded_study(idx_dir, tmp_path):
    spec = write_spec(tmp_path, SPACE, trials=6)
    workers = [worker(spec, tmp_path / "out", idx_dir) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert all("trial" in output for output in outputs)  # both took trials
    accounted_for(study_of(tmp_path / "out"), [tmp_path / "out"], 6)


@pytest.fixture
def postgres():
    """A PostgreSQL server of Debian's package on 127.0.0.1, started for the test, and the URL
    of a database on it."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    bindir = require(
        binaries[-1] if binaries else Path("/usr/lib/postgresql/VERSION/bin"),
        "PostgreSQL (apt-get install postgresql)",
    )
    base = Path(tempfile.mkdtemp(prefix="mlpcli-postgres-"))
    base.chmod(0o755)  # the server's user must reach its data folder (pytest's tmp_path is private)
    data, port = base / "data", closed_port()
    data.mkdir()
    as_user = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]

    def pg(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data}"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start")
    try:
        pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "sweep")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/sweep"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_on_postgresql_one_killed_in_a_trial_finish_the_study(postgres, idx_dir, tmp_path):
    """Two machines' worth of workers (each its own --out) on one PostgreSQL study: the first
    is killed with SIGKILL in the middle of a trial; the second fails that trial when its
    heartbeat stops, runs it again, and the study ends with every trial accounted for."""
    spec = write_spec(tmp_path, SPACE, trials=5)
    options = ("--storage", postgres, "--heartbeat", "1", "--set", "train.epochs=30")
    first = worker(spec, tmp_path / "a", idx_dir, *options)
    for line in first.stdout:  # kill it in its first trial, a few epochs in
        if epoch_of(line) == 3:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    second = worker(spec, tmp_path / "b", idx_dir, *options)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    study = optuna.load_study(study_name="sweep", storage=postgres)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [0]  # the killed worker's trial…
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params == failed[0].params  # …run again, once
    accounted_for(study, [tmp_path / "a", tmp_path / "b"], 5)
    assert not (tmp_path / "a" / "trial-000" / "metrics.json").exists()  # it never finished there


@SIGNALS
def test_ctrl_c_stops_the_trial_marks_it_and_exits_130(idx_dir, tmp_path):
    spec = write_spec(tmp_path, SPACE, trials=3)
    sweeping = worker(spec, tmp_path / "out", idx_dir, "--set", "train.epochs=200")
    for line in sweeping.stdout:
        if epoch_of(line) == 2:
            sweeping.send_signal(signal.SIGINT)
            break
    output = sweeping.communicate(timeout=120)[0]
    assert sweeping.returncode == 130, output
    assert "Resume with: mlp train --resume" in output
    (trial,) = study_of(tmp_path / "out").trials
    assert trial.state.name == "FAIL" and (tmp_path / "out" / "trial-000" / "checkpoint.npz").exists()
    assert (
        json.loads((tmp_path / "out" / "trial-000" / "metrics.json").read_text())["status"] == "interrupted"
    )


def test_trials_that_all_diverge_stop_the_sweep_with_a_word(idx_dir, tmp_path):
    spec = write_spec(tmp_path, {"train.lr": {"low": 1.0e5, "high": 1.0e6, "log": True}}, trials=2)
    sets = ["--set", f"data.dir={idx_dir}", "--set", "train.optimizer=sgd"]
    result = mlp("sweep", spec, "--out", tmp_path / "out", *sets)
    assert result.exit_code == 1 and "2 trials failed (diverged, or stopped)" in result.output, result.output
    states = [t.state.name for t in study_of(tmp_path / "out").trials]
    assert states == ["FAIL", "FAIL"]
    assert "diverged" in mlp("runs", tmp_path / "out").output


def test_the_pictures_leave_the_style_of_the_runs_own_pictures_alone(tmp_path):
    """Optuna's plots set a style for the whole process; the trials drawn after them in the
    same `mlp sweep` must keep mlpcli's."""
    import matplotlib

    from mlpcli.sweep import draw

    def style() -> dict:
        return {key: value for key, value in matplotlib.rcParams.items() if not key.startswith("backend")}

    before = style()
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("train.lr", 0.1, 1.0), n_trials=3)
    draw(study, tmp_path)
    assert (tmp_path / "history.png").exists() and style() == before


@SIGNALS
def test_a_worker_waits_for_a_trial_running_elsewhere_and_reruns_it_when_that_worker_dies(idx_dir, tmp_path):
    """One trial in all: its worker is killed; a second worker finds the study full (a trial
    running), waits for its heartbeat to stop, then runs it again itself."""
    spec = write_spec(tmp_path, SPACE, trials=1)
    options = ("--heartbeat", "1", "--set", "train.epochs=200")
    first = worker(spec, tmp_path / "out", idx_dir, *options)
    for line in first.stdout:
        if epoch_of(line) == 2:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    second = worker(spec, tmp_path / "out", idx_dir, "--heartbeat", "1", "--set", "train.epochs=3")
    output = second.communicate(timeout=120)[0]
    assert second.returncode == 0, output
    assert [t.state.name for t in study_of(tmp_path / "out").trials] == ["FAIL", "COMPLETE"]
