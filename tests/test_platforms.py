"""Windows and macOS, on this Linux machine: no module of mlpcli needs one platform's modules
unguarded, and the main commands work in a Python that lacks what Windows lacks
(tests/as_windows.py: no fcntl and the other POSIX modules, no SIGHUP, no
os.sched_getaffinity; a stand-in msvcrt). Also what Windows does differently with files,
output and paths, each stood in for where this machine cannot do it."""

import ast
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path, PureWindowsPath

import pytest
import yaml
from conftest import MLP_COMMAND, ROOT, TINY
from PIL import Image
from test_resume import assert_same_run, big_idx_dir, signal_after_first_epoch, start_training, straight

from mlpcli import artifacts, locks, runs
from mlpcli.errors import RunDirError

__all__ = ["big_idx_dir"]  # a fixture

AS_WINDOWS = [sys.executable, str(ROOT / "tests" / "as_windows.py")]
PLATFORM_ONLY = {  # the standard library's modules of one platform
    "fcntl", "termios", "tty", "pty", "resource", "pwd", "grp", "syslog", "curses", "readline",
    "crypt", "spwd", "nis", "posix",
    "msvcrt", "winreg", "winsound", "_winapi", "nt", "_overlapped",
}  # fmt: skip
PLATFORM_ONLY_NAMES = {  # what os and signal have on some platforms only
    "os": {"sched_getaffinity", "fork", "killpg", "getpgid", "setsid", "getuid", "geteuid", "nice",
           "sync", "getloadavg", "pipe2", "statvfs", "startfile", "sysconf"},
    "signal": {"SIGHUP", "SIGALRM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGCHLD", "SIGKILL",
               "SIGBREAK", "setitimer", "alarm", "pause", "siginterrupt", "pthread_kill", "CTRL_C_EVENT"},
}  # fmt: skip


def sources() -> list[Path]:
    return sorted((ROOT / "mlpcli").rglob("*.py"))


def parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def ancestors(node: ast.AST, parent: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    found = []
    while node in parent:
        node = parent[node]
        found.append(node)
    return found


def catches_import_error(node: ast.AST) -> bool:
    names = {ast.unparse(handler.type) for handler in getattr(node, "handlers", []) if handler.type}
    return bool(names & {"ImportError", "ModuleNotFoundError", "Exception"})


def asks_for(node: ast.AST, name: str) -> bool:
    """Whether `node` is an if (statement or expression) whose test asks hasattr(…, name)."""
    if not isinstance(node, ast.If | ast.IfExp):
        return False
    calls = [call for call in ast.walk(node.test) if isinstance(call, ast.Call)]
    return any(ast.unparse(c.func) == "hasattr" and ast.literal_eval(c.args[1]) == name for c in calls)


def unguarded(path: Path) -> list[str]:
    """The imports of PLATFORM_ONLY modules outside a try that catches ImportError, and the uses
    of PLATFORM_ONLY_NAMES outside getattr or an if that asks hasattr, in the file `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parent, found = parents(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
            risky = [m for m in modules if m and m.split(".")[0] in PLATFORM_ONLY]
            if risky and not any(catches_import_error(a) for a in ancestors(node, parent)):
                found.append((node.lineno, f"{path.name}:{node.lineno} imports {', '.join(risky)}"))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr in PLATFORM_ONLY_NAMES.get(node.value.id, ())
            and not any(asks_for(a, node.attr) for a in ancestors(node, parent))
        ):
            found.append((node.lineno, f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}"))
    return [problem for _, problem in sorted(found)]


def test_nothing_in_mlpcli_needs_one_platform_unguarded():
    assert [problem for path in sources() for problem in unguarded(path)] == []


def test_the_check_sees_what_it_is_for(tmp_path):
    """The check above finds the imports and names it forbids, and passes their guards."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import os, signal\nimport fcntl\nfrom msvcrt import locking\n"
        "try:\n    import termios\nexcept ImportError:\n    termios = None\n"
        "cores = os.sched_getaffinity(0)\nhup = signal.SIGHUP\n"
        "n = os.sched_getaffinity(0) if hasattr(os, 'sched_getaffinity') else 1\n"
        "hup = getattr(signal, 'SIGHUP', None)\n",
        encoding="utf-8",
    )
    assert unguarded(planted) == [
        "planted.py:2 imports fcntl",
        "planted.py:3 imports msvcrt",
        "planted.py:8 uses os.sched_getaffinity",
        "planted.py:9 uses signal.SIGHUP",
    ]


