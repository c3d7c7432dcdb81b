"""The run directory: config.yaml, weights.npz, metrics.json, history.csv, curves.png (and
what mlp eval writes: eval.json, confusion.png, mistakes.png). Every file is written
atomically: to a temporary file beside it, then renamed over it."""

import csv
import io
import json
import math
import os
import stat
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from mlpcli import locks
from mlpcli.config import YAML_LIMIT, closest, exhausted, yaml_mapping
from mlpcli.data import CLASS_NAMES as DATASETS
from mlpcli.data import Normalisation
from mlpcli.errors import MlpError, RunDirError, RunFileError, WeightsError
from mlpcli.nn.activations import ACTIVATIONS
from mlpcli.nn.base import Network
from mlpcli.nn.kinds import KINDS
from mlpcli.nn.losses import OUTPUT_ACTIVATIONS, OUTPUTS
from mlpcli.settings import SPLITS

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # imported for drawing only where pictures are drawn

CHECKPOINT, LOCK = "checkpoint.npz", ".lock"
WEIGHTS, CONFIG, METRICS, HISTORY, CURVES = (
    "weights.npz",
    "config.yaml",
    "metrics.json",
    "history.csv",
    "curves.png",
)
RUN_FILES = (WEIGHTS, CHECKPOINT, METRICS, CONFIG)  # any of them makes a folder a run's
EVAL, CONFUSION, MISTAKES = "eval.json", "confusion.png", "mistakes.png"  # of the test split
# The most mlpcli reads of each run file, in bytes: far above what a run writes (config.yaml
# and metrics.json ~1 KB, eval.json ~100 KB, history.csv ~100 bytes an epoch, each picture
# ~100 KB), far below what would hurt a reader of a folder made to exhaust its memory.
CONFIG_LIMIT = YAML_LIMIT  # 1 MB, as any config mlpcli reads
JSON_LIMIT = 16 * 10**6  # metrics.json, eval.json
MAX_NESTING = 32  # of their lists and mappings: mlp's own nest three deep
HISTORY_LIMIT = 16 * 10**6
PICTURE_LIMIT = 16 * 10**6  # curves.png, confusion.png, mistakes.png
# weights.npz, on disk and in what its arrays declare: the default network's is 2.7 MB; 1 GB
# holds 250 million float32 parameters, a network NumPy would train for weeks on MNIST
WEIGHTS_LIMIT = 10**9
# checkpoint.npz: the parameters four times over (the weights, the kept weights, Adam's two
# moments), and the epoch's order of training examples (8 bytes each) within the fifth
CHECKPOINT_LIMIT = 5 * WEIGHTS_LIMIT
SMALL_ENTRY_LIMIT = 10**4  # bytes: a weights file's sizes, words and numbers (a thousand layers' widths)
FORMAT_VERSION = 1
# what np.load and zipfile raise on a damaged or foreign file
UNREADABLE = (
    OSError,
    ValueError,
    TypeError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)
SPEC_TEXTS = ("activation", "output", "output_activation")  # the words of a network's spec
# the text entries of a weights file, with the value a file without the entry means
TEXT_ENTRIES = {
    "activation": None,
    "output": None,
    "output_activation": None,
    "dataset": "mnist",
    "kind": "mlp",  # files from before the RNN hold an MLP
}


@contextmanager
def run_directory(path: Path, mode: str) -> Iterator[Path]:
    """The run directory `path`, locked for this process while the block runs.

    mode "new": it must be absent or empty; "overwrite": it may hold files, which the run
    replaces; "resume": it must exist. Directories this call created and nothing was written
    into are removed again when the block ends."""
    try:
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is a file, not a run directory")
        if mode == "new" and path.is_dir() and any(path.iterdir()):
            raise RunDirError(
                f"{path} already holds files: choose a new --out, or --overwrite or --resume it"
            )
        outermost_new = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)
        path.mkdir(parents=True, exist_ok=True)
        lock = locks.hold(path / LOCK)
    except locks.Held as e:
        raise RunDirError(
            f"{path} is in use by another mlp train (process {e.owner}); wait for it or choose another --out"
        ) from None
    except OSError as e:
        raise RunDirError(f"cannot use run directory {path}: {e.strerror or e}") from None
    try:
        yield path
    finally:
        locks.let_go(path / LOCK, lock)
        if outermost_new is not None:
            _remove_empty(path, outermost_new)


