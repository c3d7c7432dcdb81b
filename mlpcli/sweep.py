"""`mlp sweep`: a search over configs on Optuna. Each trial is an ordinary run directory; its
objective is the kept epoch's validation accuracy (never the test split), reported after
every epoch to Optuna's pruner; the best trial's whole config is DIR/best.yaml.

The study lives in a storage: by default the SQLite file DIR/study.db (Optuna's RDB storage:
several processes may share it, and its heartbeat lets the others fail the trial of a worker
that was killed), or any Optuna storage URL (PostgreSQL, MySQL: many machines, one study).
"""

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from sqlalchemy.exc import SQLAlchemyError

from mlpcli import artifacts, run
from mlpcli.config import (
    Config,
    did_you_mean,
    flat_items,
    from_dict,
    parse_override,
    read_yaml,
    save_config,
    with_values,
)
from mlpcli.data import N_CLASSES
from mlpcli.errors import ConfigError, DivergedError, MlpError, TrainingInterrupted
from mlpcli.gradcheck import MNIST_SHAPE
from mlpcli.models import build_model
from mlpcli.tables import text_table
from mlpcli.train import EpochRecord, Stop

SPEC_KEYS = ("config", "trials", "seed", "space")
DEFAULT_TRIALS = 20
NUMBER_KEYS = {"low", "high", "log", "step"}
HEARTBEAT = 10  # seconds between a running trial's heartbeats; 3 missed: another worker fails it
STUDY_DB, BEST, SUMMARY = "study.db", "best.yaml", "sweep.json"
PICTURES = ("history.png", "importances.png", "slices.png")


class SweepError(MlpError):
    """A sweep that cannot start or go on: a bad spec, an unreachable storage."""


@dataclass
class Param:
    """One swept config key, in Optuna's terms: a float or int range, or a list of choices."""

    key: str
    kind: str  # "float", "int" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def labels(self) -> list[str]:
        """The choices as Optuna stores them (its categorical values are scalars): YAML text."""
        return [
            yaml.safe_dump(choice, default_flow_style=True).strip().removesuffix("...").strip()
            for choice in self.choices
        ]

    def suggest(self, trial) -> Any:
        """The value the trial samples for this key."""
        if self.kind == "categorical":
            label = trial.suggest_categorical(self.key, self.labels())
            return self.choices[self.labels().index(label)]
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)


@dataclass
class Spec:
    config: str | None  # the base config file (None: the defaults)
    trials: int
    space: list[Param]
    base: dict  # the base config's raw mapping, --set applied
    seed: int | None = None  # the sampler's: one worker samples the same trials again


def read_spec(path: Path, overrides: tuple[str, ...] = (), trials: int | None = None) -> Spec:
    """The spec file at `path`, every swept key checked against the config schema before any
    trial: a ConfigError (naming the key) for an unknown key, a range that does not fit the
    key's type or allowed values, or an empty space."""
    raw = read_yaml(path)
    unknown = [key for key in raw if key not in SPEC_KEYS]
    if unknown:
        raise ConfigError(f"sweep spec {path}: unknown key {unknown[0]!r}; allowed: {', '.join(SPEC_KEYS)}")
    config_path = raw.get("config")
    if config_path is not None and not isinstance(config_path, str):
        raise ConfigError(f"sweep spec {path}: config must be the path of a config file, not {config_path!r}")
    base = with_values(read_yaml(config_path) if config_path else {}, map(parse_override, overrides))
    from_dict(base)  # the base config with --set must itself be valid
    count = raw.get("trials", DEFAULT_TRIALS) if trials is None else trials
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"sweep spec {path}: trials = {count!r} must be a whole number ≥ 1")
    space = raw.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(
            f"sweep spec {path}: space must map config keys to ranges, such as"
            " train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}"
        )
    fixed = {parse_override(item)[0] for item in overrides}
    params = [_param(str(key), value, base, fixed) for key, value in space.items()]
    seed = raw.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ConfigError(f"sweep spec {path}: seed = {seed!r} must be a whole number ≥ 0")
    return Spec(config_path, count, params, base, seed)


