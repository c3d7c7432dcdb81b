"""`mlp sweep`: a search over configs on Optuna. Each trial is an ordinary run directory; its
objective is the kept epoch's validation accuracy (never the test split), reported after
every epoch to Optuna's pruner; the best trial's whole config is DIR/best.yaml.

The study lives in a storage: by default the SQLite file DIR/study.db (Optuna's RDB storage:
several processes may share it, and its heartbeat lets the others fail the trial of a worker
that was killed), or any Optuna storage URL (PostgreSQL, MySQL: many machines, one study).
"""

import contextlib
import itertools
import json
import math
import re
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.exceptions import StorageInternalError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from mlpcli import artifacts, training
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
from mlpcli.data import MNIST_SHAPE, N_CLASSES, locate
from mlpcli.errors import ConfigError, DivergedError, MlpError, RunAborted, TrainingInterrupted
from mlpcli.models import CHECKED_KEYS, check_config
from mlpcli.tables import text_table
from mlpcli.train import EpochRecord, Stop

SPEC_KEYS = ("config", "trials", "seed", "space")
DEFAULT_TRIALS = 20
MAX_SEED = 2**32 - 1  # the samplers' seeds are 32-bit
MAX_STEPS = 10**12  # a stepped range with more steps than this is continuous in all but name
NUMBER_KEYS = {"low", "high", "log", "step"}
HEARTBEAT = 10  # seconds between a running trial's heartbeats; 3 missed: another worker fails it
STUDY_DB, BEST, SUMMARY = "study.db", "best.yaml", "sweep.json"
OBJECTIVE = "kept validation accuracy"  # what a trial's value is
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
    key's type or allowed values, values of several keys that cannot train together
    (models.check_config), or an empty space."""
    raw = read_yaml(path, "sweep spec")
    unknown = [key for key in raw if key not in SPEC_KEYS]
    if set(unknown) & {"data", "model", "train"}:
        raise ConfigError(
            f"{path} is a config, not a sweep spec: a spec names its base config and the keys to"
            f" search, as in sweeps/mnist.yaml (config: {path}, then space: …)"
        )
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
    if "data.validation" not in space:  # if swept, each end of its range is checked (_check_value)
        _check_judged(from_dict(base))
    fixed = {parse_override(item)[0] for item in overrides}
    params = [_param(str(key), value, base, fixed) for key, value in space.items()]
    _check_combinations(params, base)
    seed = raw.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED
    ):
        raise ConfigError(f"sweep spec {path}: seed = {seed!r} must be a whole number from 0 to {MAX_SEED}")
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
    if step is not None and not step > 0:
        raise ConfigError(f"sweep space: {key}: step must be > 0")
    if step is not None and high > low and step > high - low:
        raise ConfigError(f"sweep space: {key}: step {step} is wider than the range: every trial gets {low}")
    if step is not None and (high - low) / step > MAX_STEPS:
        raise ConfigError(
            f"sweep space: {key}: step {step} cuts [{low}, {high}] into more than {MAX_STEPS:.0e} steps:"
            " leave step out for a continuous range"
        )
    return Param(key, kind.__name__, low, high, log, step)


def _check_judged(config: Config) -> None:
    """A trial's config must hold validation examples out: they judge it."""
    if not config.data.validation:
        raise ConfigError(
            f"data.validation = 0 holds no examples out, and a sweep judges each trial by its"
            f" {OBJECTIVE}: sweep with data.validation above 0"
        )


def _check_value(key: str, value: Any, base: dict) -> None:
    """The config with `key` set to `value` must be valid, or the key's range is wrong."""
    try:
        _check_judged(from_dict(with_values(base, [(key, value)])))
    except ConfigError as e:
        raise ConfigError(f"sweep space: {key} reaches a value the config refuses: {e}") from None


def _check_combinations(params: list[Param], base: dict) -> None:
    """Every config the swept keys that check_config reads can make together (each choice, and
    each end of a range), with the base config's other keys, must be one that can train:
    checked without building a network, so a width of a million costs nothing here."""
    together = [p for p in params if p.key in CHECKED_KEYS]
    for combination in itertools.product(*(p.choices or (p.low, p.high) for p in together)):
        chosen = list(zip((p.key for p in together), combination))
        try:
            check_config(from_dict(with_values(base, chosen)), MNIST_SHAPE, N_CLASSES)
        except ConfigError as e:
            values = " and ".join(f"{key} = {value}" for key, value in chosen)
            said = f"with {values}, trials cannot run: " if len(chosen) > 1 else ""
            raise ConfigError(f"sweep space: {said}{e}") from None


