"""The run directory: config.yaml, weights.npz, metrics.json, history.csv (and eval.json).
Every file is written atomically: to a temporary file beside it, then renamed over it."""

import csv
import io
import json
import os
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from mlpcli.data import CLASS_NAMES as DATASETS
from mlpcli.data import Normalisation
from mlpcli.errors import RunDirError, WeightsError
from mlpcli.nn.activations import ACTIVATIONS
from mlpcli.nn.network import MLP

WEIGHTS, CONFIG, METRICS, HISTORY, EVAL = (
    "weights.npz",
    "config.yaml",
    "metrics.json",
    "history.csv",
    "eval.json",
)
FORMAT_VERSION = 1
OUTPUTS = ("softmax_cross_entropy", "mse")
NAMES = {"activation": None, "output": None, "output_activation": None, "dataset": "mnist"}  # → default


def check_run_dir(path: Path) -> None:
    """Refuse a run directory that already holds files (nothing is overwritten)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunDirError(f"--out {path} already holds files; choose a new run directory")


def prepare_run_dir(path: str | Path) -> Path:
    """Create the run directory, new or empty."""
    path = Path(path)
    check_run_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create run directory {path}: {e.strerror}") from None
    return path


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write `path` through `write(file)` into a temporary file beside it, then rename it into
    place: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RunDirError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, value: dict) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def write_history(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text(path, text.getvalue())


@dataclass
class Saved:
    """What a weights file holds: the model, its input normalisation, the dataset it learnt."""

    model: MLP
    norm: Normalisation
    dataset: str


def save_weights(path: Path, saved: Saved) -> None:
    """The arrays, the architecture, the input normalisation and the dataset's name: enough to
    rebuild and evaluate the model with no config."""
    model, norm = saved.model, saved.norm
    arrays = {name: tensor for name, (tensor, _) in model.tensors().items()}
    meta = {
        "format_version": np.array(FORMAT_VERSION),
        "sizes": np.array(model.sizes, dtype=np.int64),
        "activation": np.array(model.activation.name),
        "output": np.array(model.output.name),
        "output_activation": np.array(getattr(model.output, "activation", ACTIVATIONS["sigmoid"]).name),
        "input_mean": np.array(norm.mean),
        "input_std": np.array(norm.std),
        "dataset": np.array(saved.dataset),
    }
    write_atomic(path, lambda f: np.savez(f, **arrays, **meta))


def load_weights(path: str | Path) -> Saved:
    """Rebuild the model saved at `path` (a weights file or a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise WeightsError(f"{path}: not a readable weights file ({e})") from None
    return _model_from(path, arrays)


def _model_from(path: Path, arrays: dict[str, np.ndarray]) -> Saved:
    meta = ("format_version", "sizes", "activation", "output", "output_activation", "input_mean", "input_std")
    missing = [name for name in meta if name not in arrays]
    if missing:
        raise WeightsError(f"{path}: missing {', '.join(missing)}; is it an mlp weights file?")
    sizes = arrays["sizes"]
    if sizes.ndim != 1 or len(sizes) < 2 or sizes.dtype.kind not in "iu" or (sizes < 1).any():
        raise WeightsError(f"{path}: sizes {sizes!r} is not a list of layer widths")
    names = {key: str(arrays.get(key, default)) for key, default in NAMES.items()}
    if (
        names["activation"] not in ACTIVATIONS
        or names["output"] not in OUTPUTS
        or names["dataset"] not in DATASETS
    ):
        raise WeightsError(f"{path}: unknown activation, output or dataset {names}")
    model = MLP([int(s) for s in sizes], names["activation"], names["output"], names["output_activation"])
    for name, (target, _) in model.tensors().items():
        array = arrays.get(name)
        if array is None or array.shape != target.shape or array.dtype.kind != "f":
            found = "missing" if array is None else f"{array.dtype} {array.shape}"
            raise WeightsError(f"{path}: {name} should be floats of shape {target.shape}, found {found}")
        target[...] = array
    norm = Normalisation(float(arrays["input_mean"]), float(arrays["input_std"]))
    if not np.isfinite(model.params).all() or not np.isfinite([norm.mean, norm.std]).all() or norm.std <= 0:
        raise WeightsError(f"{path}: holds non-finite values")
    return Saved(model, norm, names["dataset"])
