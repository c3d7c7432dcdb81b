import gzip
import hashlib

import numpy as np
import pytest
from conftest import write_idx, write_idx_dir

from mlpcli.config import DataConfig
from mlpcli.data import (
    Normalisation,
    find_idx,
    load_split,
    load_splits,
    one_hot,
    read_idx,
    read_images,
    read_labels,
    read_pair,
)
from mlpcli.errors import DataError

MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x", array, compress)), array)


def test_real_mnist_test_split(mnist_dir):
    for name, digest in MNIST_SHA256.items():
        assert hashlib.sha256((mnist_dir / name).read_bytes()).hexdigest() == digest
    test = read_pair(mnist_dir / "t10k-images-idx3-ubyte.gz", mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert test.images.shape == (10000, 784) and test.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert test.images.max() == 255 and test.images.min() == 0


def header(dims, magic=(0, 0, 8)):
    return bytes([*magic, len(dims)]) + np.array(dims, dtype=">u4").tobytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short to be an IDX file (0 bytes)"),
        (b"\x00\x00", "too short to be an IDX file (2 bytes)"),
        (header([2, 2], magic=(0x1F, 0x8C, 8)) + bytes(4), "wrong magic number 0x1f8c0802"),
        (header([2, 2], magic=(0, 0, 0x0D)) + bytes(4), "wrong magic number 0x00000d02"),
        (header([2, 2])[:8], "truncated header"),
        (header([2, 2]) + bytes(3), "header says 2×2 = 4 bytes of data, the file holds 3"),
        (header([2, 2]) + bytes(5), "header says 2×2 = 4 bytes of data, the file holds 5"),
        (gzip.compress(header([4]) + bytes(4))[:-6], "cannot read or decompress"),
        (b"\x1f\x8b" + bytes(40), "cannot read or decompress"),
    ],
)
def test_corrupt_idx_files_are_named_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_idx(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_images_and_labels_need_their_rank_and_range(tmp_path):
    with pytest.raises(DataError, match="image files have 3 dimensions"):
        read_images(write_idx(tmp_path / "i", np.zeros((3, 4), np.uint8)))
    with pytest.raises(DataError, match="label files have 1 dimension"):
        read_labels(write_idx(tmp_path / "l", np.zeros((3, 1), np.uint8)))
    with pytest.raises(DataError, match="label 10 is out of range 0..9"):
        read_labels(write_idx(tmp_path / "l", np.array([1, 10, 2], np.uint8)))


def test_counts_must_match(tmp_path):
    images = write_idx(tmp_path / "i", np.zeros((3, 2, 2), np.uint8))
    labels = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="holds 3 images but .* holds 4 labels"):
        read_pair(images, labels)


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nothing")
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)
    with pytest.raises(DataError, match="has neither train-images-idx3-ubyte.gz nor train-images-idx3-ubyte"):
        find_idx(tmp_path, "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="data.dir .* is not a directory"):
        load_split(DataConfig(source="idx", dir=str(tmp_path / "no")), "test")
    with pytest.raises(DataError, match="data.dir is not set"):
        load_split(DataConfig(source="idx"), "test")


def test_raw_and_gzip_folders_read_the_same(tmp_path):
    raw = load_split(
        DataConfig(source="idx", dir=str(write_idx_dir(tmp_path / "raw", compress=False))), "train"
    )
    gz = load_split(DataConfig(source="idx", dir=str(write_idx_dir(tmp_path / "gz"))), "train")
    np.testing.assert_array_equal(raw.images, gz.images)
    np.testing.assert_array_equal(raw.labels, gz.labels)


def test_validation_is_a_seeded_random_sample_of_train(idx_dir):
    config = DataConfig(source="idx", dir=str(idx_dir), validation=200)
    a, b, c = load_splits(config, seed=0), load_splits(config, seed=0), load_splits(config, seed=1)
    full = load_split(config, "train")
    assert len(a.validation) == 200 and len(a.train) == len(full) - 200
    np.testing.assert_array_equal(a.validation.images, b.validation.images)
    assert not np.array_equal(a.validation.labels, c.validation.labels)
    rows = {row.tobytes() for row in a.train.images}
    assert not any(row.tobytes() in rows for row in a.validation.images)  # disjoint
    assert len(a.test) == 300


def test_validation_must_leave_training_data(idx_dir):
    with pytest.raises(DataError, match="data.validation = 1200 leaves no training data"):
        load_splits(DataConfig(source="idx", dir=str(idx_dir), validation=1200), 0)


def test_normalisation_and_one_hot():
    images = np.array([[0, 255], [0, 255]], np.uint8)
    norm = Normalisation.of(images)
    assert (norm.mean, norm.std) == (127.5, 127.5)
    np.testing.assert_array_equal(norm.apply(images), [[-1, 1], [-1, 1]])
    assert norm.apply(images).dtype == np.float32
    assert Normalisation.of(np.zeros((2, 2), np.uint8)).std == 1.0
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_normalisation_matches_numpy_on_real_sized_data():
    images = np.random.default_rng(0).integers(0, 256, (1000, 784), dtype=np.uint8)
    norm = Normalisation.of(images)
    assert norm.mean == pytest.approx(images.mean(dtype=np.float64), rel=1e-12)
    assert norm.std == pytest.approx(images.std(dtype=np.float64), rel=1e-12)
