"""Runs side by side: what each run directory under a folder holds (read without trusting it:
a half-written or damaged run is reported as such), the config keys that differ between
them, a table a person reads, and their learning curves on one figure (`mlp runs`, `mlp plot`)."""

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from mlpcli import artifacts, locks
from mlpcli.config import flat_items, from_dict
from mlpcli.errors import MlpError, RunDirError, RunFileError
from mlpcli.output import Echo
from mlpcli.tables import text_table
from mlpcli.train import HISTORY_COLUMNS, REQUIRED_COLUMNS

COLUMNS = ["run", "dataset", "epochs", "kept", "val_acc", "test_acc", "time", "status"]


@dataclass
class Run:
    """One run directory as far as it can be read; `problems` says what could not be."""

    path: Path
    config: dict[str, object] = field(default_factory=dict)  # dotted key → value
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        owner = locks.holder(self.path / artifacts.LOCK)
        if owner is not None:
            return f"training (process {owner})"
        if self.problems:
            return "broken: " + "; ".join(self.problems)
        return str(self.metrics.get("status", "?"))

    def cells(self, keys: list[str]) -> dict[str, object]:
        """The row of the runs table: COLUMNS and the config `keys`, by name."""
        kept = self.metrics.get("kept_epoch")
        if not (isinstance(kept, int) and 1 <= kept <= len(self.history)):
            kept = None  # absent, or a damaged metrics.json
        val = float(self.history[kept - 1]["val_accuracy"]) if kept else None
        seconds = sum(float(row["seconds"]) for row in self.history) if self.history else None
        return {
            "run": self.path.name,
            "dataset": self.config.get("data.name"),
            **{key: self.config.get(key) for key in keys},
            "epochs": len(self.history) if self.history else None,
            "kept": kept,
            "val_acc": None if val is None or math.isnan(val) else val,  # nan: none held out
            "test_acc": self.metrics.get("test_accuracy"),
            "time": seconds,
            "status": self.status,
        }


def read_run(path: Path) -> Run:
    """Whatever of config.yaml, metrics.json and history.csv `path` holds, and what is wrong."""
    run = Run(path)
    sources = (
        ("config", artifacts.CONFIG, _config),
        ("metrics", artifacts.METRICS, artifacts.read_json),
        ("history", artifacts.HISTORY, _history),
    )
    for attribute, name, read in sources:
        try:
            setattr(run, attribute, read(path / name))
        except FileNotFoundError:
            run.problems.append(f"no {name}")
        except RunFileError as e:  # says the file and why
            run.problems.append(str(e))
        except (OSError, ValueError, TypeError, KeyError, MlpError, csv.Error) as e:
            run.problems.append(f"{name} unreadable ({type(e).__name__})")
    return run


def _config(path: Path) -> dict[str, object]:
    return flat_items(from_dict(artifacts.read_config(path)))


def _history(path: Path) -> list[dict]:
    """history.csv's rows, each checked to hold every column as a number (ValueError if not)."""
    text = artifacts.read_run_text(path, artifacts.HISTORY_LIMIT)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for row in rows:
        if any(row.get(column) is None for column in REQUIRED_COLUMNS):
            raise ValueError("a column is missing")
        for column in HISTORY_COLUMNS:
            if row.get(column) is not None:  # runs of older versions lack the newer columns
                float(row[column])
    return rows


MARKS = (artifacts.CONFIG, artifacts.METRICS, artifacts.HISTORY, artifacts.WEIGHTS, artifacts.CHECKPOINT)


def is_run(path: Path) -> bool:
    """Whether `path` is a run directory: a directory with any file a run writes."""
    return path.is_dir() and any((path / name).exists() for name in MARKS)


def run_paths(folder: Path) -> list[Path]:
    """Every run directory directly under `folder`, or `folder` itself when it is one."""
    return [folder] if is_run(folder) else [p for p in sorted(folder.iterdir()) if is_run(p)]


def find_runs(folder: Path) -> list[Run]:
    """Every run directory directly under `folder` (or `folder` itself), read."""
    return [read_run(path) for path in run_paths(folder)]


def folders_of_runs(folder: Path) -> list[tuple[Path, int]]:
    """The folders directly under `folder` that are not runs but hold runs (a sweep's trials),
    each with how many: what a listing of `folder` leaves out."""
    if is_run(folder):
        return []
    inner = [path for path in sorted(folder.iterdir()) if path.is_dir() and not is_run(path)]
    counted = [(path, _runs_in(path)) for path in inner]
    return [(path, count) for path, count in counted if count]


def _runs_in(folder: Path) -> int:
    """How many run directories are directly under `folder` (none that can be seen, when it
    cannot be read)."""
    try:
        return sum(is_run(path) for path in folder.iterdir())
    except OSError:
        return 0


def elsewhere(folder: Path, command: str) -> list[str]:
    """A line for each folder of runs that a listing of `folder` leaves out, with the command
    (`mlp runs`, `mlp serve`) that shows them."""
    return [
        f"{path} holds {count} more run{'s' * (count != 1)}: mlp {command} {path}"
        for path, count in folders_of_runs(folder)
    ]


