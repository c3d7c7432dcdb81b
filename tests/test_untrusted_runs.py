"""Run folders are untrusted data (unpacked from an archive, found on a shared drive): a link
out of the run, a device, a FIFO, a file far larger than any run writes, a weights file
padded or lying in its headers, JSON or YAML nested past the parser's stack. Each is refused
with a line that says which file and why, quickly, in little memory, with nothing written."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, mlp

from mlpcli import artifacts
from mlpcli.errors import RunDirError, RunFileError, WeightsError
from mlpcli.train import CHECKPOINT_KEYS

SEVEN = ROOT / "docs" / "seven.jpg"
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs or /dev/zero on Windows")
DEEP_JSON = "[" * 100_000
DEEP_YAML = "data: " + "[" * 5000 + "\n"
MiB = 2**20
# the `mlp` command in a child whose address space is capped (a reader without bounds fails
# there, not the machine) and which says on standard error the most memory it held at once
# (tracemalloc, which NumPy reports its arrays to; ru_maxrss would count the pytest process
# this child was forked from)
MEASURED_MLP = """
import atexit, sys, tracemalloc
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
except (ImportError, ValueError, OSError):  # Windows, or a system that will not cap it
    pass
tracemalloc.start()
atexit.register(lambda: print("peak", tracemalloc.get_traced_memory()[1], file=sys.stderr))
from mlpcli.cli import entry_point
entry_point()
"""


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory) -> Path:
    """A small net trained for one epoch on the real MNIST: a whole run directory."""
    out = tmp_path_factory.mktemp("untrusted") / "run"
    sets = [
        f"data.dir={mnist_dir}",
        "data.source=idx",
        "model.hidden=[32]",
        "model.dropout=0",
        "train.epochs=1",
    ]
    result = mlp("train", "--out", out, *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run, under runs/, for one test to spoil."""
    return Path(shutil.copytree(trained, tmp_path / "runs" / "run"))


