"""What `mlp train`, `mlp eval`, `mlp plot` and `mlp gradcheck` do, from a resolved config to
files in a run directory. The CLI parses options and calls these; these call the library and
report through `echo`."""

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from mlpcli import artifacts, gradcheck, models
from mlpcli.config import (
    Config,
    DataConfig,
    flat_items,
    from_dict,
    read_yaml,
    save_config,
    with_overrides,
)
from mlpcli.data import (
    CLASS_NAMES,
    N_CLASSES,
    Dataset,
    Normalisation,
    Source,
    Splits,
    load_splits,
    locate,
    recognise,
)
from mlpcli.errors import (
    ConfigError,
    DataError,
    DivergedError,
    RunAborted,
    RunDirError,
    TrainingInterrupted,
    WeightsError,
)
from mlpcli.evaluate import Report, evaluate, format_report
from mlpcli.gradcheck import GradcheckSettings, Row
from mlpcli.nn.base import Network
from mlpcli.nn.rnn import RNN
from mlpcli.train import HISTORY_COLUMNS, EpochRecord, Stop, Trainer

Echo = Callable[[str], None]


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.data.name}-{datetime.now():%Y%m%d-%H%M%S}"


def build_model(
    config: Config, image_shape: tuple[int, int], rng: np.random.Generator | None = None
) -> Network:
    """The float32 network `config` trains on images of `image_shape` (models.build_model)."""
    return models.build_model(config.model, image_shape, N_CLASSES, rng)


def train_run(
    config: Config,
    out: Path,
    echo: Echo,
    progress: bool | None = None,
    should_stop: Stop = lambda: False,
    overwrite: bool = False,
    prune: Callable[[EpochRecord], bool] = lambda record: False,
) -> dict:
    """Train as `config` says and write the run directory `out`; returns metrics.json's dict.
    `prune(record)` is asked after each epoch: True ends the run there, status "pruned"."""
    with artifacts.run_directory(out, "overwrite" if overwrite else "new") as out:
        splits = load_splits(config.data, config.train.seed)
        _check_dataset(splits, config.data)
        norm = Normalisation.of(splits.train.images)
        init_rng, fit_rng = np.random.default_rng(config.train.seed).spawn(2)
        model = build_model(config, splits.train.image_shape, init_rng)
        trainer = Trainer(
            model, splits.train, splits.validation, norm, config.train, fit_rng, config.data.augment
        )
        return _train(out, config, splits, trainer, echo, progress, should_stop, prune)


def resume_run(
    out: Path,
    overrides: Sequence[str],
    echo: Echo,
    progress: bool | None = None,
    should_stop: Stop = lambda: False,
) -> dict:
    """Continue the run in `out` from its checkpoint, with its saved config and `overrides`."""
    with artifacts.run_directory(out, "resume") as out:
        arrays, meta = artifacts.load_checkpoint(out / artifacts.CHECKPOINT)
        before, config = resumed_config(meta.get("config"), overrides, out / artifacts.CHECKPOINT)
        splits = load_splits(config.data, config.train.seed)
        model = build_model(config, splits.train.image_shape)
        try:
            norm = Normalisation(**meta["norm"])
            rng = np.random.default_rng()  # its state comes from the checkpoint
            trainer = Trainer(
                model, splits.train, splits.validation, norm, config.train, rng, config.data.augment
            )
            trainer.restore(arrays, meta)
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirError(
                f"{out / artifacts.CHECKPOINT}: does not fit this run, or was written by another version"
                f" of mlp ({type(e).__name__}: {e})"
            ) from None
        p, history = trainer.position, trainer.history
        if config.train.epochs < p.epoch:
            raise ConfigError(
                f"train.epochs = {config.train.epochs}, but {out} has trained {p.epoch} epochs already:"
                f" to train it longer, set train.epochs above {p.epoch}"
            )
        if trainer.finished and _metrics(out).get("status") in ("completed", "stopped early"):
            how = "stopped early" if history.stopped_early else "finished"
            echo(
                f"{out} has {how} after {p.epoch} of its {config.train.epochs} epochs (the weights of"
                f" epoch {history.kept_epoch} are kept); nothing to resume. To train it longer:\n"
                f"  mlp train --resume {out} --set train.epochs=N    (N > {p.epoch})"
                + (" --set train.patience=0" if history.stopped_early else "")
            )
            return {}
        if trainer.finished:
            echo(f"{out} finished training but its results were never written: testing and saving them")
        else:
            echo(f"resuming {out} in epoch {p.epoch + 1}, after {p.batch} of its batches")
            note = trainer.reschedule(before.train)
            if note:
                echo(note)
        return _train(out, config, splits, trainer, echo, progress, should_stop)