def differing_keys(runs: list[Run]) -> list[str]:
    """The config keys whose values are not the same in every run that has a config."""
    configs = [run.config for run in runs if run.config]
    keys = sorted({key for config in configs for key in config})
    return [key for key in keys if len({_compared(key, config.get(key)) for config in configs}) > 1]


def _compared(key: str, value: object) -> object:
    """What tells values apart: paths compared the platform's way (on Windows C:\\Data and
    c:/data are one folder), anything else by its text."""
    return Path(value) if key in PATH_KEYS and isinstance(value, str) else repr(value)


def table(runs: list[Run], sort: str = "run", reverse: bool = False, width: int | None = None) -> str:
    """The runs as a text table, sorted by the column or config key `sort` (missing values last).
    The config keys that differ between them are columns, but data.name: that is `dataset`.
    A table wider than `width` is cut into blocks of columns, each beginning with `run`."""
    keys = [key for key in differing_keys(runs) if key != "data.name"]
    hidden = [sort] if sort not in COLUMNS and sort not in keys else []  # a key the same in every run
    rows = [run.cells(keys + hidden) for run in runs]
    present = sorted((row for row in rows if row[sort] is not None), key=lambda row: _sortable(row[sort]))
    rows = (present[::-1] if reverse else present) + [row for row in rows if row[sort] is None]
    header = [*COLUMNS[:2], *keys, *COLUMNS[2:]]
    paths = _short_paths([row[key] for row in rows for key in header if key in PATH_KEYS])
    text = [[_show(column, row[column], paths) for column in header] for row in rows]
    return "\n".join(text_table(header, text, width))


def columns(runs: list[Run]) -> list[str]:
    """The names `table` may sort by: its columns and every config key of these runs."""
    return [*COLUMNS, *sorted({key for run in runs for key in run.config})]


def labels(runs: list[Run]) -> list[str]:
    """A legend label per run: what differs between them, paths cut to what tells them apart,
    and the run's name (alone, when nothing differs)."""
    keys = differing_keys(runs)
    paths = _short_paths([run.config.get(key) for run in runs for key in keys if key in PATH_KEYS])
    named = [", ".join(f"{key}={_show(key, run.config.get(key), paths)}" for key in keys) for run in runs]
    return [f"{run.path.name}: {label}" if label else run.path.name for label, run in zip(named, runs)]


PATH_KEYS = ("data.dir",)  # config keys that hold paths, shown by the part that tells them apart


def _short_paths(values: list[object]) -> dict[str, str]:
    """Each distinct path among `values` by its last parts, as few as keep them distinct
    (…/fashion-mnist rather than /usr/share/datasets/fashion-mnist)."""
    paths = sorted({str(value) for value in values if isinstance(value, str)})
    parts = {path: Path(path).parts for path in paths}
    for n in range(1, max((len(p) for p in parts.values()), default=0) + 1):
        tails = {path: p[-n:] for path, p in parts.items()}
        if len({Path(*tail) for tail in tails.values()}) == len(tails):  # as the platform compares
            return {path: str(Path(*_marked(tail, parts[path]))) for path, tail in tails.items()}
    return {}


def _marked(tail: tuple[str, ...], parts: tuple[str, ...]) -> tuple[str, ...]:
    return tail if tail == parts else ("…", *tail)  # … where parts were cut


def _sortable(value: object) -> tuple[int, object]:
    """Numbers by value, lists (model.hidden) as lists of numbers, the rest as text."""
    if isinstance(value, bool) or not isinstance(value, int | float | list):
        return (2, str(value))
    return (0, value) if not isinstance(value, list) else (1, [_sortable(item) for item in value])


def _show(column: str, value: object, paths: dict[str, str] | None = None) -> str:
    """A cell: `paths` shortens the values of PATH_KEYS."""
    if value is None:
        return "-"
    if column in PATH_KEYS and paths and str(value) in paths:
        return paths[str(value)]
    if column == "time":
        return f"{value:.0f}s"
    if isinstance(value, float):
        return f"{value:.4f}" if column.endswith("acc") else f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(str, value))  # model.hidden: one cell, no spaces
    return str(value)


def plot_runs(paths: list[Path], out: Path, echo: Echo) -> None:
    """The learning curves of the runs at `paths` (a folder of runs: the runs in it) on one
    figure, written to `out` (PNG, SVG, PDF or JPEG by its suffix). A run with no epoch to
    draw is left out, with a word; none to draw at all is an error."""
    from mlpcli import plots

    found = [run for path in paths for run in (find_runs(path) if path.is_dir() else [])]
    missing = [path for path in paths if not path.is_dir()]
    if missing:
        raise RunDirError(f"{missing[0]}: no such run directory")
    drawn = [run for run in found if run.history]
    for run in found:
        if not run.history:
            echo(f"left out {run.path}: nothing to plot ({'; '.join(run.problems) or 'no epoch finished'})")
    if not drawn:
        raise RunDirError(f"nothing to plot: no epoch finished in {', '.join(map(str, paths))}")
    curves = list(zip(labels(drawn), (run.history for run in drawn)))
    title = f"{len(drawn)} run{'s' if len(drawn) != 1 else ''}"
    artifacts.save_figure(out, plots.compare(curves, title))
