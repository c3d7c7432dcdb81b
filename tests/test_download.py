"""The tfds source for real: tensorflow-datasets' DownloadManager fetching from a server on
127.0.0.1 that serves the real MNIST test files (their checksums are the ones tfds registers)."""

import shutil
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import closed_port, serve, stop

from mlpcli.cli import main
from mlpcli.config import DataConfig
from mlpcli.data import IDX_STEMS, fetch_tfds, load_split, read_pair
from mlpcli.errors import DataError

TEST_STEMS = list(IDX_STEMS["test"])


def test_download_verifies_caches_and_parses_without_tensorflow(mnist_test_dir, http_server, tmp_path):
    mirror = http_server(mnist_test_dir)
    config = DataConfig(source="tfds", name="mnist", dir=str(tmp_path / "cache"), mirror=mirror)
    test = load_split(config, "test")
    assert test.images.shape == (10000, 784)
    assert np.bincount(test.labels)[1] == 1135
    cached = list((tmp_path / "cache" / "downloads").rglob("*t10k-images-idx3-ubyte*.gz"))
    assert len(cached) == 1 and cached[0].stat().st_size == 1648877
    assert "tensorflow" not in sys.modules  # the download layer needs no TensorFlow


def test_cached_files_need_no_network(mnist_test_dir, tmp_path):
    server, mirror = serve(mnist_test_dir)
    fetch_tfds("mnist", TEST_STEMS, str(tmp_path), mirror)
    stop(server)  # the same URL now refuses connections: only tfds' cache can answer
    paths = fetch_tfds("mnist", TEST_STEMS, str(tmp_path), mirror)
    assert read_pair(*paths.values()).images.shape == (10000, 784)


def test_served_file_with_a_wrong_checksum_is_refused(mnist_test_dir, http_server, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for stem in TEST_STEMS:
        shutil.copy(mnist_test_dir / f"{stem}.gz", served)
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b not the registered file")
    with pytest.raises(DataError, match="downloading mnist through tensorflow-datasets failed"):
        fetch_tfds("mnist", TEST_STEMS, str(tmp_path / "cache"), http_server(served))


def test_unreachable_host_fails_in_seconds_with_offline_advice(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        fetch_tfds("mnist", TEST_STEMS, str(tmp_path), f"http://127.0.0.1:{closed_port()}")
    assert time.perf_counter() - start < 10
    assert "Offline, read a folder of the four IDX files" in str(error.value)
    assert "--set data.source=idx --set data.dir=DIR" in str(error.value)


def test_mlp_train_without_network_exits_quickly_with_advice(tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}"
    start = time.perf_counter()
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--set",
            f"data.mirror={dead}",
            "--set",
            f"data.dir={tmp_path / 'cache'}",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert time.perf_counter() - start < 15
    assert result.exit_code == 1
    assert "cannot reach 127.0.0.1" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing created
