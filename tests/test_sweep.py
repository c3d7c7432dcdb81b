"""`mlp sweep` on Optuna: bad specs fail before any trial; each trial is an ordinary run, the
objective its kept validation accuracy; best.yaml retrains bit for bit; the same command
again continues the study; hopeless trials are pruned; two workers share one study, on the
embedded SQLite file and on a real PostgreSQL server started here, and a worker killed in the
middle of a trial leaves it failed and run again by the other, every trial accounted for."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import DEFAULT_SIGNALS, MLP_COMMAND, ROOT, TINY, closed_port, epoch_of, mlp, require
from PIL import Image

from mlpcli.cli import main
from mlpcli.sweep import draw, read_spec

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
        (
            {"train.lr": {"low": 0.01, "high": 0.1, "step": 1.0e-300}},
            [],
            "train.lr: step 1e-300 cuts [0.01, 0.1] into more than 1e+12 steps: leave step out",
        ),
        (
            {"train.lr": {"low": 0.01, "high": 0.1, "step": 0.5}},
            [],
            "train.lr: step 0.5 is wider than the range: every trial gets 0.01",
        ),
        (
            {"model.hidden": {"choices": [[16], [100000000]]}},
            [],
            "sweep space: model.hidden = [100000000] makes a network of 79,500,000,010 parameters",
        ),
        (
            {"model.kind": {"choices": ["mlp", "rnn"]}, "model.hidden": {"choices": [[128], [128, 128]]}},
            [],
            "with model.hidden = [128, 128] and model.kind = rnn, trials cannot run: model.kind = rnn"
            " has one recurrent layer, so model.hidden is its one width, such as [128] (it is [128, 128])",
        ),
        (  # keys of different sections that only fail together, with the base config's own
            {"train.patience": {"low": 0, "high": 5}},
            ["train.keep=last"],
            "sweep space: train.patience = 5 can never stop a run that keeps its last epoch",
        ),
        (
            {"data.augment.rotate": {"choices": [0, 90]}, "data.augment.scale": {"low": 0.0, "high": 0.99}},
            ["data.augment.flip=true"],
            "with data.augment.rotate = 90 and data.augment.scale = 0.99, trials cannot run: data.augment:"
            " rotate 90, scale 0.99 and flip make",
        ),
        (  # a sweep judges trials by their validation accuracy: the base config must hold some out
            {"train.lr": {"low": 0.001, "high": 0.01}},
            ["data.validation=0", "train.keep=last"],
            "data.validation = 0 holds no examples out, and a sweep judges each trial by its kept validation",
        ),
        (  # … and so must every trial (a base without any is fine when the space gives it some)
            {"data.validation": {"low": 0, "high": 500}},
            ["train.keep=last"],
            "sweep space: data.validation reaches a value the config refuses: data.validation = 0 holds no",
        ),
        (
            {"data.augment.shift": {"choices": [0, 2, 30]}},
            [],
            "sweep space: data.augment.shift = 30 could move a 28×28 image out of its frame",
        ),
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


def test_a_base_config_without_validation_examples_may_sweep_how_many_to_hold_out(tmp_path):
    base = tmp_path / "all.yaml"
    base.write_text(Path(TINY).read_text().replace("validation: 200", "validation: 0") + "  keep: last\n")
    spec = write_spec(tmp_path, {"data.validation": {"choices": [100, 200]}}, config=str(base))
    assert read_spec(spec).space[0].key == "data.validation"


def test_kinds_and_widths_that_make_models_together_in_every_combination_pass_the_check(tmp_path):
    space = {"model.kind": {"choices": ["mlp", "rnn"]}, "model.hidden": {"choices": [[128], [256]]}}
    assert len(read_spec(write_spec(tmp_path, space)).space) == 2


def test_checking_a_spec_builds_no_network(tmp_path):
    """A width of a million makes a network of 794 million parameters: the check before any
    trial counts them, and allocates none."""
    spec = write_spec(tmp_path, {"model.hidden": {"choices": [[16], [1000000]]}})
    tracemalloc.start()
    try:
        read_spec(spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


@pytest.mark.parametrize(
    "seed, message",
    [(2**32, "seed = 4294967296 must be a whole number from 0 to 4294967295"), (-1, "from 0 to"), (True, "")],
)
def test_a_seed_out_of_the_samplers_range_is_refused(tmp_path, seed, message):
    result = mlp("sweep", write_spec(tmp_path, SPACE, seed=seed), "--out", tmp_path / "out")
    assert result.exit_code == 1 and f"sweep spec {tmp_path / 'spec.yaml'}: seed = " in result.output
    assert message in result.output and not (tmp_path / "out").exists()


def test_the_largest_seed_goes_on_past_the_samplers_range(idx_dir, tmp_path):
    """The sampler's seed moves on by the trials the study holds: past 2³² − 1 it wraps round."""
    spec = write_spec(
        tmp_path, {"train.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}, trials=1, seed=2**32 - 1
    )
    sets = ["--set", f"data.dir={idx_dir}", "--set", "train.epochs=1"]
    assert mlp("sweep", spec, "--out", tmp_path / "out", *sets).exit_code == 0
    result = mlp("sweep", spec, "--out", tmp_path / "out", "--trials", "2", *sets)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "text, message",
    [
        ("config: a\nspace: {train.lr: {low: 0.1, high: 1}\n", "is not valid YAML: line 3, column 1:"),
        (Path(TINY).read_text(), "is a config, not a sweep spec: a spec names its base config"),
    ],
)
def test_a_spec_that_is_not_one_is_named_a_spec(tmp_path, text, message):
    (tmp_path / "spec.yaml").write_text(text)
    result = mlp("sweep", tmp_path / "spec.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 1 and message in result.output and "<unicode string>" not in result.output
    assert "sweep spec" in result.output or "not a sweep spec" in result.output


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql:/mlp:secret@127.0.0.1/sweep", "postgresql:/mlp:***@127.0.0.1/sweep"),
        ("mlp:secret@127.0.0.1/sweep", "mlp:***@127.0.0.1/sweep"),
        ("postgresql://mlp@127.0.0.1/sweep?password=secret", "postgresql://mlp@127.0.0.1/sweep?password=***"),
        ("postgresql://mlp:secret@127.0.0.1:abc/sweep", "postgresql://mlp:***@127.0.0.1:abc/sweep"),
        ("postgresql://mlp:se@c:ret@127.0.0.1/sweep", "postgresql://mlp:***@127.0.0.1/sweep"),
        ("postgresql://mlp:se?cret@127.0.0.1/sweep", "postgresql://mlp:***@127.0.0.1/sweep"),
        (
            "postgresql://mlp@127.0.0.1/sweep?sslpassword=secret",
            "postgresql://mlp@127.0.0.1/sweep?sslpassword=***",
        ),
    ],
)
def test_a_storage_url_that_cannot_be_used_is_shown_without_its_password(idx_dir, tmp_path, url, shown):
    sets = ["--set", f"data.dir={idx_dir}", "--storage", url]
    result = mlp("sweep", write_spec(tmp_path, SPACE), "--out", tmp_path / "out", *sets)
    assert result.exit_code == 1 and f"cannot open the study's storage {shown}: " in result.output, (
        result.output
    )
    assert "secret" not in result.output and "ret@" not in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_storage_whose_driver_is_missing_says_what_to_install(idx_dir, tmp_path):
    url = f"postgresql+pg8000://mlp@127.0.0.1:{closed_port()}/sweep"
    sets = ["--set", f"data.dir={idx_dir}", "--storage", url]
    result = mlp("sweep", write_spec(tmp_path, SPACE), "--out", tmp_path / "out", *sets)
    assert (
        result.exit_code == 1
        and 'its database driver, pg8000, is not installed: pip install "pg8000"' in (result.output)
    )