RESULTS = (artifacts.WEIGHTS, artifacts.METRICS, artifacts.CURVES)  # what a run writes when it ends


def _metrics(folder: Path) -> dict:
    """The run's metrics.json, or {} when it is missing or unreadable."""
    try:
        metrics = artifacts.read_json(folder / artifacts.METRICS)
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


KNOWN_DATA_ADVICE = {
    "mnist": "train it with the default config (no --config), or --set data.name=mnist",
    "fashion_mnist": "train it with --config configs/fashion_mnist.yaml, or --set data.name=fashion_mnist",
}


def _check_dataset(splits: Splits, data: DataConfig) -> None:
    """Stop when the files are a well-known dataset other than the one the config names."""
    found = recognise(splits.test)
    if found is not None and found != data.name:
        raise DataError(
            f"the data in {splits.source.where} is {found} (recognised by its test set),"
            f" but data.name is {data.name}: {KNOWN_DATA_ADVICE[found]}"
        )


FIXED_ON_RESUME = (
    "data.",
    "model.",
    "train.seed",
    "train.batch_size",
    "train.optimizer",
    "train.momentum",  # SGD's velocity was summed with it
    "train.beta1",  # Adam's moments were averaged with them, and are kept scaled by 1/(1 - β)
    "train.beta2",
    "train.keep",  # the kept weights were chosen by it
)


def resumed_config(
    saved_raw: dict | None, overrides: Sequence[str], checkpoint: Path
) -> tuple[Config, Config]:
    """The config the checkpoint was written with, and that config with `overrides`, which may
    not change its model or data, nor what the checkpoint's position and optimizer state
    depend on."""
    if not isinstance(saved_raw, dict):
        raise RunDirError(f"{checkpoint}: holds no config to resume with")
    saved, config = from_dict(saved_raw), with_overrides(saved_raw, overrides)
    before, after = flat_items(saved), flat_items(config)
    for name, value in before.items():
        if value != after[name] and name.startswith(FIXED_ON_RESUME):
            raise ConfigError(
                f"--resume keeps the run's model and data and what its saved state was made with:"
                f" {name} cannot change (the run has {value!r}, --set asks {after[name]!r})"
            )
    return saved, config


