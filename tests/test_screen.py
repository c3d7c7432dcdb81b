"""What a person sees in a real terminal (tmux, 80 and 120 columns wide): `mlp train` and `mlp
sweep` leave on the screen exactly the lines they print into a pipe, each whole: no line wider
than the terminal, nothing of a progress bar left over, nothing shifted."""

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import MLP_COMMAND, REQUIRE_REAL, TINY, closed_port, epoch_of, write_idx_dir
from screen import TMUX, Screen

if sys.platform == "win32" or TMUX is None:
    if REQUIRE_REAL:
        pytest.fail("tmux is missing; .ci/run installs it (apt-get install tmux)", pytrace=False)
    pytest.skip("no tmux (apt-get install tmux)", allow_module_level=True)

WIDTHS = [80, 120]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_idx_dir(tmp_path_factory.mktemp("screen") / "idx", n_train=3000, n_test=300)


def on_screen(args: list[str], columns: int, cwd: Path) -> list[str]:
    """The lines `mlp ARGS` leaves on a terminal `columns` wide, each checked to be whole."""
    cwd.mkdir()
    screen = Screen(shlex.join([*MLP_COMMAND, *args]), columns, cwd)
    try:
        assert screen.wait() == 0, "\n".join(screen.lines())
        shown, joined = screen.lines(), screen.lines(joined=True)
    finally:
        screen.close()
    assert shown == joined, "lines wider than the terminal:\n" + "\n".join(shown)
    return shown[:-1]  # the exit code's line aside


def in_a_pipe(args: list[str], cwd: Path) -> list[str]:
    """The lines `mlp ARGS` prints into a pipe, standard output and error together."""
    cwd.mkdir()
    result = subprocess.run(
        [*MLP_COMMAND, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert result.returncode == 0, result.stdout
    return result.stdout.rstrip("\n").split("\n")


def said(lines: list[str]) -> tuple[list[str], int]:
    """The words of `lines`, numbers masked (times differ), however the lines were broken
    between words; and how many lines are blank."""
    words = [re.sub(r"\d+(\.\d+)?(e-?\d+)?", "#", word) for word in " ".join(lines).split()]
    return words, sum(not line.strip() for line in lines)


@pytest.mark.parametrize("columns", WIDTHS)
def test_mlp_train_leaves_whole_lines_on_the_terminal(tmp_path, columns):
    """The README's first command, offline (its first line, that the shipped MNIST stands in,
    is wider than 80 columns), on a small net for two epochs."""
    offline = ["data.source=tfds", f"data.mirror=http://127.0.0.1:{closed_port()}", "data.dir=cache"]
    sets = [a for item in [*offline, "train.epochs=2"] for a in ("--set", item)]
    args = ["train", "--config", TINY, *sets, "--out", "run"]
    shown = on_screen(args, columns, tmp_path / "terminal")
    assert said(shown) == said(in_a_pipe(args, tmp_path / "pipe")), "\n".join(shown)
    assert shown[0].startswith("cannot reach 127.0.0.1:")
    assert [line.split()[0] for line in shown if re.match(r"\s*\d+\s+\d\.\d{4}\s", line)] == ["1", "2"]


@pytest.mark.parametrize("columns", WIDTHS)
def test_mlp_sweep_leaves_whole_lines_on_the_terminal(data, tmp_path, columns):
    spec = tmp_path / "spec.yaml"
    space = {"train.lr": {"low": 1.0e-3, "high": 0.1, "log": True}, "model.hidden": {"choices": [[16], [32]]}}
    spec.write_text(yaml.safe_dump({"config": TINY, "trials": 2, "seed": 0, "space": space}))
    args = ["sweep", str(spec), "--out", "out", "--set", f"data.dir={data}", "--set", "train.epochs=2"]
    shown = on_screen(args, columns, tmp_path / "terminal")
    assert said(shown) == said(in_a_pipe(args, tmp_path / "pipe")), "\n".join(shown)
    assert shown[0].startswith("trial 0: ") and any(line.startswith("trial 1: ") for line in shown)


def test_ctrl_c_leaves_the_bar_whole_and_says_what_happens_below_it(data, tmp_path):
    sets = ["--set", f"data.dir={data}", "--set", "train.epochs=500", "--set", "train.batch_size=4"]
    command = shlex.join([*MLP_COMMAND, "train", "--config", TINY, *sets, "--out", "run"])
    screen = Screen(command, 80, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not [line for line in screen.lines() if epoch_of(line) == 2]:
            assert time.monotonic() < deadline, "\n".join(screen.lines())
            time.sleep(0.1)
        screen.type("C-c")
        assert screen.wait() == 130
        shown, joined = screen.lines(), screen.lines(joined=True)
    finally:
        screen.close()
    assert shown == joined, "lines wider than the terminal:\n" + "\n".join(shown)
    stop = shown.index("SIGINT: stopping after this batch (again to stop at once)")
    bar = r"epoch \d+/500 +\d+%\|.*\| \d+/\d+ \[.*\]"  # where it stood; or none, between epochs
    assert re.fullmatch(rf"({bar})?(\^C)?", shown[stop - 1]), shown[stop - 1]
    below = shown[stop + 1 :]
    if epoch_of(below[0]):  # Ctrl-C came during an epoch's last batch: that epoch ends, then the stop
        below = below[1:]
    assert below[0].startswith("stopped in epoch")
    assert shown[-2] == "Resume with: mlp train --resume run"