def link(path: Path, target: str | Path) -> None:
    """Replace `path` by a symbolic link to `target` (skip where links cannot be made)."""
    path.unlink(missing_ok=True)
    try:
        path.symlink_to(target)
    except OSError as e:  # Windows without the privilege
        pytest.skip(f"cannot make a symbolic link here: {e}")


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` (links not followed) by name: its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


def status(folder: Path) -> str:
    """The status column of `mlp runs FOLDER`, for its one run."""
    result = mlp("runs", folder)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return result.output.splitlines()[-1]


def measured(*args, timeout: float = 120) -> tuple[subprocess.CompletedProcess, int]:
    """`mlp ARGS` in a child (MEASURED_MLP): what it did, and the most memory it held at once,
    in bytes. A child still running after `timeout` seconds fails the test rather than
    hanging it."""
    command = [sys.executable, "-c", MEASURED_MLP, *map(str, args)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mlp {' '.join(map(str, args))} still ran after {timeout} s")
    peaks = [int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("peak ")]
    assert peaks, result.stderr
    return result, peaks[-1]


def rewrite_npz(path: Path, change) -> None:
    with np.load(path) as npz:
        arrays = dict(npz)
    change(arrays)
    np.savez(path, **arrays)


# --- links out of the run -------------------------------------------------------------------


def test_a_config_linked_out_of_the_run_is_refused(run, tmp_path):
    """config.yaml → a valid config elsewhere: neither listed as the run's nor evaluated with."""
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text((run / "config.yaml").read_text().replace("seed: 0", "seed: 7"))
    link(run / "config.yaml", outside)
    assert "broken: config.yaml is a link to a file outside the run" in status(run.parent)
    before = files(run)
    result = mlp("eval", run)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: config.yaml is a link to a file outside the run" in result.output
    assert files(run) == before


def test_metrics_eval_and_pictures_linked_out_of_the_run_are_refused(run, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"status": "OUTSIDE", "test_accuracy": 0.5}))
    link(run / "metrics.json", outside)
    shown = status(run.parent)
    assert "metrics.json is a link to a file outside the run" in shown and "OUTSIDE" not in shown
    assert artifacts.read_metrics(run) == {}  # metrics only add to what the weights say
    link(run / "eval.json", outside)
    with pytest.raises(RunFileError, match="eval.json is a link to a file outside the run"):
        artifacts.read_json(run / "eval.json")
    link(run / "curves.png", ROOT / "docs" / "curves.png")
    with pytest.raises(RunFileError, match="curves.png is a link to a file outside the run"):
        artifacts.run_file(run / "curves.png", artifacts.PICTURE_LIMIT)


def test_links_inside_the_run_are_read(run):
    """A run whose files link to others of the same run (a copy kept in a folder of it) reads
    as any run does."""
    (run / "kept").mkdir()
    for name in ("config.yaml", "weights.npz"):
        (run / name).rename(run / "kept" / name)
        link(run / name, Path("kept") / name)
    assert artifacts.run_file(run / "config.yaml", artifacts.CONFIG_LIMIT) == run / "config.yaml"
    shown = status(run.parent)
    assert "completed" in shown and "mnist" in shown
    result = mlp("predict", run, SEVEN)
    assert result.exit_code == 0 and result.output.startswith(f"{SEVEN}: 7"), result.output


# --- what is no file, and files larger than any run writes ------------------------------------


@POSIX
def test_dev_zero_and_a_fifo_are_refused_without_reading_them(run):
    """config.yaml → /dev/zero (read whole: all memory) and a FIFO as history.csv (opened: waits
    for a writer for ever) are refused from their stat alone."""
    link(run / "config.yaml", "/dev/zero")
    (run / "history.csv").unlink()
    os.mkfifo(run / "history.csv")
    started = time.monotonic()
    result, peak = measured("runs", run.parent, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    shown = result.stdout.splitlines()[-1]
    assert "config.yaml is a link to a file outside the run" in shown
    assert "history.csv is not a regular file (a FIFO)" in shown
    assert time.monotonic() - started < 30 and peak < 100 * MiB
    with pytest.raises(RunFileError, match=r"history.csv is not a regular file \(a FIFO\)"):
        artifacts.read_run_bytes(run / "history.csv", artifacts.HISTORY_LIMIT)


@POSIX
def test_a_config_of_dev_zero_is_read_no_further_than_the_cap(tmp_path):
    """A user's own config may be a link, or a pipe (--config <(…)): read, but only so far."""
    result, peak = measured("train", "--config", "/dev/zero", "--out", tmp_path / "never", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Error: config /dev/zero is larger than the 1 MB mlpcli reads of a config" in result.stderr
    assert peak < 100 * MiB and not (tmp_path / "never").exists()


SWAPS = {  # what another process may do to history.csv between its check and its opening
    "fifo": lambda history, elsewhere: os.mkfifo(history),
    "link-out": lambda history, elsewhere: history.symlink_to(elsewhere),
    "grown": lambda history, elsewhere: history.write_text("epoch\n" * 400),
}
SWAPPED = {
    "fifo": "history.csv was replaced while it was read",
    "link-out": "history.csv was replaced while it was read",
    "grown": r"history.csv is 2.4 KB; mlpcli reads history.csv up to 1.0 KB",
}


@POSIX
@pytest.mark.parametrize("swap", SWAPS)
def test_a_file_changed_after_its_check_is_refused(run, tmp_path, monkeypatch, swap):
    """The file opened is checked again: it may have been swapped since its check (the old
    one kept, so that its inode is not reused), or grown; and a FIFO swapped in is opened
    without waiting for a writer (here one comes after five seconds, to end the wait of a
    reader that would wait)."""
    history, real_open = run / "history.csv", os.open
    (tmp_path / "elsewhere.csv").write_text("epoch\n")
    history.write_text("epoch\n")

    def swapping_open(path, flags, *args):
        if Path(path) == history:
            if swap != "grown":
                history.rename(tmp_path / "checked.csv")
            SWAPS[swap](history, tmp_path / "elsewhere.csv")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", swapping_open)
    writer = threading.Timer(5, lambda: os.close(real_open(history, os.O_WRONLY)))
    writer.daemon = True
    writer.start()
    started = time.monotonic()
    try:
        with pytest.raises(RunFileError, match=SWAPPED[swap]):
            artifacts.read_run_bytes(history, 1000)
    finally:
        writer.cancel()
    assert time.monotonic() - started < 5


def test_a_folder_in_place_of_a_file_is_refused(run):
    (run / "config.yaml").unlink()
    (run / "config.yaml").mkdir()
    assert "config.yaml is not a regular file (a directory)" in status(run.parent)
    with pytest.raises(FileNotFoundError):
        artifacts.run_file(run / "eval.json", artifacts.JSON_LIMIT)  # "no eval.json", as before


def test_files_over_their_cap_are_refused(run, tmp_path, monkeypatch):
    with open(run / "metrics.json", "r+b") as f:  # sparse where the file system allows
        f.truncate(artifacts.JSON_LIMIT + 1)
    assert "metrics.json is 16.0 MB; mlpcli reads metrics.json up to 16.0 MB" in status(run.parent)
    monkeypatch.setattr(artifacts, "WEIGHTS_LIMIT", (run / "weights.npz").stat().st_size // 2)
    result = mlp("predict", run, SEVEN)
    assert result.exit_code == 1, result.output
    assert re.search(
        r"^Error: weights.npz is [\d.]+ KB; mlpcli reads weights.npz up to [\d.]+ KB$", result.output, re.M
    )
    config = tmp_path / "huge.yaml"
    config.write_text("train:\n  epochs: 1\n" + "#" * 2_000_000 + "\n")
    result = mlp("train", "--config", config, "--out", tmp_path / "never")
    assert (
        result.exit_code == 1
        and f"config {config} is larger than the 1 MB mlpcli reads of a config" in result.output
    )
    assert not (tmp_path / "never").exists()


# --- weights and checkpoints checked from their headers before any array is read --------------


def test_padded_weights_are_refused_before_any_array_is_read(run):
    """A weights.npz of under 1 MB holding 300 MB of zeros beside the real arrays
    (np.savez_compressed): refused by its entries' names, its arrays never read."""
    pad = 300 * MiB
    with np.load(run / "weights.npz") as npz:
        arrays = dict(npz)
    np.savez_compressed(run / "weights.npz", **arrays, pad=np.zeros(pad, np.uint8))
    assert (run / "weights.npz").stat().st_size < pad / 100
    started = time.monotonic()
    result, peak = measured("predict", run, SEVEN)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "weights.npz: holds pad, which no mlp weights file holds" in result.stderr
    assert time.monotonic() - started < 30 and peak < pad / 3, peak


def npy(shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"\0" * 8) -> bytes:
    """A .npy file whose header says `shape` and `dtype`, followed by `data` (whatever it says)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    return header.getvalue() + data


def lying(path: Path, entries: dict[str, bytes]) -> None:
    """Rewrite the weights file at `path` with `entries` in place of its own of those names."""
    with zipfile.ZipFile(path) as archive:
        kept = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in (kept | {f"{name}.npy": data for name, data in entries.items()}).items():
            archive.writestr(name, content)


@pytest.mark.parametrize(
    "lie",
    [
        # a small entry whose header promises 1 GiB and holds 8 bytes
        {"input_std": npy((2**27,), "<f8")},
        # a layout of 0.8 GB that the sizes and every header agree on, 8 bytes an array
        {
            "sizes": npy((3,), "<i8", np.array([784, 2**18, 10]).tobytes()),
            "W1": npy((2**18, 784)),
            "b1": npy((2**18,)),
            "W2": npy((10, 2**18)),
        },
    ],
    ids=["small-entry", "consistent-layout"],
)
def test_a_header_that_lies_about_its_size_is_refused_before_allocating(run, lie):
    """The .npy header decides what np.load allocates: one that disagrees with the size its zip
    entry declares is refused before any array is read."""
    weights = run / "weights.npz"
    lying(weights, lie)
    tracemalloc.start()
    try:
        with pytest.raises(WeightsError, match="declares .* of data; its entry in the archive holds"):
            artifacts.load_weights(weights)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * MiB


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a.update(input_mean=np.zeros(10**5)),
            "input_mean is 800.1 KB; in a weights file it is at most 10.0 KB",
        ),
        (
            lambda a: a.update(kind=np.zeros(2, [("name", "<i4"), ("age", "<f4")])),
            "kind holds [('name', '<i4'), ('age', '<f4')], neither numbers nor words",
        ),
    ],
    ids=["large-small-entry", "structured-dtype"],
)
def test_entries_that_are_not_what_a_weights_file_holds(run, change, message):
    rewrite_npz(run / "weights.npz", change)
    with pytest.raises(WeightsError) as error:
        artifacts.load_weights(run / "weights.npz")
    assert message in str(error.value)


def test_weights_declaring_more_than_the_cap_are_refused(run, monkeypatch):
    """A file small on disk (compressed zeros) whose arrays add up to more than the cap."""
    weights = run / "weights.npz"
    with np.load(weights) as npz:
        arrays = dict(npz)
    np.savez_compressed(weights, **arrays | {"W1": np.zeros_like(arrays["W1"])})
    monkeypatch.setattr(artifacts, "WEIGHTS_LIMIT", 50_000)  # the run's arrays: about 100 KB
    assert weights.stat().st_size < artifacts.WEIGHTS_LIMIT
    with pytest.raises(
        WeightsError, match=r"its arrays declare 10\d\.\d KB; mlpcli reads weights.npz up to 50.0 KB"
    ):
        artifacts.load_weights(weights)


def test_a_padded_checkpoint_is_refused_before_any_array_is_read(run):
    before = (run / "checkpoint.npz").read_bytes()
    with np.load(run / "checkpoint.npz") as npz:
        arrays = dict(npz)
    np.savez_compressed(run / "checkpoint.npz", **arrays, pad=np.zeros(100 * MiB, np.uint8))
    tracemalloc.start()
    try:
        with pytest.raises(RunDirError, match="checkpoint.npz: holds pad, which no checkpoint holds"):
            artifacts.load_checkpoint(run / "checkpoint.npz", CHECKPOINT_KEYS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * MiB

    def twice_the_params(arrays):
        arrays["optimizer_u"] = np.zeros(2 * arrays["params"].size, arrays["params"].dtype)

    (run / "checkpoint.npz").write_bytes(before)
    rewrite_npz(run / "checkpoint.npz", twice_the_params)
    with pytest.raises(RunDirError, match="optimizer_u declares more than the params it goes with"):
        artifacts.load_checkpoint(run / "checkpoint.npz", CHECKPOINT_KEYS)
    (run / "checkpoint.npz").write_bytes(before)
    rewrite_npz(run / "checkpoint.npz", lambda arrays: arrays.update(meta=np.array(" " * 4_000_001)))
    with pytest.raises(RunDirError, match="its meta is 16.0 MB; a checkpoint's is at most 16.0 MB"):
        artifacts.load_checkpoint(run / "checkpoint.npz", CHECKPOINT_KEYS)


def test_a_checkpoint_linked_out_of_the_run_is_not_resumed(run, tmp_path):
    outside = tmp_path / "checkpoint.npz"
    shutil.copy(run / "checkpoint.npz", outside)
    link(run / "checkpoint.npz", outside)
    before = files(run)
    result = mlp("train", "--resume", run, "--set", "train.epochs=2")
    assert result.exit_code == 1 and "checkpoint.npz is a link to a file outside the run" in result.output
    assert files(run) == before


# --- documents nested past the parser's stack ----------------------------------------------


def test_deeply_nested_metrics_and_eval_json(run):
    (run / "metrics.json").write_text(DEEP_JSON)
    assert "broken: metrics.json unreadable (nested too deeply)" in status(run.parent)
    result = mlp("eval", run)  # a metrics.json that cannot be read is left aside, as ever
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    (run / "eval.json").write_text(DEEP_JSON)
    with pytest.raises(RunFileError, match=r"eval.json unreadable \(nested too deeply\)"):
        artifacts.read_json(run / "eval.json")


def test_a_deeply_nested_run_config(run, tmp_path):
    (run / "config.yaml").write_text(DEEP_YAML)
    assert "broken: config.yaml unreadable (nested too deeply)" in status(run.parent)
    before = files(run)
    result = mlp("eval", run)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == "Error: config.yaml unreadable (nested too deeply)\n"
    assert files(run) == before
    result = mlp("train", "--config", run / "config.yaml", "--out", tmp_path / "never")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == f"Error: config {run / 'config.yaml'} is unreadable (nested too deeply)\n"
    assert not (tmp_path / "never").exists()


def test_a_deeply_nested_sweep_spec(tmp_path):
    pytest.importorskip("optuna")
    spec = tmp_path / "deep.yaml"
    spec.write_text("trials: 2\nspace:\n  train.lr: " + "[" * 5000 + "\n")
    result = mlp("sweep", spec, "--out", tmp_path / "sweep")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == f"Error: sweep spec {spec} is unreadable (nested too deeply)\n"
    assert not (tmp_path / "sweep").exists()
