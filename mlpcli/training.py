"""What `mlp train` does: from a resolved config (or a run's checkpoint, resumed) to the files
of a run directory, said through `echo` as it goes (the epoch lines' table is here). The CLI
parses options and calls these; these call the library."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from mlpcli import artifacts, models
from mlpcli.config import (
    Config,
    DataConfig,
    flat_items,
    from_dict,
    save_config,
    with_overrides,
)
from mlpcli.data import (
    N_CLASSES,
    Normalisation,
    Splits,
    load_splits,
    recognise,
)
from mlpcli.errors import (
    ConfigError,
    DataError,
    DivergedError,
    RunAborted,
    RunDirError,
    TrainingInterrupted,
)
from mlpcli.evaluate import evaluate
from mlpcli.output import Echo
from mlpcli.train import CHECKPOINT_KEYS, HISTORY_COLUMNS, EpochRecord, Stop, Trainer


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.data.name}-{datetime.now():%Y%m%d-%H%M%S}"


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
        models.check_config(config, splits.train.image_shape, N_CLASSES, len(splits.train))
        norm = Normalisation.of(splits.train.images)
        init_rng, fit_rng = np.random.default_rng(config.train.seed).spawn(2)
        model = models.build_model(config.model, splits.train.image_shape, N_CLASSES, init_rng)
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
        arrays, meta = artifacts.load_checkpoint(out / artifacts.CHECKPOINT, CHECKPOINT_KEYS)
        before, config = resumed_config(meta.get("config"), overrides, out / artifacts.CHECKPOINT)
        splits = load_splits(config.data, config.train.seed)
        models.check_config(config, splits.train.image_shape, N_CLASSES, len(splits.train))
        model = models.build_model(config.model, splits.train.image_shape, N_CLASSES)
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
        if trainer.finished and artifacts.read_metrics(out).get("status") in ("completed", "stopped early"):
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
    run = _Training(out, config, splits, trainer, echo, prune)
    run.introduce()
    try:
        finished = trainer.fit(run.on_epoch, progress, should_stop, run.checkpoint)
    except DivergedError as e:
        run.save_unfinished("diverged", error=str(e))
        raise
    except RunAborted:  # raised by on_epoch's caller (a sweep whose storage failed)
        run.checkpoint()
        run.save_unfinished("interrupted")
        raise
    if not finished:
        run.checkpoint()
        run.save_unfinished("interrupted")
        raise run.interrupted()
    return run.finish(progress)


@dataclass
class _Training:
    """The run directory `out` while `trainer` trains it: what it says and writes, and when."""

    out: Path
    config: Config
    splits: Splits
    trainer: Trainer
    echo: Echo
    prune: Callable[[EpochRecord], bool]

    def introduce(self) -> None:
        if self.splits.source.note:
            self.echo(self.splits.source.note)
        self.echo(str(self.trainer.model))
        train, held = len(self.splits.train), len(self.splits.validation)
        if held:
            self.echo(f"{train} training and {held} validation examples")
        else:
            self.echo(f"{train} training examples, none held out for validation (data.validation = 0)")
        if not self.trainer.finished:
            self.echo(epoch_heading(bool(self.config.train.clip)))

    def checkpoint(self) -> None:
        arrays, meta = self.trainer.state(self.config.to_dict())
        artifacts.write_text(
            self.out / artifacts.CONFIG, save_config(self.config)
        )  # the files change together
        artifacts.save_checkpoint(self.out / artifacts.CHECKPOINT, arrays, meta)

    def on_epoch(self, record: EpochRecord) -> bool:
        """The epoch's line and history.csv; whether to prune the run here."""
        history = self.trainer.history
        self.echo(format_epoch(record, history.kept_epoch == record.epoch, bool(self.config.train.clip)))
        artifacts.write_history(self.out / artifacts.HISTORY, HISTORY_COLUMNS, history.rows())
        if record.epoch == 1:  # from now on the directory is this run's: an overwritten run's results go
            for name in (*RESULTS, *artifacts.EVALUATIONS):
                (self.out / name).unlink(missing_ok=True)
        return self.prune(record)

    def save_unfinished(self, status: str, **more: str) -> None:
        """A run that stopped before its end: what it has so far."""
        history = self.trainer.history
        so_far = {"epochs": len(history.epochs), "kept_epoch": history.kept_epoch}
        self.save({"status": status, **more} | so_far | {"data": self.splits.source.to_dict()})

    def interrupted(self) -> TrainingInterrupted:
        p = self.trainer.position
        saved = (
            "saved a checkpoint and the weights kept so far"
            if self.trainer.history.kept_epoch
            else "no epoch has finished, so nothing has been learnt yet and no weights.npz was written;"
            " saved a checkpoint"
        )
        return TrainingInterrupted(
            f"stopped in epoch {p.epoch + 1}, after {p.batch} of its batches; {saved}.\n"
            f"Resume with: mlp train --resume {self.out}"
        )

    def finish(self, progress: bool | None) -> dict:
        """Test the kept weights, save everything, report; metrics.json's dict."""
        trainer, history, kept = self.trainer, self.trainer.history, self.trainer.history.kept
        validated = kept is not None and trainer.validated
        test = self.splits.test
        report = evaluate(trainer.model, trainer.norm.apply(test.images), test.labels, progress)
        metrics = {
            "status": "pruned"
            if history.pruned
            else "stopped early"
            if history.stopped_early
            else "completed",
            "test_accuracy": report.accuracy,
            "test_loss": report.loss,
            "keep": self.config.train.keep,
            "kept_epoch": history.kept_epoch,
            "epochs": len(history.epochs),
            "train_seconds": round(train_seconds(history.epochs), 3),
            "kept_val_accuracy": kept.val_accuracy if validated else None,
            "kept_val_loss": kept.val_loss if validated else None,
            "data": self.splits.source.to_dict(),
        }
        self.save(metrics)
        accuracy, loss = report.accuracy, report.loss
        self.echo(training_time(history.epochs))
        self.echo(f"test accuracy {accuracy:.4f}, loss {loss:.4f} (weights of epoch {history.kept_epoch})")
        self.echo(f"saved {self.out}/")
        return metrics

    def save(self, metrics: dict) -> None:
        """config.yaml, weights.npz (the weights kept so far; none before an epoch has
        finished), history.csv, metrics.json and curves.png; an earlier evaluation's files go,
        as they spoke of the weights replaced."""
        out, config, trainer, history = self.out, self.config, self.trainer, self.trainer.history
        artifacts.write_text(out / artifacts.CONFIG, save_config(config))
        old = list(artifacts.EVALUATIONS)
        if history.kept_epoch:
            kept = trainer.model.copy(trainer.kept_params)
            saved = artifacts.Saved(kept, trainer.norm, config.data.name, history.kept_epoch)
            artifacts.save_weights(out / artifacts.WEIGHTS, saved)
        else:
            old.append(artifacts.WEIGHTS)  # no epoch finished: no weights that could pass for trained ones
        for name in old:
            (out / name).unlink(missing_ok=True)
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