def _train(
    out: Path,
    config: Config,
    splits: Splits,
    trainer: Trainer,
    echo: Echo,
    progress: bool | None,
    should_stop: Stop,
    prune: Callable[[EpochRecord], bool] = lambda record: False,
) -> dict:
    """Fit, writing a checkpoint as configured; then test, save, report. On a stop request:
    a checkpoint, the weights kept so far, and TrainingInterrupted."""
    model, norm = trainer.model, trainer.norm
    if splits.source.note:
        echo(splits.source.note)
    echo(str(model))
    echo(f"{len(splits.train)} training and {len(splits.validation)} validation examples")

    def checkpoint() -> None:
        arrays, meta = trainer.state()
        meta |= {"norm": asdict(norm), "config": config.to_dict()}
        artifacts.write_text(out / artifacts.CONFIG, save_config(config))  # the run's files change together
        artifacts.save_checkpoint(out / artifacts.CHECKPOINT, arrays, meta)

    def on_epoch(record: EpochRecord) -> bool:
        echo(format_epoch(record, trainer.history.kept_epoch == record.epoch, bool(config.train.clip)))
        artifacts.write_history(out / artifacts.HISTORY, HISTORY_COLUMNS, trainer.history.rows())
        if record.epoch == 1:  # from now on the directory is this run's: an overwritten run's results go
            for name in (*RESULTS, *artifacts.EVALUATIONS):
                (out / name).unlink(missing_ok=True)
        return prune(record)

    data = {"data": splits.source.to_dict()}

    def so_far() -> dict:  # what metrics.json says of a run that did not finish
        return {"epochs": len(trainer.history.epochs), "kept_epoch": trainer.history.kept_epoch} | data

    if not trainer.finished:
        echo(epoch_heading(bool(config.train.clip)))
    try:
        finished = trainer.fit(on_epoch, progress, should_stop, checkpoint)
    except DivergedError as e:
        _save(out, config, trainer, {"status": "diverged", "error": str(e)} | so_far())
        raise
    except RunAborted:  # raised by on_epoch's caller (a sweep whose storage failed)
        checkpoint()
        _save(out, config, trainer, {"status": "interrupted"} | so_far())
        raise
    if not finished:
        checkpoint()
        _save(out, config, trainer, {"status": "interrupted"} | so_far())
        p = trainer.position
        saved = (
            "saved a checkpoint and the weights kept so far"
            if trainer.history.kept_epoch
            else "no epoch has finished, so nothing has been learnt yet and no weights.npz was written;"
            " saved a checkpoint"
        )
        raise TrainingInterrupted(
            f"stopped in epoch {p.epoch + 1}, after {p.batch} of its batches; {saved}.\n"
            f"Resume with: mlp train --resume {out}"
        )
    history, kept = trainer.history, trainer.history.kept
    report = evaluate(model, norm.apply(splits.test.images), splits.test.labels, progress)
    metrics = {
        "status": "pruned" if history.pruned else "stopped early" if history.stopped_early else "completed",
        "test_accuracy": report.accuracy,
        "test_loss": report.loss,
        "keep": config.train.keep,
        "kept_epoch": history.kept_epoch,
        "epochs": len(history.epochs),
        "train_seconds": round(sum(record.seconds for record in history.epochs), 3),
        "kept_val_accuracy": kept.val_accuracy if kept else None,
        "kept_val_loss": kept.val_loss if kept else None,
    } | data
    _save(out, config, trainer, metrics)
    echo(
        f"test accuracy {report.accuracy:.4f}, loss {report.loss:.4f} (weights of epoch {history.kept_epoch})"
    )
    echo(f"saved {out}/")
    return metrics


def _save(out: Path, config: Config, trainer: Trainer, metrics: dict) -> None:
    """config.yaml, weights.npz (the weights kept so far; none before an epoch has finished),
    history.csv, metrics.json and curves.png; an earlier evaluation's files go, as they spoke
    of the weights replaced."""
    artifacts.write_text(out / artifacts.CONFIG, save_config(config))
    old = list(artifacts.EVALUATIONS)
    if trainer.history.kept_epoch:
        kept = build_model(config, trainer.train.image_shape)
        np.copyto(kept.params, trainer.kept_params)
        saved = artifacts.Saved(kept, trainer.norm, config.data.name, trainer.history.kept_epoch)
        artifacts.save_weights(out / artifacts.WEIGHTS, saved)
    else:
        old.append(artifacts.WEIGHTS)  # no epoch finished: no weights that could pass for trained ones
    for name in old:
        (out / name).unlink(missing_ok=True)
    history = trainer.history
    artifacts.write_history(out / artifacts.HISTORY, HISTORY_COLUMNS, history.rows())
    artifacts.write_json(out / artifacts.METRICS, metrics)
    from mlpcli import plots  # matplotlib: only once there is something to draw

    title = curves_title(out.name, config.data.name, metrics)
    artifacts.save_figure(out / artifacts.CURVES, plots.curves(history.rows(), history.kept_epoch, title))