def trial_config(spec: Spec, values: dict[str, Any]) -> Config:
    """The base config with the trial's sampled `values`."""
    return from_dict(with_values(spec.base, values.items()))


# --- the study ----------------------------------------------------------------------------------


CREATION_ATTEMPTS = 5
RACED = ("already exists", "locked", "UNIQUE", "duplicate")  # two workers creating one storage at once
STORAGE_ERRORS = (SQLAlchemyError, StorageInternalError)  # what a storage that failed raises
DRIVERS = {  # the module a storage URL's database driver is, and the package that has it
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
    "redis": "redis",
}


class StorageLost(SweepError, RunAborted):
    """The study's storage failed in the middle of a trial: the trial's run stops, resumable."""


class _RDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, whose heartbeat misses a beat when the database cannot be reached
    rather than dying in its thread with a traceback: the trial's own next write fails too,
    and says so in one line."""

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(*STORAGE_ERRORS):
            super().record_heartbeat(trial_id)


def open_storage(url: str | None, out: Path, heartbeat: int = HEARTBEAT):
    """Optuna's storage at `url` (default: the SQLite file DIR/study.db), with the heartbeat
    on where the storage has one; a SweepError when it cannot be reached."""
    url = url or f"sqlite:///{(out / STUDY_DB).resolve()}"
    try:
        make_url(url)  # the form every storage Optuna opens takes (redis:// too)
    except (ArgumentError, ValueError):
        raise SweepError(
            f"cannot open the study's storage {_shown(url)}: not a storage URL such as"
            " postgresql://user@host/database or sqlite:///file.db"
        ) from None
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(1, CREATION_ATTEMPTS + 1):
        try:
            if url.startswith("redis"):
                from optuna.storages.journal import JournalRedisBackend

                return optuna.storages.JournalStorage(JournalRedisBackend(url))
            return _RDBStorage(
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
            error = _first_line(e)
        except ImportError as e:
            error = _missing_driver(e)
        except (ValueError, OSError) as e:
            error = _first_line(e)
        except Exception as e:  # Redis's errors, of a package that is not always installed
            if not type(e).__module__.startswith("redis"):
                raise
            error = _first_line(e)
        raise SweepError(f"cannot open the study's storage {_shown(url)}: {error}") from None


def _missing_driver(error: ImportError) -> str:
    """What to install for the database driver a storage URL names, when it is missing."""
    cause = error.__cause__ or error.__context__ or error
    name = getattr(cause, "name", None) or ""
    module = name.split(".")[0]
    if not module:
        return _first_line(error)
    package = DRIVERS.get(module, module)
    return f'its database driver, {module}, is not installed: pip install "{package}"'


PASSWORD_QUERY = re.compile(r"(?i)([?&][^=&#]*(?:pass|pwd)[^=&#]*=)[^&#]*")  # ?password=, &sslpassword=


def _shown(url: str) -> str:
    """The URL with its password hidden, whatever its shape (a URL that does not parse may
    still hold one): what stands between user: and the last @, and the query's passwords."""
    credentials, at, rest = url.rpartition("@")
    if at:
        scheme = re.match(r"[A-Za-z][\w+.-]*:/+", credentials)  # postgresql://, or a mistyped postgresql:/
        start = scheme.end() if scheme else 0
        user, colon, _ = credentials[start:].partition(":")
        credentials = credentials[:start] + user + (":***" if colon else "")
    return credentials + at + PASSWORD_QUERY.sub(r"\1***", rest)


def _first_line(error: BaseException) -> str:
    """An error's first line, without the driver's name that SQLAlchemy puts before it."""
    text = str(error).strip()
    return re.sub(r"^\([\w.]+\) ", "", text.splitlines()[0]) if text else type(error).__name__


def _seed(storage, name: str, spec: Spec) -> int | None:
    """The sampler's seed: the spec's, moved on by the trials the study already holds, so that a
    sweep continued later does not draw its first trials again (a new study: the spec's own)."""
    if spec.seed is None:
        return None
    try:
        held = len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
    except KeyError:
        held = 0
    return (spec.seed + held) % (MAX_SEED + 1)