def _figure(value: float) -> str:
    """A validation loss or accuracy in an epoch line; "-" for none (nan: no validation split)."""
    return "-" if math.isnan(value) else f"{value:.4f}"


EPOCH_TABLE = (  # the epoch lines' columns: heading, width, the record's value as text
    ("epoch", 5, lambda r: str(r.epoch)),
    ("train loss", 10, lambda r: f"{r.train_loss:.4f}"),
    ("train acc", 9, lambda r: f"{r.train_accuracy:.4f}"),
    ("val loss", 8, lambda r: _figure(r.val_loss)),
    ("val acc", 7, lambda r: _figure(r.val_accuracy)),
    ("lr", 8, lambda r: f"{r.lr:.3g}"),
    ("time", 6, lambda r: f"{r.seconds:.1f}s"),
    ("clipped", 7, lambda r: str(r.clipped)),  # train.clip on only
)


def epoch_heading(clipping: bool = False) -> str:
    """The heading of the epoch lines (with `clipping`, of the batches train.clip clipped)."""
    return "  ".join(name.rjust(width) for name, width, _ in EPOCH_TABLE[: None if clipping else -1])


def train_seconds(records: list[EpochRecord]) -> float:
    """How long the epochs of `records` took together (metrics.json's train_seconds)."""
    return sum(record.seconds for record in records)


def training_time(records: list[EpochRecord]) -> str:
    """ "trained 60 epochs in 158s": how many epochs `records` holds and how long they took
    together."""
    return f"trained {len(records)} epoch{'s' * (len(records) != 1)} in {train_seconds(records):.0f}s"


def format_epoch(r: EpochRecord, kept: bool, clipping: bool = False) -> str:
    """One epoch's line under `epoch_heading`, short enough for an 80-column terminal; `*`
    marks an epoch whose weights are now the ones kept."""
    cells = [value(r).rjust(width) for _, width, value in EPOCH_TABLE[: None if clipping else -1]]
    return "  ".join(cells) + ("  *" if kept else "")
