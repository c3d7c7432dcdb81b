"""In a real terminal (a pseudo-terminal, with the job in its foreground process group, as a
shell runs it): `mlp` piped into `tee`, `tail` and `head`, stopped by Ctrl-C typed at the
terminal, by SIGTERM or SIGHUP to the whole group, or by the terminal closing. The pipe's
reader may die first; that only silences the output: the run keeps what a stop keeps, exits
130 / 143 / 129, and resumes without repeating an epoch. Each case runs several times, as
the order in which the group's processes take the signal is a race."""

import contextlib
import csv
import json
import os
import shlex
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import MLP_COMMAND, TINY, default_signals, write_idx_dir

pty = pytest.importorskip("pty")  # Unix only: Windows has no pseudo-terminals

REPEATS = int(os.environ.get("TERMINAL_REPEATS", 4))
MLP = shlex.join(MLP_COMMAND)


class Terminal:
    """A shell command in a new pseudo-terminal whose output is read as it comes."""

    def __init__(self, command: str, cwd: Path):
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # the child: the terminal's session leader, in its foreground group
            default_signals()  # as a new terminal's shell has them, even when pytest runs under nohup
            os.chdir(cwd)
            os.execvp("bash", ["bash", "-c", command])
        self.output = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the terminal is gone
                return
            if not chunk:
                return
            self.output += chunk

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def signal_group(self, signum: int) -> None:
        os.killpg(self.pid, signum)

    def hang_up(self) -> None:
        os.close(self.master)

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.killpg(self.pid, signal.SIGKILL)
        raise AssertionError(f"the terminal's job did not end; it printed {self.text()!r}")

    def text(self) -> str:
        return self.output.decode(errors="replace")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_idx_dir(tmp_path_factory.mktemp("terminal") / "idx", n_train=6000, n_test=300)


def train_command(data: Path, out: Path, pipe: str, run: str = "{}", epochs: int = 30) -> str:
    """`mlp train` (30 epochs: it is still training when stopped), run as `run` says (`{}`: the
    command), its output through `pipe`, its exit code written to out.code by a subshell that
    outlives the signals."""
    sets = f"--set data.dir={data} --set train.epochs={epochs}"
    train = run.format(f"{MLP} train --config {TINY} {sets} --out {out} 2>&1")
    return f"(trap true INT TERM HUP; {train}; echo $? > {out}.code) {pipe}"