def _remove_empty(path: Path, outermost: Path) -> None:
    """Remove `path` and its parents up to `outermost`, each only while it is empty."""
    for directory in [path, *path.parents]:
        try:
            directory.rmdir()
        except OSError:
            return
        if directory == outermost:
            return


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write `path` through `write(file)` into a temporary file beside it, then rename it into
    place: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        busy = getattr(e, "winerror", None) in BUSY_WINERRORS
        raise RunDirError(
            f"cannot write {path}: {e.strerror or e}{' (is it open in another program?)' if busy else ''}"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Windows refuses to replace a file that another process has open (a reader of the run, say,
# mlp runs): ERROR_ACCESS_DENIED or ERROR_SHARING_VIOLATION. Readers hold files for moments.
BUSY_WINERRORS = (5, 32)
REPLACE_WAITS = [0.01 * 2**attempt for attempt in range(8)]  # seconds, 2.55 in all


def _replace(tmp: Path, path: Path) -> None:
    """os.replace(tmp, path), tried again while Windows says `path` is busy."""
    for wait in [*REPLACE_WAITS, None]:
        try:
            os.replace(tmp, path)
            return
        except PermissionError as e:
            if wait is None or getattr(e, "winerror", None) not in BUSY_WINERRORS:
                raise
        time.sleep(wait)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, value: dict) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def run_file(path: Path, limit: int) -> Path:
    """`path` itself, when it is a regular file of at most `limit` bytes in its run directory
    (`path.parent`; a link only when it leads to a file inside that directory): a run folder
    is untrusted data, an archive's or a shared drive's. FileNotFoundError when nothing is
    there; a RunFileError that says why otherwise. Decided from the file's status alone,
    nothing opened (a FIFO would wait for a writer for ever)."""
    _checked_status(path, limit)
    return path


def read_run_bytes(path: Path, limit: int) -> bytes:
    """The bytes of the run file `path` (run_file's checks), never more than `limit`."""
    with _opened(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew since it was checked
        raise RunFileError(f"{path.name} grew past {_amount(limit)} while it was read")
    return data


def read_run_text(path: Path, limit: int, errors: str = "strict") -> str:
    """The text of the run file `path` (read_run_bytes), decoded from UTF-8 with `errors`."""
    return read_run_bytes(path, limit).decode("utf-8", errors)


def _checked_status(path: Path, limit: int) -> os.stat_result:
    """The status of the file `path` names (of its target, for a link), once it passes run_file."""
    status = os.lstat(path)
    if stat.S_ISLNK(status.st_mode):
        try:
            target = path.resolve(strict=True)
        except RuntimeError:  # a loop of links (an OSError from Python 3.13)
            raise RunFileError(f"{path.name} is a link that leads round in a loop") from None
        if path.parent.resolve() not in target.parents:
            raise RunFileError(f"{path.name} is a link to a file outside the run")
        status = os.stat(target)
    _check_status(path.name, status, limit)
    return status


NOT_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _check_status(name: str, status: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(status.st_mode):
        what = next((words for test, words in NOT_FILES if test(status.st_mode)), "of another kind")
        raise RunFileError(f"{name} is not a regular file ({what})")
    if status.st_size > limit:
        raise RunFileError(f"{name} is {_amount(status.st_size)}; mlpcli reads {name} up to {_amount(limit)}")


@contextmanager
def _opened(path: Path, limit: int) -> Iterator[IO[bytes]]:
    """The run file `path` (run_file's checks) open for reading, checked again once open: the
    file may have been swapped since. O_NONBLOCK: a FIFO swapped in is opened without waiting
    for a writer, then refused."""
    checked = _checked_status(path, limit)
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(descriptor, "rb") as f:
        status = os.fstat(descriptor)
        if (status.st_dev, status.st_ino) != (checked.st_dev, checked.st_ino):
            raise RunFileError(f"{path.name} was replaced while it was read")
        _check_status(path.name, status, limit)
        yield f


def _amount(size: int) -> str:
    """A number of bytes as a person reads it: 3.2 GB, 16.0 MB, 512 bytes."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _parsed(path: Path, parse: Callable[..., Any], *args: Any) -> Any:
    """parse(*args) of the run file `path`'s text; a document made to exhaust the parser (nested
    past Python's stack) is a RunFileError, as a refused file is."""
    try:
        return parse(*args)
    except (RecursionError, MemoryError) as e:
        raise RunFileError(f"{path.name} unreadable ({exhausted(e)})") from None


def read_json(path: Path) -> dict:
    """A run's JSON file holding a mapping (metrics.json, eval.json); ValueError if it holds
    another, RunFileError if it is refused (run_file) or nested too deeply."""
    value = _parsed(path, json.loads, read_run_text(path, JSON_LIMIT))
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a mapping")
    if _deeper_than(value, MAX_NESTING):  # parsed, it would still exhaust whoever walks it
        raise RunFileError(f"{path.name} unreadable (nested too deeply)")
    return value


def _deeper_than(value: Any, depth: int) -> bool:
    """Whether lists and mappings nest more than `depth` deep in `value` (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > depth:
                return True
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def read_metrics(folder: Path) -> dict:
    """The run's metrics.json, or {} when it is missing, unreadable or refused: the metrics
    only add to what the weights say."""
    return read_json_or_empty(folder / METRICS)


def read_json_or_empty(path: Path) -> dict:
    """read_json, or {} when the file is missing, unreadable or refused."""
    try:
        return read_json(path)
    except (OSError, ValueError, RunFileError):
        return {}


def read_config(path: Path) -> dict[str, Any]:
    """The mapping of a run's config.yaml at `path`: a ConfigError for YAML that is bad, a
    RunFileError for a file refused (run_file) or nested too deeply."""
    return _parsed(path, yaml_mapping, read_run_text(path, CONFIG_LIMIT), path)


def evaluation_files(split: str) -> tuple[str, str, str]:
    """eval.json, confusion.png, mistakes.png; with a -validation suffix for that split."""
    suffix = "" if split == "test" else f"-{split}"
    return tuple(name.replace(".", f"{suffix}.", 1) for name in (EVAL, CONFUSION, MISTAKES))


EVALUATIONS = tuple(name for split in SPLITS for name in evaluation_files(split))  # what mlp eval writes


def write_history(path: Path, columns: list[str], rows: list[dict]) -> None:
    """history.csv: the header, then a row per epoch (the header alone before the first)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


FIGURE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")  # what a picture's suffix may ask for


def save_figure(path: Path, figure: "Figure") -> None:
    """A matplotlib Figure in the format its suffix names (FIGURE_FORMATS; PNG by default)."""
    kind = path.suffix[1:].lower()
    write_atomic(path, lambda f: figure.savefig(f, format=kind if kind in FIGURE_FORMATS else "png", dpi=100))


def save_image(path: Path, pixels: np.ndarray) -> None:
    """A grey image (rows, cols) uint8 as a PNG."""
    from PIL import Image

    write_atomic(path, lambda f: Image.fromarray(pixels).save(f, format="PNG"))


def make_directory(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create {path}: {e.strerror or e}") from None


@dataclass
class Saved:
    """What a weights file holds: the model, its input normalisation, the dataset it learnt,
    and the epoch whose weights these are (None in files that did not record it)."""

    model: Network
    norm: Normalisation
    dataset: str
    epoch: int | None = None


def which_weights(saved: Saved, folder: Path) -> str:
    """ ", the weights of epoch 12 of a run interrupted after 14" — what the weights are, as far
    as the weights file and the run's metrics.json say ("" when neither does)."""
    said, metrics = (
        f", the weights of epoch {saved.epoch}" if saved.epoch else "",
        read_metrics(folder),
    )
    if said and metrics.get("status") in ("interrupted", "diverged"):
        said += f" of a run {metrics['status']} after {metrics.get('epochs', '?')} epochs"
    return said


def save_weights(path: Path, saved: Saved) -> None:
    """The arrays, the architecture, the input normalisation and the dataset's name: enough to
    rebuild and evaluate the model with no config."""
    model, norm = saved.model, saved.norm
    arrays = {name: tensor for name, (tensor, _) in model.tensors().items()}
    whole = ("sizes", *model.SPEC_INTS)
    meta = {
        name: np.array(value, dtype=np.int64 if name in whole else None)
        for name, value in model.spec().items()
    }
    meta |= {
        "format_version": np.array(FORMAT_VERSION),
        "kind": np.array(model.kind),
        "input_mean": np.array(norm.mean),
        "input_std": np.array(norm.std),
        "dataset": np.array(saved.dataset),
    }
    if saved.epoch is not None:
        meta["epoch"] = np.array(saved.epoch, dtype=np.int64)
    write_atomic(path, lambda f: np.savez(f, **arrays, **meta))


def weights_file(target: Path) -> Path:
    """The weights file of `target`, a run directory or a weights file itself; a WeightsError
    that says why when a directory holds none, or there is nothing at `target` (and what of
    that name is, when it is one letter or two away)."""
    if not target.exists():
        try:
            nearby = closest(target.name, [path.name for path in target.parent.iterdir()])
        except OSError:  # no such folder either, or one that cannot be read
            nearby = None
        hint = f"; did you mean {target.parent / nearby}?" if nearby else ""
        raise WeightsError(f"{target}: no such run directory or weights file{hint}")
    if not target.is_dir():
        return target
    if (target / WEIGHTS).exists():
        return target / WEIGHTS
    if any((target / name).exists() for name in RUN_FILES):  # a run, yet without weights
        then = (
            f"Resume it with: mlp train --resume {target}"
            if (target / CHECKPOINT).exists()
            else "Train it again (with a lower train.lr if it diverged)."
        )
        raise WeightsError(
            f"{target}: the run has no weights.npz yet: it is still in its first epoch, or it stopped"
            f" before that epoch finished and so has learnt nothing. {then}"
        )
    raise WeightsError(
        f"{target} is not a run directory: it holds no weights.npz, metrics.json or config.yaml"
    )


@dataclass(frozen=True)
class _Entry:
    """An array of an .npz archive as its .npy header declares it, none of its data read."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def size(self) -> int:
        """Its bytes, header and data, as its zip entry declares them (and its header agrees)."""
        return self.info.file_size

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def read(self, archive: zipfile.ZipFile) -> np.ndarray:
        with archive.open(self.info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)


NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
NUMBERS_OR_TEXT = "biufU"  # the kinds of dtype mlp writes: numbers, and words (activation, meta)


@contextmanager
def _npz(
    path: Path, limit: int, error: type[MlpError], missing: str, kind: str
) -> Iterator[tuple[zipfile.ZipFile, dict[str, _Entry]]]:
    """The .npz archive at `path`, a run file (run_file) of at most `limit` bytes, and its
    arrays by name (_entries), which declare at most `limit` bytes in all; `error` when it is
    missing or unreadable. No array's data is read."""
    try:
        with _opened(path, limit) as f:
            try:
                archive = zipfile.ZipFile(f)
            except zipfile.BadZipFile:
                raise error(
                    f"{path}: not a readable {kind} (that is an .npz archive, and this is none)"
                ) from None
            with archive:
                entries = _entries(path, archive, error, kind)
                declared = sum(entry.size for entry in entries.values())
                if declared > limit:
                    raise error(
                        f"{path}: its arrays declare {_amount(declared)}; mlpcli reads {path.name}"
                        f" up to {_amount(limit)}"
                    )
                yield archive, entries
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except UNREADABLE as e:
        raise error(f"{path}: not a readable {kind} ({e})") from None


def _entries(path: Path, archive: zipfile.ZipFile, error: type[MlpError], kind: str) -> dict[str, _Entry]:
    """Each array of `archive` by name, from its .npy header alone. np.load allocates what a
    header declares: a header that declares other than its zip entry's size is refused."""
    entries = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name == info.filename:
            raise error(f"{path}: not a readable {kind} (it holds {info.filename!r}, which is no array)")
        if name in entries:
            raise error(f"{path}: not a readable {kind} (it holds {name} twice)")
        with archive.open(info) as f:
            read_header = NPY_HEADERS.get(np.lib.format.read_magic(f))
            if read_header is None:
                raise error(
                    f"{path}: not a readable {kind} ({name} is of a .npy format this mlp does not read)"
                )
            shape, _, dtype = read_header(f)
            header = f.tell()
        if dtype.hasobject:
            raise error(
                f"{path}: not a readable {kind} (Object arrays cannot be loaded when allow_pickle=False):"
                f" {name} holds Python objects"
            )
        if dtype.kind not in NUMBERS_OR_TEXT:
            raise error(f"{path}: {name} holds {dtype}, neither numbers nor words")
        entry = _Entry(info, shape, dtype)
        if header + entry.nbytes != info.file_size:
            raise error(
                f"{path}: {name}'s header declares {_amount(entry.nbytes)} of data; its entry in the"
                f" archive holds {_amount(info.file_size)} in all"
            )
        entries[name] = entry
    return entries


def load_weights(path: str | Path) -> Saved:
    """Rebuild the model saved at `path` (a weights file or a run directory). Every entry is
    checked from its header first; the small ones that give the layout are read before any
    tensor, and a tensor only once its header fits the layout."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    weights = _npz(path, WEIGHTS_LIMIT, WeightsError, "no such weights file", "weights file")
    with weights as (archive, entries):
        small = _read_small(path, archive, entries, SMALL_ENTRIES)
        kind, names = _kind_of(path, small)
        small |= _read_small(path, archive, entries, kind.SPEC_INTS)
        spec, layout = _layout(path, kind, names, small)
        _check_tensors(path, entries, layout, [*SMALL_ENTRIES, *kind.SPEC_INTS], kind.kind)
        tensors = {name: entries[name].read(archive) for name in layout}
    return _model_from(path, kind.from_spec(spec), tensors, small, names["dataset"])


REQUIRED_ENTRIES = (
    "format_version",
    "sizes",
    "activation",
    "output",
    "output_activation",
    "input_mean",
    "input_std",
)
# what a weights file holds beside its tensors (and its kind's SPEC_INTS): read before them
SMALL_ENTRIES = tuple(dict.fromkeys((*REQUIRED_ENTRIES, *TEXT_ENTRIES, "epoch")))


def _read_small(
    path: Path, archive: zipfile.ZipFile, entries: dict[str, _Entry], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """The arrays of the entries `names` that `archive` holds, each refused unless small."""
    present = [name for name in names if name in entries]
    for name in present:
        if entries[name].size > SMALL_ENTRY_LIMIT:
            raise WeightsError(
                f"{path}: {name} is {_amount(entries[name].size)}; in a weights file it is at most"
                f" {_amount(SMALL_ENTRY_LIMIT)}"
            )
    return {name: entries[name].read(archive) for name in present}


def _kind_of(path: Path, small: dict[str, np.ndarray]) -> tuple[type[Network], dict[str, str]]:
    """The kind of network the small entries of the weights file at `path` describe, and its
    words (TEXT_ENTRIES), each checked."""
    missing = [name for name in REQUIRED_ENTRIES if name not in small]
    if missing:
        raise WeightsError(f"{path}: missing {', '.join(missing)}; is it an mlp weights file?")
    version = small["format_version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: a weights file of format {version.tolist()!r}; this mlp reads format"
            f" {FORMAT_VERSION} (was it written by another version of mlp?)"
        )
    sizes = small["sizes"]
    if sizes.ndim != 1 or len(sizes) < 2 or sizes.dtype.kind not in "iu" or (sizes < 1).any():
        raise WeightsError(f"{path}: sizes {sizes!r} is not a list of layer widths")
    names = {key: str(small.get(key, default)) for key, default in TEXT_ENTRIES.items()}
    if names["kind"] not in KINDS:
        raise WeightsError(
            f"{path}: holds a model of kind {names['kind']!r}; this mlp knows {', '.join(KINDS)}"
            " (was it written by another version of mlp?)"
        )
    if (
        names["activation"] not in ACTIVATIONS
        or names["output"] not in OUTPUTS
        or names["output_activation"] not in OUTPUT_ACTIVATIONS
        or names["dataset"] not in DATASETS
    ):
        raise WeightsError(f"{path}: unknown activation, output or dataset {names}")
    return KINDS[names["kind"]], names


def _layout(
    path: Path, kind: type[Network], names: dict[str, str], small: dict[str, np.ndarray]
) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """The spec of the network of `kind` the small entries describe, and its tensors' shapes."""
    spec = {"sizes": [int(width) for width in small["sizes"]]} | {name: names[name] for name in SPEC_TEXTS}
    spec |= {name: small[name].tolist() if name in small else None for name in kind.SPEC_INTS}
    try:
        return spec, kind.layout_of(spec)
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from None


def _check_tensors(
    path: Path, entries: dict[str, _Entry], layout: dict, small: Sequence[str], kind: str
) -> None:
    """The tensors' headers fit the `layout`, and the file holds nothing else but `small`."""
    for name, shape in layout.items():
        entry = entries.get(name)
        if entry is None or entry.shape != shape or entry.dtype.kind != "f":
            found = "missing" if entry is None else f"{entry.dtype} {entry.shape}"
            raise WeightsError(f"{path}: {name} should be floats of shape {shape}, found {found}")
    unknown = sorted(entries.keys() - layout.keys() - set(small))
    if unknown:
        raise WeightsError(f"{path}: holds {', '.join(unknown)}, which no {kind} weights file holds")


def _model_from(
    path: Path, model: Network, tensors: dict[str, np.ndarray], small: dict[str, np.ndarray], dataset: str
) -> Saved:
    """`model` with the `tensors` in it, and what the `small` entries say beside them."""
    scalars = [small[key] for key in ("input_mean", "input_std")]
    if any(a.shape != () or a.dtype.kind != "f" for a in scalars):
        raise WeightsError(f"{path}: input_mean and input_std should be single numbers")
    for name, (target, _) in model.tensors().items():
        target[...] = tensors[name]
    norm = Normalisation(float(scalars[0]), float(scalars[1]))
    if not np.isfinite(model.params).all() or not np.isfinite([norm.mean, norm.std]).all() or norm.std <= 0:
        raise WeightsError(f"{path}: holds non-finite values")
    epoch = small.get("epoch")
    if epoch is not None and (epoch.shape != () or epoch.dtype.kind not in "iu" or epoch < 1):
        raise WeightsError(f"{path}: epoch {epoch.tolist()!r} is not an epoch number")
    return Saved(model, norm, dataset, None if epoch is None else int(epoch))


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """The trainer's arrays and its JSON mapping (Trainer.state) in one file, with its format."""
    meta = meta | {"format_version": FORMAT_VERSION}
    write_atomic(path, lambda f: np.savez(f, **arrays, meta=np.array(json.dumps(meta))))


def load_checkpoint(path: Path, required: Sequence[str]) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the mapping of the checkpoint at `path`, of this format and holding the
    `required` keys (train.CHECKPOINT_KEYS), or a RunDirError that says why not. Every entry
    is checked from its header (_check_checkpoint) before any is read."""
    checkpoint = _npz(path, CHECKPOINT_LIMIT, RunDirError, "no checkpoint to resume from", "checkpoint")
    with checkpoint as (archive, entries):
        _check_checkpoint(path, entries)
        arrays = {name: entry.read(archive) for name, entry in entries.items()}
    try:
        meta = _parsed(path, json.loads, str(arrays.pop("meta")))
    except ValueError as e:
        raise RunDirError(f"{path}: not a readable checkpoint ({e})") from None
    if not isinstance(meta, dict) or not meta.keys() >= set(required):
        raise RunDirError(f"{path}: not a readable checkpoint (it needs {', '.join(sorted(required))})")
    version = meta.get("format_version", FORMAT_VERSION)  # the first checkpoints did not say
    if version != FORMAT_VERSION:
        raise RunDirError(
            f"{path}: a checkpoint of format {version!r}; this mlp resumes format {FORMAT_VERSION}"
            " (was it written by another version of mlp?)"
        )
    return arrays, meta


CHECKPOINT_ENTRIES = ("params", "kept_params", "order", "meta")  # and the optimizer's, optimizer_*


def _check_checkpoint(path: Path, entries: dict[str, _Entry]) -> None:
    """The checkpoint holds the entries a trainer writes (Trainer.state) and no others: its
    meta (within JSON_LIMIT), its params, and beside them copies of the params' size at most
    (the kept params, the optimizer's state) and the epoch's order of examples."""
    for name in ("meta", "params"):
        if name not in entries:
            raise RunDirError(f"{path}: not a readable checkpoint (it holds no {name})")
    unknown = sorted(
        name for name in entries if name not in CHECKPOINT_ENTRIES and not name.startswith("optimizer_")
    )
    if unknown:
        raise RunDirError(f"{path}: holds {', '.join(unknown)}, which no checkpoint holds")
    if entries["meta"].nbytes > JSON_LIMIT:
        meta = _amount(entries["meta"].nbytes)
        raise RunDirError(f"{path}: its meta is {meta}; a checkpoint's is at most {_amount(JSON_LIMIT)}")
    for name, entry in entries.items():
        if name not in ("meta", "order") and entry.nbytes > entries["params"].nbytes:
            raise RunDirError(f"{path}: {name} declares more than the params it goes with")