def _param(key: str, value: Any, base: dict, fixed: set[str]) -> Param:
    defaults = flat_items(Config())
    if key not in defaults:
        raise ConfigError(f"sweep space: {key!r} is not a config key{did_you_mean(key, list(defaults))}")
    if key in fixed:
        raise ConfigError(f"sweep space: {key} is swept, and --set fixes it too: drop one")
    if not isinstance(value, dict):
        raise ConfigError(
            f"sweep space: {key} needs a range {{low, high}} or {{choices: [...]}}, not {value!r}"
        )
    default = defaults[key]
    if "choices" in value:
        param = _choices(key, value)
    elif isinstance(default, bool) or not isinstance(default, int | float):  # lists, text, None
        raise ConfigError(
            f"sweep space: {key} takes {type(default).__name__} values: give it {{choices: [...]}}"
        )
    else:
        param = _range(key, value, int if isinstance(default, int) else float)
    for candidate in param.choices or (param.low, param.high):
        _check_value(key, candidate, base)
    return param


def _choices(key: str, value: dict) -> Param:
    choices = value["choices"]
    if set(value) != {"choices"} or not isinstance(choices, list) or not choices:
        raise ConfigError(f"sweep space: {key}: choices must be a non-empty list, alone")
    return Param(key, "categorical", choices=tuple(choices))


def _range(key: str, value: dict, kind: type) -> Param:
    extra = set(value) - NUMBER_KEYS
    if extra or not {"low", "high"} <= set(value):
        raise ConfigError(
            f"sweep space: {key} needs low and high (and optionally log, step), not {sorted(value)}"
        )
    low, high, step, log = value["low"], value["high"], value.get("step"), value.get("log", False)
    numbers = [low, high] + ([step] if step is not None else [])
    if kind is int and not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise ConfigError(f"sweep space: {key} is a whole number: low, high and step must be ints ({value})")
    try:
        low, high = kind(low), kind(high)  # YAML reads 1e-4 as text: the number it means
        step = None if step is None else kind(step)
    except (TypeError, ValueError):
        raise ConfigError(f"sweep space: {key}: low, high and step must be numbers ({value})") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"sweep space: {key}: low ({low}) must not be above high ({high})")
    if not isinstance(log, bool) or (log and (step is not None or low <= 0)):
        raise ConfigError(f"sweep space: {key}: log must be true or false, needs low > 0 and no step")
    if step is not None and step <= 0:
        raise ConfigError(f"sweep space: {key}: step must be > 0")
    return Param(key, kind.__name__, low, high, log, step)


def _check_value(key: str, value: Any, base: dict) -> None:
    """The config with `key` set to `value` must be valid, or the key's range is wrong."""
    try:
        config = from_dict(with_values(base, [(key, value)]))
        build_model(config.model, MNIST_SHAPE, N_CLASSES)  # the model section's keys, together
    except ConfigError as e:
        raise ConfigError(f"sweep space: {key} reaches a value the config refuses: {e}") from None


def trial_config(spec: Spec, values: dict[str, Any]) -> Config:
    """The base config with the trial's sampled `values`."""
    return from_dict(with_values(spec.base, values.items()))


# --- the study ----------------------------------------------------------------------------------


CREATION_ATTEMPTS = 5
RACED = ("already exists", "locked", "UNIQUE", "duplicate")  # two workers creating one storage at once