def curves_title(name: str, dataset: str, metrics: dict) -> str:
    """ "mnist-20261203-101500, completed, test accuracy 0.9921": the run, its dataset when its
    name does not say it already, how it ended and, if it was tested, its test accuracy."""
    said = name.partition("-")[0] == dataset  # runs/mnist, runs/mnist-20261203-101500
    title = f"{name}{'' if said else ': ' + dataset}, {metrics['status']}"
    return title + (f", test accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else "")


EPOCH_TABLE = (  # the epoch lines' columns: heading, width, the record's value as text
    ("epoch", 5, lambda r: str(r.epoch)),
    ("train loss", 10, lambda r: f"{r.train_loss:.4f}"),
    ("train acc", 9, lambda r: f"{r.train_accuracy:.4f}"),
    ("val loss", 8, lambda r: f"{r.val_loss:.4f}"),
    ("val acc", 7, lambda r: f"{r.val_accuracy:.4f}"),
    ("lr", 8, lambda r: f"{r.lr:.3g}"),
    ("time", 6, lambda r: f"{r.seconds:.1f}s"),
    ("clipped", 7, lambda r: str(r.clipped)),  # train.clip on only
)


def epoch_heading(clipping: bool = False) -> str:
    """The heading of the epoch lines (with `clipping`, of the batches train.clip clipped)."""
    return "  ".join(name.rjust(width) for name, width, _ in EPOCH_TABLE[: None if clipping else -1])


def format_epoch(r: EpochRecord, kept: bool, clipping: bool = False) -> str:
    """One epoch's line under `epoch_heading`, short enough for an 80-column terminal; `*`
    marks an epoch whose weights are now the ones kept."""
    cells = [value(r).rjust(width) for _, width, value in EPOCH_TABLE[: None if clipping else -1]]
    return "  ".join(cells) + ("  *" if kept else "")


def eval_run(
    target: Path, data_overrides: Sequence[str], echo: Echo, split: str = "test", progress: bool | None = None
) -> Report:
    """Evaluate saved weights on the test split (or the run's own validation or training
    split); print the report; write eval.json, confusion.png and mistakes.png beside the weights."""
    weights = artifacts.weights_file(target)
    saved = artifacts.load_weights(weights)
    model, norm = saved.model, saved.norm
    run_config = weights.parent / artifacts.CONFIG
    config = _run_config(saved.dataset, run_config, data_overrides)
    data = config.data
    dataset, test, source = _evaluated_split(config, split, run_config.exists(), weights)
    if source.note:
        echo(source.note)
    _check_fits(saved, dataset, weights, f"the {data.name} {split} images")
    data_report = _data_report(saved, dataset, test, source, weights, data_overrides, run_config.exists())
    report = evaluate(model, norm.apply(dataset.images), dataset.labels, progress)
    names = CLASS_NAMES[data.name]
    which = _weights_of(saved, weights.parent)
    echo(f"{model}{which} on the {data.name} {split} split ({len(dataset)} examples)\n")
    for warning in data_report["warnings"]:
        echo(f"warning: {warning}\n")
    echo(format_report(report, names))
    result = {"weights": str(weights), "dataset": data.name, "split": split, "data": data_report}
    result |= report.to_dict(names)
    report_file, confusion_file, mistakes_file = (
        weights.parent / name for name in artifacts.evaluation_files(split)
    )
    artifacts.write_json(report_file, result)
    _draw_evaluation(report, dataset, names, f"{data.name} {split}", confusion_file, mistakes_file)
    echo(f"\nwrote {report_file}, {confusion_file.name}, {mistakes_file.name}")
    return report


def _weights_of(saved: artifacts.Saved, folder: Path) -> str:
    """ ", the weights of epoch 12 of a run interrupted after 14" — what the weights are, as far
    as the weights file and the run's metrics.json say ("" when neither does)."""
    said, metrics = f", the weights of epoch {saved.epoch}" if saved.epoch else "", _metrics(folder)
    if said and metrics.get("status") in ("interrupted", "diverged"):
        said += f" of a run {metrics['status']} after {metrics.get('epochs', '?')} epochs"
    return said


def _evaluated_split(
    config: Config, split: str, has_config: bool, weights: Path
) -> tuple[Dataset, Dataset, Source]:
    """The split to evaluate, the test split (by which the data is recognised), and where they
    came from. The validation and training splits are the run's own: its seed drew them."""
    if split == "test":
        source = locate(config.data, ("test",))
        test = source.read("test")
        return test, test, source
    if not has_config:
        raise WeightsError(
            f"{weights}: a weights file alone has no {split} split (its run's config and seed draw it);"
            " evaluate its run directory"
        )
    splits = load_splits(config.data, config.train.seed)
    return getattr(splits, split), splits.test, splits.source


def _check_fits(saved: artifacts.Saved, dataset: Dataset, weights: Path, what: str) -> None:
    """The model's inputs and outputs fit the data."""
    model = saved.model
    if model.sizes[-1] != N_CLASSES:
        raise WeightsError(
            f"{weights}: the model has {model.sizes[-1]} outputs, the data {N_CLASSES} classes"
        )
    if dataset.images.shape[1] != model.sizes[0]:
        raise WeightsError(
            f"{weights}: the model takes {model.sizes[0]} inputs"
            f" but {what} have {dataset.images.shape[1]} pixels"
        )
    rows = dataset.image_shape[0]
    if isinstance(model, RNN) and model.steps != rows:
        raise WeightsError(f"{weights}: the RNN reads {model.steps} rows, but {what} have {rows}")


NORMALISATION_TOLERANCE = 0.25  # of the training std: how far the data's mean and std may stray


def _data_report(
    saved: artifacts.Saved,
    dataset: Dataset,
    test: Dataset,
    source: Source,
    weights: Path,
    overrides: Sequence[str],
    has_config: bool,
) -> dict:
    """What the evaluated data is, for eval.json: a well-known dataset (recognised by its test
    split `test`) other than the one the weights learnt, or than data.name, stops the
    evaluation; unknown data whose pixels look unlike the training images' (the normalisation
    saved with the weights) is warned about, as is data other than the run's config names."""
    found = recognise(test)
    if found is not None and found != saved.dataset:
        raise DataError(
            f"the weights {weights} learnt {saved.dataset}, but the data in {source.where}"
            f" is {found} (recognised by its test set): point data.dir at {saved.dataset}'s files"
        )
    if found is not None and found != source.name:
        raise DataError(
            f"data.name is {source.name}, but the data in {source.where} is {found}: drop --set data.name"
        )
    warnings = []
    if found is None:
        seen, norm = Normalisation.of(dataset.images), saved.norm
        if max(abs(seen.mean - norm.mean), abs(seen.std - norm.std)) > NORMALISATION_TOLERANCE * norm.std:
            warnings.append(
                f"these images are unlike the ones the weights learnt from: pixel mean {seen.mean:.1f}"
                f" and std {seen.std:.1f}, where training saw {norm.mean:.1f} and {norm.std:.1f}"
            )
    if overrides and has_config:
        warnings.append(f"evaluated on other data than the run's own config names ({', '.join(overrides)})")
    return source.to_dict() | {"recognised": found, "warnings": warnings}


SHOWN_MISTAKES = 24  # the most confident mistakes drawn in mistakes.png


def _draw_evaluation(
    report: Report, dataset: Dataset, names: list[str], what: str, confusion_file: Path, mistakes_file: Path
) -> None:
    from mlpcli import plots

    title = f"{what}: accuracy {report.accuracy:.4f}"
    artifacts.save_figure(confusion_file, plots.confusion(report.confusion, names, title))
    shown = report.mistakes[:SHOWN_MISTAKES]
    images = dataset.images[shown].reshape(-1, *dataset.image_shape)
    mistakes_title = f"{what}: the {len(shown)} most confident of {len(report.mistakes)} mistakes"
    figure = plots.mistakes(
        images,
        shown,
        report.labels[shown],
        report.predicted[shown],
        report.confidence[shown],
        names,
        mistakes_title,
    )
    artifacts.save_figure(mistakes_file, figure)


def _run_config(dataset: str, saved_config: Path, overrides: Sequence[str]) -> Config:
    """The run's config.yaml (when the weights sit in a run directory; else the defaults) with
    the weights' dataset as its data.name unless the file names one, then `overrides`. A run
    that read the copy of MNIST shipped with mlpcli because tfds could not be reached reads
    it again (the same files), without trying the network first."""
    raw = read_yaml(saved_config) if saved_config.exists() else {}
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{saved_config}: its data section must be a mapping, not {type(data).__name__}")
    data = {"name": dataset, **data}
    read_from = _metrics(saved_config.parent).get("data")
    if (
        data.get("source", "tfds") == "tfds"
        and isinstance(read_from, dict)
        and read_from.get("source") == "shipped"
    ):
        data |= {"source": "shipped", "dir": None}
    return with_overrides(raw | {"data": data}, overrides)


def plot_runs(paths: list[Path], out: Path, echo: Echo) -> None:
    """The learning curves of the runs at `paths` (a folder of runs: the runs in it) on one
    figure, written to `out` (PNG, SVG, PDF or JPEG by its suffix). A run with no epoch to
    draw is left out, with a word; none to draw at all is an error."""
    from mlpcli import plots, runs

    found = [run_ for path in paths for run_ in (runs.find_runs(path) if path.is_dir() else [])]
    missing = [path for path in paths if not path.is_dir()]
    if missing:
        raise RunDirError(f"{missing[0]}: no such run directory")
    drawn = [run_ for run_ in found if run_.history]
    for run_ in found:
        if not run_.history:
            echo(f"left out {run_.path}: nothing to plot ({'; '.join(run_.problems) or 'no epoch finished'})")
    if not drawn:
        raise RunDirError(f"nothing to plot: no epoch finished in {', '.join(map(str, paths))}")
    curves = list(zip(runs.labels(drawn), (run_.history for run_ in drawn)))
    title = f"{len(drawn)} run{'s' if len(drawn) != 1 else ''}"
    artifacts.save_figure(out, plots.compare(curves, title))


def gradcheck_step_hint(
    rows: list[Row],
    config: Config,
    settings: GradcheckSettings,
    model: str,
    every_combination: bool,
    jacobians: bool,
) -> str:
    """When checks failed at a step ε far (10× or more) from the default, whether they pass at
    the default: then the step is at fault, not the backprop. Empty when there is nothing to say."""
    default = GradcheckSettings().eps
    if all(r.passed for r in rows) or max(settings.eps / default, default / settings.eps) < 10:
        return ""
    at_default = replace(settings, eps=default)
    rows_at_default, _ = gradcheck_rows(config, at_default, model, every_combination, jacobians)
    return gradcheck.step_size_hint(rows, rows_at_default, settings.eps)


def gradcheck_rows(
    config: Config, settings: GradcheckSettings, model: str, every_combination: bool, jacobians: bool
) -> tuple[list[Row], str]:
    """The checks `mlp gradcheck` selects: without --model rnn, --all or --jacobians, the model
    of the config. Returns the rows and the worked example's text (with --jacobians)."""
    rows, example = [], ""
    if model == "rnn":
        rows += gradcheck.check_rnn(settings)
    if every_combination:
        rows += gradcheck.check_all(settings)
    if jacobians:
        jacobian_rows, example = gradcheck.check_jacobians(settings)
        rows += jacobian_rows
    if not rows:
        rows = gradcheck.check_config(config, settings)
    return rows, example
