"""Data sources → NumPy arrays: IDX files read from a folder, fetched through
tensorflow-datasets' download layer (the only module that imports it), or the copy of MNIST
that ships inside mlpcli (mlpcli/datasets/), which stands in when the download host cannot be
reached.

Why TensorFlow is not needed: `tfds.load` and MNIST's builder read files with `tf.io.gfile`,
but tfds' download layer (`tfds.download.DownloadManager` with the URLs and SHA-256 checksums
tfds registers for each dataset) does not. We let tfds download, verify and cache the four
IDX files, then parse them here with NumPy.
"""

import gzip
import hashlib
import math
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from mlpcli.config import DataConfig
from mlpcli.errors import DataError

N_CLASSES = 10
MNIST_SHAPE = (28, 28)  # the images of MNIST and its kin (Fashion-MNIST, KMNIST): rows, columns
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UBYTE = 0x08  # the third byte of the magic number: unsigned bytes
_GZIP_MAGIC = b"\x1f\x8b"
CONNECT_TIMEOUT = 5.0  # seconds to reach a download host before giving up


@dataclass
class Dataset:
    """Images flattened to rows of raw pixels (N, rows·cols) uint8, labels (N,) uint8, and the
    (rows, cols) the rows unflatten to."""

    images: np.ndarray
    labels: np.ndarray
    image_shape: tuple[int, int]

    def subset(self, index: np.ndarray) -> "Dataset":
        return Dataset(self.images[index], self.labels[index], self.image_shape)

    def __len__(self) -> int:
        return len(self.labels)


# SHA-256 of a split's decoded labels, then its decoded images: how a folder of IDX files is
# recognised whatever its files are called or compressed with, and how the copy of MNIST shipped
# with mlpcli is checked. KMNIST's are not known here (its files cannot be fetched offline).
KNOWN_SPLITS = {
    "a454de301763d749ccfd1ebb5add77d549bcd2125320df72efaa88e014fca0f0": ("mnist", "train"),
    "103f79bf9cce53f71a186484ee3992e7b298fffa37132ee5660752b8b02ea8e1": ("mnist", "test"),
    "308c6213870624505959c710712dbe6debc9c2041d98fda2dccb47bcffbd3d84": ("fashion_mnist", "train"),
    "b7f140f1222993c13e87dc8277a29fffab35bf5fa0777d972356122e7320f6c6": ("fashion_mnist", "test"),
}


def fingerprint(dataset: Dataset) -> str:
    """SHA-256 of the decoded labels, then the decoded images."""
    digest = hashlib.sha256(dataset.labels.tobytes())
    digest.update(dataset.images.tobytes())
    return digest.hexdigest()


def recognise(test: Dataset) -> str | None:
    """The well-known dataset whose test split `test` is, or None."""
    name, split = KNOWN_SPLITS.get(fingerprint(test), (None, None))
    return name if split == "test" else None


@dataclass
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset
    source: "Source"


# --- IDX files ---------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or raw), checking its header."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    zero1, zero2, dtype, ndim = raw[:4]
    if zero1 or zero2 or dtype != _IDX_UBYTE or ndim == 0:
        raise DataError(
            f"{path}: wrong magic number 0x{raw[:4].hex()} (an IDX file of unsigned bytes"
            " starts 0x000008 then its number of dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes, {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = math.prod(shape)
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header says {'×'.join(map(str, shape))} = {expected} bytes of data,"
            f" the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read or decompress: {e}") from None


def read_images(path: str | Path) -> np.ndarray:
    """An IDX image file (N, rows, cols)."""
    images = read_idx(path)
    if images.ndim != 3:
        raise DataError(f"{path}: image files have 3 dimensions (N, rows, cols), this has {images.ndim}")
    return images


def read_labels(path: str | Path) -> np.ndarray:
    """An IDX label file (N,) with every label a class in 0..9."""
    labels = read_idx(path)
    if labels.ndim != 1:
        raise DataError(f"{path}: label files have 1 dimension, this has {labels.ndim}")
    if labels.size and labels.max() >= N_CLASSES:
        raise DataError(f"{path}: label {labels.max()} is out of range 0..{N_CLASSES - 1}")
    return labels


def read_pair(images_path: str | Path, labels_path: str | Path) -> Dataset:
    images, labels = read_images(images_path), read_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if len(images) == 0:
        raise DataError(f"{images_path}: holds no images")
    n, rows, cols = images.shape
    return Dataset(images.reshape(n, rows * cols), labels, (rows, cols))


