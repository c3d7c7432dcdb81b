"""Shared fixtures: IDX files the tests write, the real data on this machine, a local HTTP server."""

import contextlib
import functools
import gzip
import http.server
import os
import re
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mlpcli import locks
from mlpcli.config import load_config
from mlpcli.data import N_CLASSES, Normalisation, load_splits, shipped_dir
from mlpcli.models import build_model
from mlpcli.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
MNIST = shipped_dir("mnist")  # the real MNIST, 60,000 + 10,000 digits, shipped with mlpcli
FASHION_MNIST = Path(os.environ.get("MLPCLI_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
# in .ci/run, missing real data or a missing real browser is a failure, not a skip (not so in
# the users' CI workflow)
REQUIRE_REAL = bool(os.environ.get("MLPCLI_REQUIRE_REAL"))
CONFIGS = ROOT / "configs"
TINY = str(CONFIGS / "tiny.yaml")  # the small, fast config the tests train with
FASHION = str(CONFIGS / "fashion_mnist.yaml")


MLP_COMMAND = [sys.executable, "-c", "from mlpcli.cli import entry_point; entry_point()"]  # `mlp`


def default_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP at their defaults, as a command typed at a terminal starts:
    mlp keeps a stop signal ignored on entry, which it is when pytest runs under nohup or as a
    script's & job, so a child that is to be stopped by signal starts with this."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


DEFAULT_SIGNALS = {"preexec_fn": default_signals} if os.name == "posix" else {}  # Popen's arguments


def epoch_of(line: str) -> int | None:
    """The epoch whose line `mlp train` printed (`    3      0.2072 …`, a sweep's indented), or None."""
    row = re.match(r"\s*(\d+)\s+\d+\.\d{4}\s", line)
    return int(row[1]) if row else None


def mlp(*args):
    """The `mlp` command line, run in-process by click's CliRunner (paths may be Path objects)."""
    from click.testing import CliRunner

    from mlpcli.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def trainer_for(data, *sets: str, seed: int = 0) -> Trainer:
    """A Trainer as `mlp train` builds it, on `data`'s splits (a config of data.* keys)."""
    config = load_config(None, [*data, *sets])
    splits = load_splits(config.data, config.train.seed)
    init_rng, fit_rng = np.random.default_rng(seed).spawn(2)
    model = build_model(config.model, splits.train.image_shape, N_CLASSES, init_rng)
    norm = Normalisation.of(splits.train.images)
    return Trainer(model, splits.train, splits.validation, norm, config.train, fit_rng, config.data.augment)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write `array` (uint8) as an IDX file: 0x0000 0x08 ndim, big-endian dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def synthetic_digits(n: int, seed: int, side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: each class lights its own row band of a side×side image, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
    bands = np.linspace(0, side * side - side, 10).astype(int)
    flat = images.reshape(n, -1)
    for k in range(10):
        flat[labels == k, bands[k] : bands[k] + side] = 200
    return images, labels


def write_idx_dir(folder: Path, n_train: int = 1200, n_test: int = 300, compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for split, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return folder


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A folder of the four IDX files (gzip) holding learnable 8×8 synthetic digits."""
    return write_idx_dir(tmp_path / "idx")


def require(path: Path, what: str) -> Path:
    if not path.exists():
        if REQUIRE_REAL:
            pytest.fail(f"{what} is missing at {path}; .ci/run installs it")
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST's four IDX files: the copy shipped with mlpcli, on every clone."""
    return MNIST


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    return require(FASHION_MNIST, "Fashion-MNIST (apt-get install dataset-fashion-mnist)")


def serve(folder: Path) -> tuple[http.server.HTTPServer, str]:
    """Serve `folder` over HTTP on 127.0.0.1 in a thread; returns the server and its base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stop(server: http.server.HTTPServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_server():
    """start(folder) → base URL of a server on 127.0.0.1, stopped after the test."""
    servers = []

    def start(folder: Path) -> str:
        server, url = serve(folder)
        servers.append(server)
        return url

    yield start
    for server in servers:
        stop(server)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def held_lock(run_dir: Path, pid: int = 4242):
    """Another live run's hold on `run_dir`: the lock on its lock file, which names `pid`. At the
    end the hold goes as a killed run's does, leaving the lock file."""
    descriptor = locks.hold(run_dir / ".lock")
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, f"{pid}\n".encode())
    try:
        yield
    finally:
        os.close(descriptor)  # which releases the lock, as the end of a process does


def start_serve(*args: str, port: int = 0, cwd: Path | None = None, **popen):
    """`mlp serve ARGS --port PORT` in a child process (`popen`: more of Popen's arguments);
    the child and the URL it prints."""
    import subprocess

    command = [*MLP_COMMAND, "serve", *map(str, args), "--port", str(port)]
    popen = DEFAULT_SIGNALS | popen
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, **popen
    )
    line = child.stdout.readline()
    assert " at http://" in line, line + child.stderr.read()
    return child, line.split(" at ")[1].split()[0].rstrip("/")


@contextlib.contextmanager
def serving(*args: str, port: int = 0, cwd: Path | None = None):
    """The URL of `mlp serve ARGS` in a child process, stopped when the block ends."""
    child, url = start_serve(*args, port=port, cwd=cwd)
    try:
        yield url
    finally:
        child.terminate()
        child.wait(timeout=30)