def test_the_storage_may_come_from_the_environment_not_the_command_line(idx_dir, tmp_path):
    """The URL, password and all, stays out of `ps` and the shell's history."""
    spec = write_spec(tmp_path, SPACE, trials=1)
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    sets = ["--set", f"data.dir={idx_dir}", "--set", "train.epochs=1"]
    result = CliRunner().invoke(
        main,
        ["sweep", str(spec), "--out", str(tmp_path / "out"), *sets],
        env={"MLPCLI_SWEEP_STORAGE": elsewhere},
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere.db").exists() and not (tmp_path / "out" / "study.db").exists()


def test_without_the_sweep_extra_it_says_how_to_add_it_to_this_mlpcli(tmp_path):
    code = "import sys; sys.modules['optuna'] = None\nfrom mlpcli.cli import entry_point; entry_point()"
    spec = write_spec(tmp_path, SPACE)
    result = subprocess.run([sys.executable, "-c", code, "sweep", str(spec)], capture_output=True, text=True)
    said = f'Error: mlp sweep needs optuna, of its extra: pip install -e "{ROOT}[sweep]"\n'
    assert result.returncode == 1 and result.stderr == said, result.stderr


def test_an_unreachable_storage_is_a_clear_error_and_writes_nothing(idx_dir, tmp_path):
    spec = write_spec(tmp_path, SPACE)
    url = f"postgresql://mlp:secret@127.0.0.1:{closed_port()}/sweep"
    result = mlp("sweep", spec, "--out", tmp_path / "out", "--storage", url, "--set", f"data.dir={idx_dir}")
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
    said = re.findall(
        r"trial (\d+) pruned after epoch \d+: its best validation accuracy, 0\.\d+, is below", result.output
    )
    assert sorted(map(int, said)) == [t.number for t in pruned]


# --- many workers -----------------------------------------------------------------------------------


def worker(spec: Path, out: Path, idx: Path, *options: str) -> subprocess.Popen:
    command = [*MLP_COMMAND, "sweep", str(spec), "--out", str(out), "--set", f"data.dir={idx}", *options]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}  # each epoch's line as it happens
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **DEFAULT_SIGNALS
    )


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