def open_study(storage, name: str, spec: Spec):
    """The study `name` in `storage`, created if new (TPE, median pruning): maximise the kept
    validation accuracy. A study made from another space is refused."""
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


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """While the sweep runs: Optuna's log at ERROR (its failed trials' tracebacks; our lines say
    what failed) and its experimental warnings (the heartbeat's) ignored; both as they were after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


@_optuna_quiet()
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
    spec = _data_once(read_spec(spec_path, overrides, trials), echo)
    if storage is None:
        artifacts.make_directory(out)  # the study's own file goes in it
    try:
        opened = open_storage(storage, out, heartbeat)
        study = open_study(opened, study_name, spec)
    except (*STORAGE_ERRORS, RuntimeError) as e:
        raise SweepError(
            f"cannot open the study {study_name!r} in {_shown(storage or str(out))}: {_first_line(e)}"
        ) from None
    artifacts.make_directory(out)
    lost: list[StorageLost] = []  # a trial's run that the storage failed under (Optuna drops the error)

    def objective(trial: optuna.Trial) -> float:
        if _counted(study.get_trials(deepcopy=False), ALIVE, below=trial.number) >= spec.trials:
            trial.set_user_attr("surplus", True)
            raise Surplus
        config = trial_config(spec, {p.key: p.suggest(trial) for p in spec.space})
        run_dir = out / f"trial-{trial.number:03d}"
        trial.set_user_attr("run", str(run_dir.resolve()))
        trial.set_user_attr("config", save_config(config))
        echo(f"trial {trial.number}: {_values(trial.params)} → {run_dir}")
        if run_dir.exists() and any(run_dir.iterdir()):
            raise SweepError(f"{run_dir} holds another study's trial: sweep this study into another --out")
        try:
            prune = _pruner(study, trial, echo, lost)
            metrics = training.train_run(config, run_dir, _indented(echo), progress, should_stop, prune=prune)
        except (DivergedError, ConfigError) as e:
            echo(f"trial {trial.number} failed: {e}")
            raise
        except (TrainingInterrupted, KeyboardInterrupt):  # by the user: not a failure of its config
            with contextlib.suppress(*STORAGE_ERRORS):
                trial.set_user_attr("stopped", True)
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
    except TrainingInterrupted:
        with contextlib.suppress(*STORAGE_ERRORS):
            _written(study, out, summary)  # the stopped trial in sweep.json before mlp sweep ends
        raise
    except Exception as e:  # the storage's failure, wherever Optuna met it, in one line
        failure = lost[0] if lost else _storage_failure(e)
        if failure is None:
            raise
        raise failure from None
    raise TrainingInterrupted(
        "the sweep stopped between trials; run the same command to go on with the study"
    )


def _data_once(spec: Spec, echo: Callable[[str], None]) -> Spec:
    """The spec whose trials read their data from where it is found now, once: when the
    download host cannot be reached and the copy of MNIST shipped with mlpcli stands in, the
    trials read that copy (the same files) without trying the network again, and it is said
    once, not in every trial. Missing data stops the sweep before anything is written."""
    if any(p.key in ("data.source", "data.name", "data.dir") for p in spec.space):
        return spec  # each trial finds its own
    source = locate(from_dict(spec.base).data)
    if not source.note:
        return spec
    echo(f"{source.note}: every trial reads it")
    return replace(spec, base=with_values(spec.base, [("data.source", "shipped"), ("data.dir", None)]))


def _pruner(
    study, trial, echo: Callable[[str], None], lost: list["StorageLost"]
) -> Callable[[EpochRecord], bool]:
    """What the trial's run asks after each epoch: report its validation accuracy to Optuna,
    and whether the median pruner stops it there (said in a line, with why). A storage that
    fails ends the run (StorageLost, also put in `lost`: Optuna, failing to record the trial's
    end, raises an error of its own that does not carry it)."""
    best = -math.inf

    def prune(record: EpochRecord) -> bool:
        nonlocal best
        best = max(best, record.val_accuracy)
        try:
            trial.report(record.val_accuracy, record.epoch)
            if not trial.should_prune():
                return False
            completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        except STORAGE_ERRORS as e:
            lost.append(StorageLost(_lost(e, trial.number)))
            raise lost[-1] from None
        median = statistics.median(
            t.intermediate_values[record.epoch] for t in completed if record.epoch in t.intermediate_values
        )
        echo(
            f"trial {trial.number} pruned after epoch {record.epoch}: its best validation accuracy,"
            f" {best:.4f}, is below the median of the completed trials' at that epoch, {median:.4f}"
        )
        return True

    return prune


def _storage_failure(error: BaseException) -> SweepError | None:
    """What to say of `error` when the study's storage failed behind it: Optuna, failing to
    record a trial's end in a storage that is gone, raises errors of its own on top of the
    first. None when no storage failed (and no SweepError was raised)."""
    chain, waiting = [], [error]
    while waiting:  # every cause and context, each once
        cause = waiting.pop(0)
        if cause is not None and not any(cause is seen for seen in chain):
            chain.append(cause)
            waiting += [cause.__cause__, cause.__context__]
    said = next((cause for cause in chain if isinstance(cause, SweepError)), None)
    lost = next((cause for cause in chain if isinstance(cause, STORAGE_ERRORS)), None)
    return said or (StorageLost(_lost(lost, None)) if lost is not None else None)


def _lost(error: BaseException, trial: int | None) -> str:
    """The storage failed (`error`), in `trial` when it is known."""
    if isinstance(error, StorageInternalError) and error.__cause__ is not None:
        error = error.__cause__  # Optuna's words say only that a commit failed; its cause says why
    during = f" in trial {trial}" if trial is not None else ""
    return (
        f"the study's storage failed{during}: {_first_line(error)}. Run the same command again once"
        " it is back: a trial it left running is failed then (its heartbeat stopped) and run again"
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
        raise SweepError(f"{trials} trials failed (each said why as it failed): see sweep.json in {out}")
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
    """The failed trials that were not run again (a killed worker's trial is), leaving aside
    the ones the user stopped (Ctrl-C): their configs did not fail."""
    retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
    return sum(
        t.state.name == "FAIL"
        and not t.user_attrs.get("surplus")
        and not t.user_attrs.get("stopped")
        and t.number not in retried
        for t in trials
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
            "state": "stopped" if t.user_attrs.get("stopped") else t.state.name.lower(),
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
        for state in ("complete", "pruned", "fail", "stopped", "running")
    }
    return {
        "study": study.study_name,
        "objective": OBJECTIVE,
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


@contextlib.contextmanager
def _pyplot_on_agg() -> Iterator[None]:
    """pyplot's backend Agg (no window, no display needed) while the block runs, as it was after."""
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    plt.switch_backend("agg")
    try:
        yield
    finally:
        plt.switch_backend(backend)


@_pyplot_on_agg()
def draw(study, out: Path) -> dict:
    """history.png (each trial's objective, the best so far), importances.png (each parameter's
    share of the objective's variance, by Optuna's default evaluator) and slices.png (the
    objective against each parameter), from Optuna's matplotlib plots; a picture its trials
    cannot make yet is left out. Returns the figures drawn, by file name. Optuna draws through
    pyplot: its backend is Agg (no window, no display needed) while they are drawn, as it was
    after."""
    import matplotlib
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    kinds = {
        "history.png": plots.plot_optimization_history,
        "importances.png": plots.plot_param_importances,
        "slices.png": plots.plot_slice,
    }
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    drawn = {}
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
            drawn[name] = figure
    return drawn


WORDS = {"Objective Value": OBJECTIVE, "Best Value": "best so far"}  # Optuna's, in this sweep's terms


def _readable(figure) -> None:
    """The objective called what it is; trials counted in whole numbers; choices without the
    quotes Optuna draws them with; room for every label: 3.6 inches a panel (a slice plot has
    one per parameter), the log axes' minor ticks unlabelled (they overlap), and the layout
    fitted to the labels (unless a colour bar sits beside the panels, which fitting would lay
    over them)."""
    from matplotlib.category import StrCategoryFormatter
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    panels = [axes for axes in figure.axes if axes.get_label() != "<colorbar>"]
    figure.set_size_inches(max(7.2, 3.6 * len(panels) + 1.2), 4.8)
    for axes in panels:
        legend = axes.get_legend()
        for text in [axes.xaxis.label, axes.yaxis.label, *(legend.get_texts() if legend else [])]:
            text.set_text(WORDS.get(text.get_text(), text.get_text()))
        if axes.get_xlabel() == "Trial":
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axes.get_xscale() == "log":
            axes.xaxis.set_minor_formatter(NullFormatter())
        choices = axes.xaxis.get_major_formatter()
        if isinstance(choices, StrCategoryFormatter):
            axes.xaxis.set_major_formatter(
                FuncFormatter(lambda x, at, named=choices: _unquoted(named(x, at)))
            )
    if len(panels) == len(figure.axes):
        figure.tight_layout()


def _unquoted(label: str) -> str:
    return label[1:-1] if len(label) > 1 and label[0] == label[-1] == "'" else label


def format_summary(summary: dict, width: int | None = None) -> str:
    """The trials as a table, best first (in blocks of columns when wider than `width`), and a
    line on the best."""
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
    lines = text_table(header, cells, width)
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
