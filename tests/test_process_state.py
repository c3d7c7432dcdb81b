"""A command leaves the process as it found it: a program (a notebook, a test, a server) that
runs mlp's commands in its own process keeps its warnings filters, its loggers' levels,
matplotlib's backend and style, its environment and its signal handlers."""

import logging
import os
import signal
import warnings

import matplotlib
import numpy as np
import pytest
import yaml
from conftest import TINY, mlp

DIGIT = "docs/seven.jpg"


def process_state() -> dict:
    """What a command could change for the rest of the process."""
    return {
        "warnings": list(warnings.filters),
        "loggers": {name: logging.getLogger(name).level for name in ("", "optuna", "matplotlib", "PIL")},
        "backend": matplotlib.get_backend(),
        "rc": {key: value for key, value in matplotlib.rcParams.items() if key != "backend"},
        "environment": dict(os.environ),
        "signals": {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)},
        "numpy errors": np.geterr(),
    }


def test_no_command_changes_what_outlives_it(idx_dir, tmp_path):
    pytest.importorskip("optuna")
    import matplotlib.pyplot as plt
    import optuna  # its own logger's level, through its API

    backend = matplotlib.get_backend()
    plt.switch_backend("svg")  # a backend of this program's own choosing, not mlp's Agg
    try:
        run_every_command(idx_dir, tmp_path, optuna)
    finally:
        plt.switch_backend(backend)


def run_every_command(idx_dir, tmp_path, optuna) -> None:
    before, verbosity = process_state(), optuna.logging.get_verbosity()
    run, data = tmp_path / "run", ["--set", f"data.dir={idx_dir}"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump({"config": TINY, "trials": 2, "space": {"train.lr": {"choices": [0.01, 0.1]}}})
    )
    commands = [
        ["train", "--config", TINY, *data, "--set", "train.epochs=1", "--out", run],
        ["train", "--resume", run, "--set", "train.epochs=2"],
        ["eval", run],
        ["runs", tmp_path],
        ["plot", run, "--out", tmp_path / "curves.svg"],
        ["gradcheck"],
        ["sweep", spec, "--out", tmp_path / "sweep", *data, "--set", "train.epochs=2"],
    ]
    for command in commands:
        result = mlp(*command)
        assert result.exit_code == 0, (command, result.output)
        after = process_state()
        changed = [key for key in before if before[key] != after[key]]
        assert not changed, (command[0], changed, [(before[key], after[key]) for key in changed])
        assert optuna.logging.get_verbosity() == verbosity, command[0]
