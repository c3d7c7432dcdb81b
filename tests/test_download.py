"""The tfds source for real: tensorflow-datasets' DownloadManager fetching from a server on
127.0.0.1 that serves the real MNIST test files (their checksums are the ones tfds registers);
and, when no host can be reached, the copy of MNIST shipped with mlpcli."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from conftest import ROOT, TINY, closed_port, mlp, serve, stop, write_idx

from mlpcli import data
from mlpcli.config import DataConfig
from mlpcli.data import IDX_STEMS, fetch_tfds, load_split, read_idx, read_pair, shipped_dir
from mlpcli.errors import DataError

TEST_STEMS = list(IDX_STEMS["test"])


def test_download_verifies_caches_and_parses_without_tensorflow(mnist_dir, http_server, tmp_path):
    mirror = http_server(mnist_dir)
    config = DataConfig(source="tfds", name="mnist", dir=str(tmp_path / "cache"), mirror=mirror)
    test = load_split(config, "test")
    assert test.images.shape == (10000, 784)
    assert np.bincount(test.labels)[1] == 1135
    cached = list((tmp_path / "cache" / "downloads").rglob("*t10k-images-idx3-ubyte*.gz"))
    assert len(cached) == 1 and cached[0].stat().st_size == 1648877
    assert "tensorflow" not in sys.modules  # the download layer needs no TensorFlow


def test_cached_files_need_no_network(mnist_dir, tmp_path):
    server, mirror = serve(mnist_dir)
    fetch_tfds("mnist", TEST_STEMS, str(tmp_path), mirror)
    stop(server)  # the same URL now refuses connections: only tfds' cache can answer
    paths = fetch_tfds("mnist", TEST_STEMS, str(tmp_path), mirror)
    assert read_pair(*paths.values()).images.shape == (10000, 784)


def test_served_file_with_a_wrong_checksum_is_refused(mnist_dir, http_server, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for stem in TEST_STEMS:
        shutil.copy(mnist_dir / f"{stem}.gz", served)
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b not the registered file")
    with pytest.raises(DataError, match="downloading mnist through tensorflow-datasets failed"):
        fetch_tfds("mnist", TEST_STEMS, str(tmp_path / "cache"), http_server(served))


def test_unreachable_host_fails_in_seconds_with_offline_advice(tmp_path):
    """Fashion-MNIST does not ship with mlpcli: offline, the user is told how to read it."""
    dead = f"http://127.0.0.1:{closed_port()}"
    config = DataConfig(source="tfds", name="fashion_mnist", dir=str(tmp_path), mirror=dead)
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        load_split(config, "test")
    assert time.perf_counter() - start < 10
    assert str(error.value).startswith("cannot reach 127.0.0.1:")
    assert "Offline, read a folder of the four IDX files" in str(error.value)
    assert "--set data.source=idx --set data.dir=DIR" in str(error.value)


def test_mlp_train_without_network_trains_on_the_shipped_mnist(tmp_path):
    """The README's first command offline: tfds cannot reach its host, so the run says so in one
    line, trains on the copy of MNIST shipped with mlpcli and records that it did."""
    dead = f"http://127.0.0.1:{closed_port()}"
    out, cache = tmp_path / "run", tmp_path / "cache"
    sets = ["data.source=tfds", f"data.mirror={dead}", f"data.dir={cache}", "train.epochs=1"]
    start = time.perf_counter()
    result = mlp("train", "--config", TINY, *[a for s in sets for a in ("--set", s)], "--out", out)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert re.fullmatch(
        r"cannot reach 127\.0\.0\.1:\d+ \(.*\): using the copy of mnist shipped with mlpcli", first
    )
    assert "59800 training and 200 validation examples" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == {"source": "shipped", "dir": str(shipped_dir("mnist"))}
    assert metrics["test_accuracy"] > 0.9
    assert not cache.exists() or not any(cache.rglob("*.gz"))  # nothing was downloaded
    assert time.perf_counter() - start < 60
    evaluated = mlp("eval", out)  # reads the copy the run read, without trying the network again
    assert evaluated.exit_code == 0 and "cannot reach" not in evaluated.output, evaluated.output
    assert json.loads((out / "eval.json").read_text())["data"]["source"] == "shipped"


def test_the_shipped_copy_is_checked_by_its_fingerprint(tmp_path, monkeypatch):
    damaged = tmp_path / "mnist"
    shutil.copytree(shipped_dir("mnist"), damaged)
    labels = read_idx(damaged / "t10k-labels-idx1-ubyte.gz").copy()
    labels[17] = (labels[17] + 1) % 10  # one label changed: still a valid IDX file
    write_idx(damaged / "t10k-labels-idx1-ubyte.gz", labels, compress=True)
    monkeypatch.setattr(data, "shipped_dir", lambda name: tmp_path / name)
    with pytest.raises(
        DataError, match=r"the copy of mnist shipped with mlpcli .* is damaged: its test split"
    ):
        load_split(DataConfig(source="shipped"), "test")
    load_split(DataConfig(source="shipped"), "train")  # the train files are whole


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            DataConfig(source="shipped", name="fashion_mnist"),
            "only mnist ships with mlpcli, not fashion_mnist",
        ),
        (DataConfig(source="shipped", dir="/tmp"), "data.source is shipped, which reads no data.dir"),
    ],
)
def test_the_shipped_source_refuses_what_it_cannot_do(config, message):
    with pytest.raises(DataError, match=message):
        load_split(config, "test")


def test_a_wheel_carries_mnist_and_reads_it_from_where_it_is_installed(tmp_path):
    """pip builds the wheel offline; imported from the unpacked wheel (ahead of the editable
    install), mlpcli finds the four files inside itself and they pass their fingerprints."""
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "-q", "-w", wheels, ROOT], check=True, capture_output=True)
    (wheel,) = wheels.glob("mlpcli_mnist-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {f"mlpcli/datasets/mnist/{stem}.gz" for pair in IDX_STEMS.values() for stem in pair} <= names
    code = (
        "from mlpcli.data import DataConfig, load_splits, shipped_dir; "
        "s = load_splits(DataConfig(source='shipped'), 0); "
        "print(shipped_dir('mnist'), len(s.train), len(s.test))"
    )
    env = os.environ | {"PYTHONPATH": str(tmp_path / "site")}
    printed = subprocess.run(  # not from the clone: python -c puts its working directory first
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert printed.stdout.split() == [
        str(tmp_path / "site" / "mlpcli" / "datasets" / "mnist"),
        "55000",
        "10000",
    ]