def wait_for_epochs(out: Path, epochs: int, terminal: Terminal, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if history_rows(out) >= epochs:
            return
        time.sleep(0.02)
    raise AssertionError(f"no epoch {epochs} in {out}; the terminal shows {terminal.text()!r}")


def history_rows(out: Path) -> int:
    try:
        return len(list(csv.DictReader((out / "history.csv").open())))
    except (FileNotFoundError, csv.Error):
        return 0


def exit_code(out: Path, timeout: float = 60) -> int:
    """What `mlp train` exited with (the shell may have ended before it did)."""
    deadline, written = time.monotonic() + timeout, Path(f"{out}.code")
    while not (written.exists() and written.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "mlp train did not end"
        time.sleep(0.02)
    return int(written.read_text())


def assert_stopped_and_whole(out: Path, code: int) -> int:
    """What a stop keeps: the checkpoint, the weights, metrics `interrupted`, the curves, the
    exit code; no lock or temporary file left. Returns the epochs finished."""
    assert exit_code(out) == code
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint.npz", "weights.npz", "metrics.json", "curves.png", "history.csv"} <= names, names
    assert not names & {".lock"} and not [n for n in names if n.endswith(".tmp")], names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    return metrics["epochs"]


# what the pipe's reader is, and how the job is stopped
CASES = {
    "| tee, Ctrl-C": ("| tee {out}.log", lambda t: t.type(b"\x03"), 130),
    "| tail, Ctrl-C": ("| tail -n 3 > {out}.tail", lambda t: t.type(b"\x03"), 130),
    "| head, Ctrl-C": ("| head -n 2", lambda t: t.type(b"\x03"), 130),
    "| tee, SIGTERM to the group": ("| tee {out}.log", lambda t: t.signal_group(signal.SIGTERM), 143),
    "| tee, SIGHUP to the group": ("| tee {out}.log", lambda t: t.signal_group(signal.SIGHUP), 129),
    "no pipe, the terminal closes": ("", lambda t: t.hang_up(), 129),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("attempt", range(REPEATS))
def test_a_stop_keeps_the_run_whatever_happens_to_the_output(data, tmp_path, case, attempt):
    pipe, stop, code = CASES[case]
    out = tmp_path / "run"
    terminal = Terminal(train_command(data, out, pipe.format(out=out)), tmp_path)
    wait_for_epochs(out, 2, terminal)  # by then `head -n 2` has exited and closed its pipe
    stop(terminal)
    terminal.wait()
    assert_stopped_and_whole(out, code)


def close_as_a_login_shell_does(terminal: Terminal) -> None:
    """SIGHUP to the jobs (an interactive shell sends it them when its terminal closes), then
    the terminal closes."""
    terminal.signal_group(signal.SIGHUP)
    terminal.hang_up()


# how mlp train is started so that a stop signal is ignored on entry, and the signal
IGNORED = {
    "nohup, the terminal closes": ("nohup {} > nohup.log", close_as_a_login_shell_does),
    # the script outlives the Ctrl-C, as the terminal's shell would, since the leader's end
    # hangs the terminal up: its trapped INT makes a `wait` return 130 at once, a loop goes on
    "a script's & job, Ctrl-C": (
        "{} & while kill -0 $! 2>/dev/null; do sleep 0.1; done; wait $!",
        lambda t: t.type(b"\x03"),
    ),
}


@pytest.mark.parametrize("case", IGNORED)
def test_a_stop_signal_ignored_on_entry_stays_ignored(data, tmp_path, case):
    run, stop = IGNORED[case]
    out = tmp_path / "run"
    # 300 epochs, some seconds: 30 may all be done before the signal comes
    terminal = Terminal(train_command(data, out, "", run, epochs=300), tmp_path)
    try:
        wait_for_epochs(out, 2, terminal)
        stop(terminal)
        assert history_rows(out) < 300, "the signal came too late to tell"
        assert exit_code(out) == 0, terminal.text()
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs"] == 300
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(terminal.pid, signal.SIGKILL)  # a failed case leaves no training behind
        terminal.wait()


def test_resuming_after_a_stop_through_a_pipe_repeats_no_epoch(data, tmp_path):
    out = tmp_path / "run"
    terminal = Terminal(train_command(data, out, f"| tee {out}.log"), tmp_path)
    wait_for_epochs(out, 1, terminal)
    terminal.type(b"\x03")
    terminal.wait()
    epochs = assert_stopped_and_whole(out, 130)
    assert history_rows(out) == epochs  # history.csv lists no epoch the checkpoint lacks
    resume = f"{MLP} train --resume {out} --set train.epochs={epochs + 1} 2>&1 | tee {out}.resumed"
    terminal = Terminal(resume, tmp_path)
    assert terminal.wait() == 0, terminal.text()
    assert f"resuming {out} in epoch {epochs + 1}" in Path(f"{out}.resumed").read_text()
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(row["epoch"]) for row in rows] == list(range(1, epochs + 2))


@pytest.mark.parametrize("reader", ["head -n 1", "true"])
def test_eval_predict_and_runs_write_their_files_into_a_closed_pipe(tmp_path, reader):
    out, seen = tmp_path / "run", tmp_path / "seen"
    sets = "--set data.source=shipped --set model.hidden=[16] --set train.epochs=1"
    assert Terminal(f"{MLP} train --config {TINY} {sets} --out {out}", tmp_path).wait() == 0
    three = Path(__file__).parents[1] / "docs" / "three.png"
    for command, written in (
        (f"eval {out} --split validation", out / "eval-validation.json"),
        (f"eval {out}", out / "confusion.png"),
        (f"predict {out} {three} --save-input {seen}", seen / "three.28x28.png"),
        (f"runs {tmp_path}", None),
    ):
        terminal = Terminal(f"{MLP} {command} | {reader}; exit ${{PIPESTATUS[0]}}", tmp_path)
        assert terminal.wait() == 0, terminal.text()
        assert written is None or written.exists(), command