@dataclass
class Postgres:
    url: str  # as the README writes it: postgresql://, no password
    stop: Callable[[], None]  # the server dies at once (pg_ctl -m immediate)


@pytest.fixture
def postgres(monkeypatch):
    """A PostgreSQL server of Debian's package on 127.0.0.1, started for the test, its user's
    password required (scram-sha-256), and a database on it. The password is in PGPASSWORD,
    as a user exports it (libpq reads it), for the test and the workers it starts."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    bindir = require(
        binaries[-1] if binaries else Path("/usr/lib/postgresql/VERSION/bin"),
        "PostgreSQL (apt-get install postgresql)",
    )
    base = Path(tempfile.mkdtemp(prefix="mlpcli-postgres-"))
    base.chmod(0o755)  # the server's user must reach its data folder (pytest's tmp_path is private)
    data, port, password = base / "data", closed_port(), "sweep-secret"
    data.mkdir()
    (base / "password").write_text(password)
    as_user = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    monkeypatch.setenv("PGPASSWORD", password)

    def pg(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    auth = ["-A", "scram-sha-256", f"--pwfile={base / 'password'}"]
    pg(str(bindir / "initdb"), "-D", str(data), *auth, "-U", "postgres")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data}"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start")
    stopped = False

    def stop() -> None:
        nonlocal stopped
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        stopped = True

    try:
        pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "sweep")
        yield Postgres(f"postgresql://postgres@127.0.0.1:{port}/sweep", stop)
    finally:
        if not stopped:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_on_postgresql_one_killed_in_a_trial_finish_the_study(postgres, idx_dir, tmp_path):
    """Two machines' worth of workers (each its own --out) on one PostgreSQL study: the first
    is killed with SIGKILL in the middle of a trial; the second fails that trial when its
    heartbeat stops, runs it again, and the study ends with every trial accounted for."""
    spec = write_spec(tmp_path, SPACE, trials=5)
    options = ("--storage", postgres.url, "--heartbeat", "1", "--set", "train.epochs=30")
    first = worker(spec, tmp_path / "a", idx_dir, *options)
    for line in first.stdout:  # kill it in its first trial, a few epochs in
        if epoch_of(line) == 3:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    second = worker(spec, tmp_path / "b", idx_dir, *options)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    study = optuna.load_study(study_name="sweep", storage=postgres.url)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [0]  # the killed worker's trial…
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params == failed[0].params  # …run again, once
    accounted_for(study, [tmp_path / "a", tmp_path / "b"], 5)
    assert not (tmp_path / "a" / "trial-000" / "metrics.json").exists()  # it never finished there


def test_the_database_dying_in_a_trial_is_one_line_and_the_trial_keeps_its_checkpoint(
    postgres, idx_dir, tmp_path
):
    spec = write_spec(tmp_path, SPACE, trials=3)
    options = ("--storage", postgres.url, "--heartbeat", "1", "--set", "train.epochs=200")
    sweeping = worker(spec, tmp_path / "out", idx_dir, *options)
    for line in sweeping.stdout:
        if epoch_of(line) == 3:
            postgres.stop()
            break
    output = sweeping.communicate(timeout=120)[0]
    assert sweeping.returncode == 1, output
    errors = [line for line in output.splitlines() if not epoch_of(line) and "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("Error: the study's storage failed in trial 0"), output
    assert "Traceback" not in output and "Run the same command again once it is back" in errors[0]
    run = tmp_path / "out" / "trial-000"
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoint.npz").exists()


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
    assert result.exit_code == 1 and "2 trials failed (each said why as it failed)" in result.output, (
        result.output
    )
    states = [t.state.name for t in study_of(tmp_path / "out").trials]
    assert states == ["FAIL", "FAIL"]
    assert "diverged" in mlp("runs", tmp_path / "out").output


def test_the_pictures_speak_of_the_kept_validation_accuracy_whole_trials_and_choices_as_written(tmp_path):
    study = optuna.create_study(direction="maximize")
    widths = ["[256]", "[512, 512]"]  # as a sweep stores its choices: YAML text
    for width in widths:
        study.enqueue_trial({"model.hidden": width})
    study.optimize(lambda trial: 0.9 + widths.index(trial.suggest_categorical("model.hidden", widths)) / 9, 2)
    figures = draw(study, tmp_path)
    history = figures["history.png"].axes[0]
    assert history.get_ylabel() == "kept validation accuracy"
    assert [text.get_text() for text in history.get_legend().get_texts()] == [
        "kept validation accuracy",
        "best so far",
    ]
    assert history.get_xticks().tolist() and all(float(tick).is_integer() for tick in history.get_xticks())
    slices = figures["slices.png"]
    slices.canvas.draw()
    assert [label.get_text() for label in slices.axes[0].get_xticklabels()] == widths
    assert slices.axes[0].get_ylabel() == "kept validation accuracy"


@SIGNALS
def test_trials_stopped_by_ctrl_c_are_no_failures_and_the_same_command_goes_on(idx_dir, tmp_path):
    spec, out = write_spec(tmp_path, SPACE, trials=2), tmp_path / "out"
    for _ in range(2):  # as many stopped trials as the study's trials
        sweeping = worker(spec, out, idx_dir, "--set", "train.epochs=200")
        for line in sweeping.stdout:
            if epoch_of(line) == 2:
                sweeping.send_signal(signal.SIGINT)
                break
        assert sweeping.wait(timeout=120) == 130
    result = mlp("sweep", spec, "--out", out, "--set", f"data.dir={idx_dir}", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    assert "4 trials (2 complete, 2 stopped); best: trial" in result.output


def test_offline_the_shipped_mnist_is_said_once_and_every_trial_reads_it(tmp_path):
    spec = write_spec(tmp_path, {"train.lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}}, trials=2)
    dead = f"http://127.0.0.1:{closed_port()}"
    offline = ["data.source=tfds", f"data.mirror={dead}", f"data.dir={tmp_path / 'cache'}", "train.epochs=1"]
    result = mlp("sweep", spec, "--out", tmp_path / "out", *[a for item in offline for a in ("--set", item)])
    assert result.exit_code == 0, result.output
    assert result.output.count("cannot reach 127.0.0.1:") == 1, result.output
    assert "using the copy of mnist shipped with mlpcli: every trial reads it" in result.output
    for trial in ("trial-000", "trial-001"):
        metrics = json.loads((tmp_path / "out" / trial / "metrics.json").read_text())
        assert metrics["data"]["source"] == "shipped"


def test_the_pictures_leave_the_style_of_the_runs_own_pictures_alone(tmp_path):
    """Optuna's plots set a style for the whole process; the trials drawn after them in the
    same `mlp sweep` must keep mlpcli's."""
    import matplotlib

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