def find_idx(folder: str | Path, stem: str) -> Path:
    """The file `stem` or `stem.gz` in `folder`."""
    for candidate in (Path(folder) / f"{stem}.gz", Path(folder) / stem):
        if candidate.exists():
            return candidate
    raise DataError(f"{folder}: has neither {stem}.gz nor {stem}")


# --- where the files come from -------------------------------------------------------------

SHIPPED = ("mnist",)  # the datasets whose four IDX files ship inside mlpcli (mlpcli/datasets/)
OFFLINE_ADVICE = (
    "Offline, read a folder of the four IDX files instead: --set data.source=idx --set data.dir=DIR\n"
    "(Debian's package dataset-fashion-mnist puts Fashion-MNIST in /usr/share/datasets/fashion-mnist;"
    " train it with --config configs/fashion_mnist.yaml)"
)


@dataclass
class Source:
    """Where a dataset's IDX files were found. `kind`: tfds (its cache or a download), idx
    (the folder data.dir) or shipped (the copy inside mlpcli); `where`: the folder; `note`: a
    line for the user when the shipped copy stands in for an unreachable download."""

    kind: str
    name: str
    where: str
    paths: dict[str, Path]
    note: str = ""

    def read(self, split: str) -> Dataset:
        """The split "train" or "test"; the shipped copy is checked against its fingerprint."""
        images, labels = IDX_STEMS[split]
        dataset = read_pair(self.paths[images], self.paths[labels])
        if self.kind == "shipped" and KNOWN_SPLITS.get(fingerprint(dataset)) != (self.name, split):
            raise DataError(
                f"the copy of {self.name} shipped with mlpcli ({self.where}) is damaged: its {split}"
                " split does not match its fingerprint. Reinstall mlpcli (pip install --force-reinstall)"
            )
        return dataset

    def to_dict(self) -> dict[str, str]:
        """What metrics.json and eval.json record of it."""
        return {"source": self.kind, "dir": self.where}


def shipped_dir(name: str) -> Path:
    """The folder of the IDX files of `name` inside the installed package (a clone, an
    editable install or a wheel alike)."""
    from importlib.resources import files

    return Path(str(files("mlpcli") / "datasets" / name))


def locate(config: DataConfig, splits: tuple[str, ...] = ("train", "test")) -> Source:
    """The IDX files of `splits` from the configured source. tfds uses its cache, or downloads;
    when the download host cannot be reached, MNIST comes from the copy shipped with mlpcli."""
    stems = [stem for split in splits for stem in IDX_STEMS[split]]
    if config.source == "idx":
        if not config.dir:
            raise DataError("data.source is idx but data.dir is not set: name the folder of IDX files")
        folder = Path(config.dir)
        if not folder.is_dir():
            raise DataError(f"data.dir {folder} is not a directory")
        return Source("idx", config.name, str(folder), {stem: find_idx(folder, stem) for stem in stems})
    if config.source == "shipped":
        if config.dir:
            raise DataError(f"data.source is shipped, which reads no data.dir: drop data.dir={config.dir}")
        return _shipped(config.name, stems)
    try:
        paths = fetch_tfds(config.name, stems, config.dir, config.mirror)
    except _Unreachable as e:
        if config.name not in SHIPPED:
            raise DataError(f"{e} to download {config.name}.\n{OFFLINE_ADVICE}") from None
        return _shipped(config.name, stems, note=f"{e}: using the copy of {config.name} shipped with mlpcli")
    cache = config.dir or str(paths[stems[0]].parent)
    return Source("tfds", config.name, cache, paths)


def _shipped(name: str, stems: list[str], note: str = "") -> Source:
    if name not in SHIPPED:
        raise DataError(
            f"data.source is shipped, but only {', '.join(SHIPPED)} ships with mlpcli, not {name}:"
            " use data.source=tfds, or idx with data.dir"
        )
    folder = shipped_dir(name)
    return Source("shipped", name, str(folder), {stem: find_idx(folder, stem) for stem in stems}, note)


# --- tensorflow-datasets' download layer ----------------------------------------------


class _Unreachable(DataError):
    """The download host cannot be reached: nothing was downloaded."""