def open_storage(url: str | None, out: Path, heartbeat: int = HEARTBEAT):
    """Optuna's storage at `url` (default: the SQLite file DIR/study.db), with the heartbeat
    on where the storage has one; a SweepError when it cannot be reached."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's

    url = url or f"sqlite:///{(out / STUDY_DB).resolve()}"
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(1, CREATION_ATTEMPTS + 1):
        try:
            if url.startswith("redis"):
                from optuna.storages.journal import JournalRedisBackend

                return optuna.storages.JournalStorage(JournalRedisBackend(url))
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat,
                grace_period=3 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
        except SQLAlchemyError as e:
            if attempt < CREATION_ATTEMPTS and any(word in str(e) for word in RACED):
                time.sleep(0.1 * attempt)  # another worker is creating the same tables this moment
                continue
            error = e
        except (ImportError, ValueError, OSError) as e:
            error = e
        except Exception as e:  # Redis's errors, of a package that is not always installed
            if not type(e).__module__.startswith("redis"):
                raise
            error = e
        raise SweepError(f"cannot open the study's storage {_shown(url)}: {_first_line(error)}") from None


def _shown(url: str) -> str:
    """The URL with its password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _seed(storage, name: str, spec: Spec) -> int | None:
    """The sampler's seed: the spec's, moved on by the trials the study already holds, so that a
    sweep continued later does not draw its first trials again (a new study: the spec's own)."""
    if spec.seed is None:
        return None
    try:
        held = len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
    except KeyError:
        held = 0
    return spec.seed + held