def test_every_module_imports_where_the_posix_modules_are_missing():
    code = (
        "import importlib, pkgutil, as_windows\nas_windows.become_windows()\nimport mlpcli\n"
        "for m in pkgutil.walk_packages(mlpcli.__path__, 'mlpcli.'): importlib.import_module(m.name)\n"
        "from mlpcli import locks; assert locks.fcntl is None\n"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def as_windows(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [*AS_WINDOWS, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_train_stop_resume_and_runs_as_on_windows(big_idx_dir, tmp_path):
    """The lock refuses a second run and shows the first's process, Ctrl-C leaves a checkpoint,
    and the resumed run ends bitwise where a straight run on Linux's code path ends."""
    out, positions = tmp_path / "stopped", tmp_path / "lock-positions"
    env = os.environ | {"MLPCLI_TEST_LOCK_POSITIONS": str(positions)}
    child = start_training(big_idx_dir, out, epochs=30, mlp_command=AS_WINDOWS, env=env)
    first = child.stdout.readline()
    while not first.startswith("epoch"):
        first = child.stdout.readline()
    table = as_windows("runs", tmp_path).stdout
    sets = ["--set", f"data.dir={big_idx_dir}"]
    again = as_windows("train", "--config", TINY, *sets, "--out", out, "--overwrite")
    _, stderr = signal_after_first_epoch(child, signal.SIGINT)  # its first epoch line is read
    assert f"training (process {child.pid})" in table
    assert again.returncode == 1 and f"in use by another mlp train (process {child.pid})" in again.stderr
    assert child.returncode == 130 and f"Resume with: mlp train --resume {out}" in stderr, stderr
    assert not (out / ".lock").exists()
    resumed = as_windows("train", "--resume", out, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(straight(big_idx_dir, tmp_path / "straight", epochs=30), out)
    assert "completed" in as_windows("runs", out).stdout
    # every lock was taken on the byte past the process id, which Windows' readers may read
    assert set(positions.read_text().split("\n")[:-1]) == {f"{1 << 20} 1"}


def test_a_run_killed_as_on_windows_leaves_a_lock_file_that_blocks_nothing(big_idx_dir, tmp_path):
    out = tmp_path / "killed"
    child = start_training(big_idx_dir, out, epochs=30, mlp_command=AS_WINDOWS)
    signal_after_first_epoch(child, signal.SIGKILL, wait_for=out / "checkpoint.npz")
    assert (out / ".lock").exists()  # no chance to remove it
    assert "training" not in as_windows("runs", out).stdout
    resumed = as_windows("train", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr


def test_train_eval_and_predict_on_the_shipped_mnist_as_on_windows(tmp_path, mnist_dir):
    out = tmp_path / "run"
    sets = ["data.source=shipped", "model.hidden=[32]", "train.epochs=1"]
    trained = as_windows("train", "--out", out, *[a for s in sets for a in ("--set", s)])
    assert trained.returncode == 0, trained.stderr
    evaluated = as_windows("eval", out)
    assert evaluated.returncode == 0 and (out / "confusion.png").exists(), evaluated.stderr
    from mlpcli.data import DataConfig, load_split

    test = load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test")
    Image.fromarray(255 - test.images[0].reshape(28, 28)).resize((200, 200)).save(tmp_path / "digit.png")
    predicted = as_windows("predict", out, tmp_path / "digit.png", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["predictions"][0]["class"] == int(test.labels[0])


def test_letting_go_never_removes_a_lock_file_another_run_has_just_locked(tmp_path, monkeypatch):
    """POSIX removes the lock file before it releases the lock: removed after, the file could be
    one another run locked in between, and a third run would then lock a new file beside it."""
    lock, taken = tmp_path / ".lock", []
    descriptor, release = locks.hold(lock), locks._release

    def release_and_another_run_locks(descriptor: int) -> None:
        release(descriptor)
        if not taken:
            taken.append(locks.hold(lock))  # the moment the lock is free

    monkeypatch.setattr(locks, "_release", release_and_another_run_locks)
    locks.let_go(lock, descriptor)
    assert lock.exists() and locks.holder(lock) == os.getpid()
    locks.let_go(lock, taken[0])


def busy(times: int | None, winerror: int | None = 32):
    """os.replace as Windows answers while another process has the file open: PermissionError
    with ERROR_SHARING_VIOLATION (32), `times` times (None: always), then the real one."""
    real, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if times is None or len(calls) <= times:
            error = PermissionError(errno.EACCES, "Access is denied", str(target))
            error.winerror = winerror
            raise error
        real(source, target)

    return replace, calls


def test_a_file_open_elsewhere_is_replaced_once_it_is_closed(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    artifacts.write_json(path, {"v": 1})
    replace, calls = busy(3)
    monkeypatch.setattr(artifacts.os, "replace", replace)
    artifacts.write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2} and len(calls) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_file_held_open_for_good_is_a_clear_error_and_the_old_one_stays(tmp_path, monkeypatch):
    path = tmp_path / "curves.png"
    artifacts.write_text(path, "old")
    replace, calls = busy(None)
    monkeypatch.setattr(artifacts.os, "replace", replace)
    busy_message = r"cannot write .*curves.png: .*\(is it open in another program\?\)"
    with pytest.raises(RunDirError, match=busy_message):
        artifacts.write_text(path, "new")
    assert path.read_text() == "old" and len(calls) == len(artifacts.REPLACE_WAITS) + 1
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary left


def test_a_permission_error_that_is_not_windows_being_busy_fails_at_once(tmp_path, monkeypatch):
    replace, calls = busy(None, winerror=None)
    monkeypatch.setattr(artifacts.os, "replace", replace)
    with pytest.raises(RunDirError, match="Access is denied$"):
        artifacts.write_text(tmp_path / "a.txt", "x")
    assert len(calls) == 1


@pytest.mark.parametrize("unbuffered", ["", "1"])  # python -u: the text stream's buffer is the raw file
def test_output_in_a_code_page_without_an_arrow_writes_question_marks(idx_dir, tmp_path, unbuffered):
    """A Windows pipe or file gets the ANSI code page (cp1252), which has no →; the run must
    not die of a UnicodeEncodeError at its first line."""
    sets = [a for s in (f"data.dir={idx_dir}", "train.epochs=1") for a in ("--set", s)]
    env = os.environ | {"PYTHONIOENCODING": "cp1252", "PYTHONUNBUFFERED": unbuffered}
    command = [*MLP_COMMAND, "train", "--config", TINY, *sets, "--out", str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode("cp1252")
    assert result.stdout.decode("cp1252").startswith("MLP(64 ? 32 ? 10, relu")


def test_a_network_too_large_to_allocate_is_one_line_where_the_memory_is_not_known(idx_dir, tmp_path):
    """Windows has no sysconf to tell the machine's memory beforehand: the allocation fails."""
    sets = ["--set", f"data.dir={idx_dir}", "--set", "model.hidden=[1000000000]"]
    result = as_windows("train", "--config", TINY, *sets, "--out", tmp_path / "run")
    assert result.returncode == 1, result.stderr
    assert (
        result.stderr == "Error: model.hidden = [1000000000]: not enough memory for the network's weights\n"
    )
    assert not (tmp_path / "run").exists()


def test_windows_paths_are_compared_and_shortened_the_windows_way(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "Path", PureWindowsPath)
    one, same, other = r"C:\Users\ada\data\mnist", "c:/users/ada/DATA/mnist", r"C:\Users\bob\data\mnist"
    found = [runs.Run(tmp_path / name, config={"data.dir": d}) for name, d in (("a", one), ("b", same))]
    assert runs.differing_keys(found) == []
    assert runs._short_paths([one, other]) == {one: r"…\ada\data\mnist", other: r"…\bob\data\mnist"}
    upper, lower = r"C:\x\DATA", r"D:\y\data"  # one name to Windows: the parents must tell them apart
    assert runs._short_paths([upper, lower]) == {upper: r"…\x\DATA", lower: r"…\y\data"}


def test_the_users_ci_runs_the_readmes_test_command_on_three_systems():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest", "windows-latest"}
    commands = [step["run"] for step in job["steps"] if "run" in step]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert commands == ["pip install -e '.[test]'", "python -m pytest -q"]
    assert all(command in readme for command in commands)