def fetch_tfds(name: str, stems: list[str], cache_dir: str | None, mirror: str | None) -> dict[str, Path]:
    """Download (or find in tfds' cache) the IDX files `stems` of dataset `name`, each checked
    against the SHA-256 checksum tfds registers for it. `mirror` replaces the registered
    base URL (the files and checksums stay the same)."""
    import tensorflow_datasets as tfds  # slow to import: only when this source is used

    registered = {info.filename: (url, info) for url, info in tfds.builder_cls(name).url_infos.items()}
    wanted = {}
    for stem in stems:
        url, info = registered[f"{stem}.gz"]
        if mirror:
            url = f"{mirror.rstrip('/')}/{info.filename}"
        wanted[stem] = (url, info)
    downloads = Path(cache_dir or tfds.core.constants.get_default_data_dir()).expanduser() / "downloads"
    manager = tfds.download.DownloadManager(
        download_dir=downloads,
        url_infos={url: info for url, info in wanted.values()},
        dataset_name=name,
        force_checksums_validation=True,
    )
    missing = [url for url, info in wanted.values() if not _is_cached(downloads, url, info.checksum)]
    for host in dict.fromkeys(urlsplit(url)[:2] for url in missing):  # each host once
        _check_reachable(*host)
    try:
        paths = manager.download({stem: url for stem, (url, _) in wanted.items()})
    except Exception as e:  # noqa: BLE001 - tfds raises many kinds; each is a download failure
        raise DataError(f"downloading {name} through tensorflow-datasets failed: {e}") from None
    return {stem: Path(p) for stem, p in paths.items()}


def _is_cached(downloads: Path, url: str, checksum: str) -> bool:
    """Whether tfds' cache already holds the verified file (then no network is needed)."""
    from tensorflow_datasets.core.download.resource import get_dl_fname

    return any(downloads.rglob(get_dl_fname(url, checksum)))


def _check_reachable(scheme: str, netloc: str) -> None:
    """Fail in seconds, not after minutes of tfds' retries, when the host cannot be reached."""
    parts = urlsplit(f"{scheme}://{netloc}")
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise _Unreachable(f"cannot reach {parts.hostname}:{port} ({e})") from None


# --- splits -------------------------------------------------------------------------------


def load_split(config: DataConfig, split: str) -> Dataset:
    """One split ("train" or "test") from the configured source."""
    return locate(config, (split,)).read(split)


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Train, a validation set carved from train as a seeded random sample, and test."""
    source = locate(config)
    full, test = source.read("train"), source.read("test")
    if test.image_shape != full.image_shape:
        raise DataError(
            f"train images are {'×'.join(map(str, full.image_shape))} pixels"
            f" but test images {'×'.join(map(str, test.image_shape))}"
        )
    if config.validation >= len(full):
        raise DataError(
            f"data.validation = {config.validation} leaves no training data"
            f" (the training split has {len(full)} examples)"
        )
    order = np.random.default_rng(seed).permutation(len(full))
    validation, train = np.sort(order[: config.validation]), np.sort(order[config.validation :])
    return Splits(full.subset(train), full.subset(validation), test, source)


# --- inputs as the network sees them -----------------------------------------------------


@dataclass
class Normalisation:
    """x ↦ (x - mean) / std over raw pixel values, with mean and std of the training images.
    Saved beside the weights so that evaluation sees inputs exactly as training did."""

    mean: float
    std: float

    @classmethod
    def of(cls, images: np.ndarray) -> "Normalisation":
        """Mean and standard deviation of uint8 pixels, exactly, from their histogram, counted a
        block of rows at a time (bincount widens its input to int64: never all of it at once)."""
        counts = sum(
            np.bincount(images[i : i + 4096].ravel(), minlength=256) for i in range(0, len(images), 4096)
        )
        values = np.arange(len(counts), dtype=np.float64)
        mean = counts @ values / counts.sum()
        std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
        return cls(float(mean), float(std) if std > 0 else 1.0)

    def apply(self, images: np.ndarray, dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
        """(images - mean) / std as floats, written into `out` when given."""
        out = np.empty(images.shape, dtype=dtype) if out is None else out
        scalar = out.dtype.type
        np.subtract(images, scalar(self.mean), out=out)
        out *= scalar(1.0 / self.std)
        return out


def one_hot(labels: np.ndarray, n_classes: int = N_CLASSES, dtype=np.float32) -> np.ndarray:
    """Rows y with y[label] = 1: the targets the losses take."""
    return np.eye(n_classes, dtype=dtype)[labels]


CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}
