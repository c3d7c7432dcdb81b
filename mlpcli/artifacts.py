"""The run directory: config.yaml, weights.npz, metrics.json, history.csv, curves.png (and
what mlp eval writes: eval.json, confusion.png, mistakes.png). Every file is written
atomically: to a temporary file beside it, then renamed over it."""

import csv
import io
import json
import os
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from mlpcli import locks
from mlpcli.config import closest
from mlpcli.data import CLASS_NAMES as DATASETS
from mlpcli.data import Normalisation
from mlpcli.errors import MlpError, RunDirError, WeightsError
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
EVAL, CONFUSION, MISTAKES = "eval.json", "confusion.png", "mistakes.png"  # of the test split
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


def read_json(path: Path) -> dict:
    """A JSON file holding a mapping (metrics.json, eval.json); ValueError if it holds another."""
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a mapping")
    return value


def read_metrics(folder: Path) -> dict:
    """The run's metrics.json, or {} when it is missing or unreadable."""
    try:
        return read_json(folder / METRICS)
    except (OSError, ValueError):
        return {}


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
    if (target / CHECKPOINT).exists() or (target / METRICS).exists():
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


def load_weights(path: str | Path) -> Saved:
    """Rebuild the model saved at `path` (a weights file or a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    arrays = _read_npz(path, WeightsError, "no such weights file", "weights file")
    return _model_from(path, arrays)


def _read_npz(path: Path, error: type[MlpError], missing: str, kind: str) -> dict[str, np.ndarray]:
    """Every array of the .npz file at `path`, read without pickle; `error` when it is missing
    or unreadable."""
    try:
        if path.is_file() and not zipfile.is_zipfile(path):  # np.load would try pickle, and say so
            raise error(f"{path}: not a readable {kind} (that is an .npz archive, and this is none)")
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except UNREADABLE as e:
        raise error(f"{path}: not a readable {kind} ({e})") from None


def _model_from(path: Path, arrays: dict[str, np.ndarray]) -> Saved:
    meta = ("format_version", "sizes", "activation", "output", "output_activation", "input_mean", "input_std")
    missing = [name for name in meta if name not in arrays]
    if missing:
        raise WeightsError(f"{path}: missing {', '.join(missing)}; is it an mlp weights file?")
    version = arrays["format_version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: a weights file of format {version.tolist()!r}; this mlp reads format"
            f" {FORMAT_VERSION} (was it written by another version of mlp?)"
        )
    sizes = arrays["sizes"]
    if sizes.ndim != 1 or len(sizes) < 2 or sizes.dtype.kind not in "iu" or (sizes < 1).any():
        raise WeightsError(f"{path}: sizes {sizes!r} is not a list of layer widths")
    names = {key: str(arrays.get(key, default)) for key, default in TEXT_ENTRIES.items()}
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
    kind = KINDS[names["kind"]]
    spec = {"sizes": [int(width) for width in sizes]} | {name: names[name] for name in SPEC_TEXTS}
    spec |= {name: arrays[name].tolist() if name in arrays else None for name in kind.SPEC_INTS}
    try:
        layout = kind.layout_of(spec)
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from None
    for name, shape in layout.items():  # before allocating
        array = arrays.get(name)
        if array is None or array.shape != shape or array.dtype.kind != "f":
            found = "missing" if array is None else f"{array.dtype} {array.shape}"
            raise WeightsError(f"{path}: {name} should be floats of shape {shape}, found {found}")
    scalars = [arrays[key] for key in ("input_mean", "input_std")]
    if any(a.shape != () or a.dtype.kind != "f" for a in scalars):
        raise WeightsError(f"{path}: input_mean and input_std should be single numbers")
    model = kind.from_spec(spec)
    for name, (target, _) in model.tensors().items():
        target[...] = arrays[name]
    norm = Normalisation(float(scalars[0]), float(scalars[1]))
    if not np.isfinite(model.params).all() or not np.isfinite([norm.mean, norm.std]).all() or norm.std <= 0:
        raise WeightsError(f"{path}: holds non-finite values")
    epoch = arrays.get("epoch")
    if epoch is not None and (epoch.shape != () or epoch.dtype.kind not in "iu" or epoch < 1):
        raise WeightsError(f"{path}: epoch {epoch.tolist()!r} is not an epoch number")
    return Saved(model, norm, names["dataset"], None if epoch is None else int(epoch))


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """The trainer's arrays and its JSON mapping (Trainer.state) in one file, with its format."""
    meta = meta | {"format_version": FORMAT_VERSION}
    write_atomic(path, lambda f: np.savez(f, **arrays, meta=np.array(json.dumps(meta))))


def load_checkpoint(path: Path, required: Sequence[str]) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the mapping of the checkpoint at `path`, of this format and holding the
    `required` keys (train.CHECKPOINT_KEYS), or a RunDirError that says why not."""
    arrays = _read_npz(path, RunDirError, "no checkpoint to resume from", "checkpoint")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, ValueError) as e:
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