def open_study(storage, name: str, spec: Spec):
    """The study `name` in `storage`, created if new (TPE, median pruning): maximise the kept
    validation accuracy. A study made from another space is refused."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # its failed-trial tracebacks: our lines say it
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(
            n_startup_trials=5, multivariate=True, seed=_seed(storage, name, spec)
        ),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2),
    )
    space = json.dumps({p.key: [p.kind, p.low, p.high, p.log, p.step, p.labels()] for p in spec.space})
    said = study.user_attrs.get("space")
    if said is None:
        study.set_user_attr("space", space)
    elif said != space:
        raise SweepError(
            f"the study {name!r} was made from another space; sweep it into a new --out or --study"
        )
    return study


# --- the trials -----------------------------------------------------------------------------------

FINISHED = ("COMPLETE", "PRUNED")  # a study is done when it holds --trials of these
ALIVE = (*FINISHED, "RUNNING", "WAITING")  # no new trial starts once there are --trials of these


class Surplus(Exception):
    """A trial asked for while another worker asked for the last one: not run."""


def sweep(
    spec_path: Path,
    out: Path,
    echo: Callable[[str], None],
    trials: int | None = None,
    storage: str | None = None,
    overrides: tuple[str, ...] = (),
    study_name: str = "sweep",
    should_stop: Stop = lambda: False,
    progress: bool | None = None,
    heartbeat: int = HEARTBEAT,
) -> dict:
    """Run trials of the study until it holds `trials` of them (the spec's count by default)
    that completed or were pruned, in this process or in others that share the storage; a
    trial whose worker stopped beating for 3 heartbeats is failed and run again once.
    DIR/best.yaml, sweep.json and the pictures are rewritten after each trial. Returns the
    summary; TrainingInterrupted when `should_stop()` said so (the trial under way, failed)."""
    spec = read_spec(spec_path, overrides, trials)
    if storage is None:
        artifacts.make_directory(out)  # the study's own file goes in it
    try:
        opened = open_storage(storage, out, heartbeat)
        study = open_study(opened, study_name, spec)
    except (SQLAlchemyError, RuntimeError) as e:
        raise SweepError(
            f"cannot open the study {study_name!r} in {_shown(storage or str(out))}: {_first_line(e)}"
        ) from None
    artifacts.make_directory(out)

    def objective(trial: optuna.Trial) -> float:
        if _counted(study.get_trials(deepcopy=False), ALIVE, below=trial.number) >= spec.trials:
            trial.set_user_attr("surplus", True)
            raise Surplus
        config = trial_config(spec, {p.key: p.suggest(trial) for p in spec.space})
        run_dir = out / f"trial-{trial.number:03d}"
        trial.set_user_attr("run", str(run_dir.resolve()))
        trial.set_user_attr("config", save_config(config))
        echo(f"trial {trial.number}: {_values(trial.params)} → {run_dir}")

        def prune(record: EpochRecord) -> bool:
            trial.report(record.val_accuracy, record.epoch)
            return trial.should_prune()

        if run_dir.exists() and any(run_dir.iterdir()):
            raise SweepError(f"{run_dir} holds another study's trial: sweep this study into another --out")
        try:
            metrics = run.train_run(config, run_dir, _indented(echo), progress, should_stop, prune=prune)
        except (DivergedError, ConfigError) as e:
            echo(f"trial {trial.number} failed: {e}")
            raise
        if metrics["status"] == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {metrics['epochs']}")
        return metrics["kept_val_accuracy"]

    beats = isinstance(opened, optuna.storages.RDBStorage)  # Optuna's heartbeat: RDB storages only
    summary = None
    try:
        while not should_stop():
            done = _step(study, objective, spec.trials, out, heartbeat if beats else None)
            summary = _written(study, out, summary)
            if done:
                return summary
    except SQLAlchemyError as e:
        raise SweepError(f"the study's storage failed: {_first_line(e)}") from None
    raise TrainingInterrupted(
        "the sweep stopped between trials; run the same command to go on with the study"
    )


def _step(study, objective: Callable, trials: int, out: Path, heartbeat: int | None) -> bool:
    """One trial of this worker, or a wait for the others' last ones (`heartbeat` seconds; None:
    the storage has no heartbeat, so a dead worker's trial would be waited for forever); True
    when the study is done."""
    optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, and queued again
    held = study.get_trials(deepcopy=False)
    if _counted(held, FINISHED) >= trials:
        return True
    if _failed(held) >= trials:
        raise SweepError(f"{trials} trials failed (diverged, or stopped): see sweep.json in {out}")
    if not _counted(held, ("WAITING",)) and _counted(held, ALIVE) >= trials:
        if heartbeat is None:
            raise SweepError(
                f"the study holds {trials} trials, some still running in other workers; this one is done"
            )
        time.sleep(heartbeat)  # the last trials run in other workers: wait for them (or their heartbeat)
        return False
    study.optimize(objective, n_trials=1, catch=(DivergedError, ConfigError, Surplus))
    return False


def _written(study, out: Path, written: dict | None) -> dict:
    """The study's summary, its files rewritten when it differs from the one `written` last."""
    summary = summarise(study)
    if summary != written:
        write_results(study, out, summary)
    return summary


def _counted(trials: list, states: tuple[str, ...], below: int | None = None) -> int:
    """The trials in `states` (of numbers below `below`, when given), surplus ones aside."""
    return sum(
        t.state.name in states and not t.user_attrs.get("surplus") and (below is None or t.number < below)
        for t in trials
    )


def _failed(trials: list) -> int:
    """The failed trials that were not run again (a killed worker's trial is)."""
    retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
    return sum(
        t.state.name == "FAIL" and not t.user_attrs.get("surplus") and t.number not in retried for t in trials
    )


def _values(params: dict) -> str:
    return ", ".join(f"{key}={_cell(value)}" for key, value in params.items())


def _indented(echo: Callable[[str], None]) -> Callable[[str], None]:
    return lambda line: echo("  " + line)


# --- the results ----------------------------------------------------------------------------------


def summarise(study) -> dict:
    """Every trial (surplus ones aside) with its state, value, parameters and run directory,
    and the best: what sweep.json holds."""
    rows = [
        {
            "trial": t.number,
            "state": t.state.name.lower(),
            "val_accuracy": t.value,
            "epochs": max(t.intermediate_values, default=None),
            "params": _params(t),
            "run": t.user_attrs.get("run"),
        }
        for t in study.get_trials(deepcopy=False)
        if not t.user_attrs.get("surplus")
    ]
    done = [row for row in rows if row["state"] == "complete"]
    best = max(done, key=lambda row: (row["val_accuracy"], -row["trial"]), default=None)
    counts = {
        state: sum(row["state"] == state for row in rows)
        for state in ("complete", "pruned", "fail", "running")
    }
    return {
        "study": study.study_name,
        "objective": "kept validation accuracy",
        "best": best,
        "counts": counts,
        "trials": rows,
    }


def _params(trial) -> dict[str, Any]:
    """The trial's sampled config values (a choice, as Optuna stores its YAML text: the value)."""
    from optuna.distributions import CategoricalDistribution

    return {
        key: yaml.safe_load(value) if isinstance(trial.distributions[key], CategoricalDistribution) else value
        for key, value in trial.params.items()
    }


def write_results(study, out: Path, summary: dict) -> None:
    """sweep.json, best.yaml (the best trial's whole config: `mlp train --config` retrains
    it) and the pictures, from the study as it stands now (`summary`: its summarise)."""
    artifacts.write_json(out / SUMMARY, summary)
    if summary["best"] is not None:
        best = next(t for t in study.get_trials(deepcopy=False) if t.number == summary["best"]["trial"])
        header = (
            f"# the best trial of the sweep {study.study_name!r}: trial {best.number},"
            f" kept validation accuracy {best.value:.4f}\n"
        )
        artifacts.write_text(out / BEST, header + best.user_attrs["config"])
    draw(study, out)


def draw(study, out: Path) -> None:
    """history.png (each trial's objective, the best so far), importances.png (each parameter's
    share of the objective's variance, by Optuna's default evaluator) and slices.png (the
    objective against each parameter), from Optuna's matplotlib plots; a picture its trials
    cannot make yet is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    kinds = {
        "history.png": plots.plot_optimization_history,
        "importances.png": plots.plot_param_importances,
        "slices.png": plots.plot_slice,
    }
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    for name, plot in kinds.items():
        if len(complete) < (2 if name == "importances.png" else 1):
            continue
        # rc_context: Optuna's plots set the ggplot style for the whole process, and the trials'
        # own curves.png, drawn in this process next, would take it on
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore")  # "experimental" warnings of Optuna's matplotlib plots
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ImportError):
                continue
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            _readable(figure)
            artifacts.save_figure(out / name, figure)
            plt.close(figure)


def _readable(figure) -> None:
    """Room for every label: 3.6 inches a panel (a slice plot has one per parameter), the
    log axes' minor ticks unlabelled (they overlap), and the layout fitted to the labels
    (unless a colour bar sits beside the panels, which fitting would lay over them)."""
    from matplotlib.ticker import NullFormatter

    panels = [axes for axes in figure.axes if axes.get_label() != "<colorbar>"]
    figure.set_size_inches(max(7.2, 3.6 * len(panels) + 1.2), 4.8)
    for axes in panels:
        if axes.get_xscale() == "log":
            axes.xaxis.set_minor_formatter(NullFormatter())
    if len(panels) == len(figure.axes):
        figure.tight_layout()


def format_summary(summary: dict) -> str:
    """The trials as a table, best first, and a line on the best."""
    rows = sorted(
        summary["trials"], key=lambda r: (r["val_accuracy"] is None, -(r["val_accuracy"] or 0), r["trial"])
    )
    keys = sorted({key for row in rows for key in row["params"]})
    header = ["trial", "state", "val_acc", "epochs", *keys]
    cells = [
        [
            str(r["trial"]),
            r["state"],
            "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}",
            str(r["epochs"] or "-"),
            *(_cell(r["params"].get(key)) for key in keys),
        ]
        for r in rows
    ]
    lines = text_table(header, cells)
    counts = ", ".join(f"{n} {state}" for state, n in summary["counts"].items() if n)
    best = summary["best"]
    said = (
        f"best: trial {best['trial']}, kept validation accuracy {best['val_accuracy']:.4f}"
        if best
        else "no trial has completed yet"
    )
    return "\n".join(lines + ["", f"{len(rows)} trials ({counts}); {said}"])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
