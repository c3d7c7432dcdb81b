"""The training loop: shuffled (and augmented) mini-batches, validation each epoch, the weights
of the epoch the configured rule picks (`train.keep`), early stopping by the same rule,
and a state that can stop after any batch and resume exactly. No file I/O: the caller saves
what the Trainer holds."""

import json
import math
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np

from mlpcli.augment import Augmenter, is_off
from mlpcli.config import AugmentConfig, TrainConfig
from mlpcli.data import Dataset, Normalisation, one_hot
from mlpcli.errors import ConfigError, DivergedError
from mlpcli.evaluate import loss_and_accuracy
from mlpcli.nn.base import Network
from mlpcli.optim import UNCHANGED, Schedule, learning_rate, make_optimizer, rescheduled
from mlpcli.parallel import available
from mlpcli.progress import bar


@dataclass
class EpochRecord:
    """One epoch. Train loss and accuracy are running means over the epoch's batches
    (with dropout on); validation figures are of the model at the end of the epoch.
    Losses are the data loss alone, without the weight-decay term."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    clipped: int = 0  # batches whose gradient was clipped (train.clip); runs before it lack it


# what a checkpoint's mapping must hold (Trainer.state; "schedule" is missing from the first ones)
CHECKPOINT_KEYS = ("position", "history", "rng", "norm", "config")
HISTORY_COLUMNS = [spec.name for spec in fields(EpochRecord)]
REQUIRED_COLUMNS = [spec.name for spec in fields(EpochRecord) if spec.default is MISSING]  # in every run's


@dataclass
class History:
    """The epochs so far, and which one's weights the run keeps under the rule `train.keep`."""

    epochs: list[EpochRecord] = field(default_factory=list)
    kept_epoch: int = 0  # 1-based epoch whose weights are kept; 0 = the initial weights
    # the initial weights' loss, with dropout as in training, on the split Trainer.judged names
    start_loss: float = math.nan
    stopped_early: bool = False
    pruned: bool = False  # stopped after an epoch by the caller's word (a sweep's pruner)

    @property
    def kept(self) -> EpochRecord | None:
        """The record of the kept epoch (None: the initial weights are kept)."""
        return self.epochs[self.kept_epoch - 1] if self.kept_epoch else None

    def add(self, record: EpochRecord, keep: str) -> bool:
        """Append the next epoch; True when its weights are now the ones to keep."""
        self.epochs.append(record)
        if self.kept is None or _better(record, self.kept, keep):
            self.kept_epoch = record.epoch
            return True
        return False

    def patience_ran_out(self, patience: int) -> bool:
        """`patience` epochs have passed without a better one (0: never)."""
        return bool(patience) and len(self.epochs) - self.kept_epoch >= patience

    def rows(self) -> list[dict]:
        return [asdict(record) for record in self.epochs]


def _better(record: EpochRecord, kept: EpochRecord, keep: str) -> bool:
    """Whether `record` beats the kept epoch under the rule `keep`: the higher validation
    accuracy (a lower validation loss breaks ties), the lower validation loss, or later."""
    if keep == "last":
        return True
    if keep == "best_val_loss":
        return record.val_loss < kept.val_loss
    return (record.val_accuracy, -record.val_loss) > (kept.val_accuracy, -kept.val_loss)


@dataclass
class Position:
    """Where training stands: enough, with the weights, the optimizer's state and the RNGs,
    to continue a stopped run exactly as if it had never stopped."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the epoch under way
    order: np.ndarray | None = None  # the epoch's shuffled order, while one is under way
    loss_sum: float = 0.0  # the epoch's running sums: Σ loss·batch size, correct, seen
    correct: int = 0
    seen: int = 0
    clipped: int = 0  # batches whose gradient was clipped
    seconds: float = 0.0  # time spent in the epoch under way


Stop = Callable[[], bool]
BLOWN_UP = 10  # a loss this many times the initial weights' means training blew up
WORSE = 1.5  # a training loss this many times the initial weights' is worse than at the start
CHANCE_MARGIN = 0.01  # an accuracy within this of always answering the commonest class is chance
MIN_JUDGED = 100  # fewer examples cannot tell chance from learning
START_SAMPLE = 5000  # the most training images the start loss is measured on, when none are held out
# batches between flushes of the denormal weights and momenta (optim.flush_denormals): often
# enough that weight decay cannot leave many weights denormal for long (docs/speed.md, Denormal numbers)
FLUSH_EVERY = 10
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{remaining} left{postfix}]"  # an epoch's


def clip_by_norm(grads: np.ndarray, clip: float) -> bool:
    """g ← g · clip/‖g‖ when ‖g‖ > clip (the global norm over every weight and bias at once:
    the step keeps its direction, only its length is capped). Whether it was clipped."""
    norm = math.sqrt(float(np.dot(grads, grads)))
    if not norm > clip:  # short enough, or NaN: a non-finite loss is the divergence checks' to catch
        return False
    grads *= grads.dtype.type(clip / norm)
    return True


def check(config: TrainConfig, n_train: int | None = None, n_validation: int | None = None) -> None:
    """The ConfigError of train.* keys that cannot work together (or, given the training and
    validation examples' counts `n_train` and `n_validation`, with the data)."""
    if n_validation == 0 and config.keep != "last":
        raise ConfigError(
            f"data.validation = 0 holds out no examples to choose an epoch by (train.keep ="
            f" {config.keep}): set train.keep=last, or data.validation above 0"
        )
    if config.keep == "last" and config.patience:
        raise ConfigError(
            f"train.patience = {config.patience} can never stop a run that keeps its last epoch"
            " (train.keep = last): set train.patience=0"
            + (" or another train.keep" if n_validation != 0 else "")
        )
    if n_train is not None and config.batch_size > n_train:
        raise ConfigError(
            f"train.batch_size = {config.batch_size} is larger than the training data ({n_train} examples)"
        )


class Trainer:
    """Epochs over `train`: shuffled mini-batches, forward, the delta equations backward, an
    optimizer step; validation, early stopping and the kept weights after each epoch. Owns
    the optimizer's state, the RNGs and the buffers each batch reuses. The images stay
    compact (uint8); each batch is normalised into a float buffer as it is drawn."""

    def __init__(
        self,
        model: Network,
        train: Dataset,
        validation: Dataset,
        norm: Normalisation,
        config: TrainConfig,
        rng: np.random.Generator,
        augment: AugmentConfig | None = None,
    ):
        check(config, len(train), len(validation))
        self.model, self.train, self.norm, self.config = model, train, norm, config
        self.validation, self.validated = validation, len(validation) > 0  # data.validation = 0: none
        self.X_validation = norm.apply(validation.images)
        # what the divergence checks judge by: the validation split, or the training split's own
        # accuracy and, for the start loss, its first images when none are held out
        self.judged = "validation" if self.validated else "training"
        judged = validation.labels if self.validated else train.labels
        # always answering the commonest class (nan: too few examples to tell)
        self.chance = np.bincount(judged).max() / len(judged) if len(judged) >= MIN_JUDGED else math.nan
        self.targets = one_hot(train.labels, dtype=model.params.dtype)  # (N, classes)
        parallel = config.parallel and available()
        self.optimizer = make_optimizer(config, model.params.size, model.params.dtype, parallel)
        self.shuffle_rng, self.dropout_rng, self.augment_rng = rng.spawn(3)
        self.position = Position()
        self.history = History()  # its start_loss: measured by fit, or restored
        self.schedule = UNCHANGED  # a run resumed with another train.epochs gets its own (reschedule)
        self.kept_params = model.params.copy()
        batch, n_input = config.batch_size, train.images.shape[1]
        self.augmenter = None
        if augment is not None and not is_off(augment):
            self.augmenter = Augmenter(augment, train.image_shape, batch, self.augment_rng)
        self.pixels = np.empty((batch, n_input), dtype=train.images.dtype)
        self.X_batch = np.empty((batch, n_input), dtype=model.params.dtype)
        self.Y_batch = np.empty((batch, self.targets.shape[1]), dtype=model.params.dtype)

    @property
    def finished(self) -> bool:
        h = self.history
        return h.stopped_early or h.pruned or self.position.epoch >= self.config.epochs

    def fit(
        self,
        on_epoch: Callable[[EpochRecord], bool | None] = lambda record: None,
        progress: bool | None = None,
        should_stop: Stop = lambda: False,
        on_checkpoint: Callable[[], None] = lambda: None,
    ) -> bool:
        """Train until the configured epochs are done, early stopping ends it, or `should_stop()`
        says so before a batch. Returns whether training finished; if so the model holds the
        kept weights. `on_checkpoint` is called every `checkpoint_every` epochs and at the end,
        before that epoch's `on_epoch`; `on_epoch` returning True ends training there (pruned)."""
        if math.isnan(self.history.start_loss) and not self.history.epochs and not self.position.batch:
            self.history.start_loss = self._start_loss()  # the initial weights, not yet trained
        while not self.finished:
            start, lr = time.perf_counter(), learning_rate(self.config, self.position.epoch, self.schedule)
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses are caught below
                completed = self.epoch(lr, progress, should_stop)
            self.position.seconds += time.perf_counter() - start
            if not completed:
                return False
            record = self._end_epoch(lr)
            if self.position.epoch % self.config.checkpoint_every == 0 or self.finished:
                on_checkpoint()  # before on_epoch shows the epoch: what is shown done is saved
            self.history.pruned = bool(on_epoch(record))
        np.copyto(self.model.params, self.kept_params)
        return True

    def epoch(self, lr: float, progress: bool | None = False, should_stop: Stop = lambda: False) -> bool:
        """Run the epoch under way (a new one if none is) to its end; False if `should_stop()`
        said so before one of its batches."""
        p, batch_size = self.position, self.config.batch_size
        if p.order is None:  # a new epoch
            p.order = self.shuffle_rng.permutation(len(self.train.labels))
        starts = range(p.batch * batch_size, len(p.order), batch_size)
        desc = f"epoch {p.epoch + 1}/{self.config.epochs}"
        batches = bar(starts, progress, desc=desc, bar_format=BAR_FORMAT)
        for start in batches:
            if should_stop():
                return False
            index = p.order[start : start + batch_size]
            loss, correct, clipped = self._step(index, lr)
            p.batch += 1
            p.clipped += clipped
            if p.batch % FLUSH_EVERY == 0:
                self.optimizer.flush_denormals(self.model.params)
            p.loss_sum += loss * len(index)
            p.correct += correct
            p.seen += len(index)
            if not math.isfinite(loss):
                break
            batches.set_postfix_str(
                f"loss {p.loss_sum / p.seen:.4f} acc {p.correct / p.seen:.4f}", refresh=False
            )
        return True

    def _step(self, index: np.ndarray, lr: float) -> tuple[float, int, bool]:
        """One batch: forward, δ^L, the delta recursion (the clipping of its gradient), an
        optimizer step; (loss, correct, whether the gradient was clipped)."""
        model, n = self.model, len(index)
        X, Y, pixels = self.X_batch[:n], self.Y_batch[:n], self.pixels[:n]
        np.take(self.train.images, index, axis=0, out=pixels)
        if self.augmenter is not None:
            pixels = self.augmenter(pixels)
        self.norm.apply(pixels, out=X)
        np.take(self.targets, index, axis=0, out=Y)
        Z = model.forward(X, self.dropout_rng)
        correct = int(np.count_nonzero(Z.argmax(axis=1) == self.train.labels[index]))
        loss, delta = model.output.loss_and_delta(Z, Y)
        clipped = False
        if math.isfinite(loss):
            model.backward(delta, self.config.weight_decay)
            clipped = bool(self.config.clip) and clip_by_norm(model.grads, self.config.clip)
            self.optimizer.step(model.params, model.grads, lr)
        return loss, correct, clipped

    def _end_epoch(self, lr: float) -> EpochRecord:
        """Validate, record, keep the weights the rule picks, decide on early stopping; the
        position moves to the start of the next epoch."""
        p, history = self.position, self.history
        train_loss, train_accuracy = p.loss_sum / p.seen, p.correct / p.seen
        val_loss, val_accuracy = self._validate()
        failure = self._failure(train_loss, train_accuracy, val_loss, val_accuracy)
        if failure:
            np.copyto(self.model.params, self.kept_params)
            kept = (
                f"The weights of epoch {history.kept_epoch} (kept so far by {self.config.keep}) were kept."
                if history.kept_epoch
                else "No epoch had finished before, so there are no weights to keep."
            )
            raise DivergedError(
                f"{failure} (epoch {p.epoch + 1}, learning rate {lr:g}); try a lower train.lr. {kept}"
            )
        epoch = p.epoch + 1
        figures = train_loss, train_accuracy, val_loss, val_accuracy
        record = EpochRecord(epoch, *figures, lr, p.seconds, p.clipped)
        if history.add(record, self.config.keep):
            np.copyto(self.kept_params, self.model.params)
        self.position = Position(epoch=epoch)  # the next epoch starts afresh
        history.stopped_early = history.patience_ran_out(self.config.patience)
        return record

    def _start_loss(self) -> float:
        """The loss of the initial weights on the validation images (the first START_SAMPLE
        training images when none are held out) with dropout on, a training batch at a time, as
        training measures its own loss (a generator of its own: the training's draws stay
        untouched; batches of training's size: so do the buffers the network reuses)."""
        X, labels = self.X_validation, self.validation.labels
        if not self.validated:
            X, labels = self.norm.apply(self.train.images[:START_SAMPLE]), self.train.labels[:START_SAMPLE]
        Y = one_hot(labels, dtype=self.model.params.dtype)
        rng, size = np.random.default_rng(0), self.config.batch_size
        starts = range(0, len(X), size)
        losses = [self.model.loss(X[i : i + size], Y[i : i + size], rng=rng) for i in starts]
        return float(np.average(losses, weights=[min(size, len(X) - i) for i in starts]))

    def _validate(self) -> tuple[float, float]:
        """The loss and accuracy of the model as it stands on the validation split (nan, nan
        when it is empty: data.validation = 0)."""
        if not self.validated:
            return math.nan, math.nan
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses are caught by the caller
            loss, accuracy, _ = loss_and_accuracy(self.model, self.X_validation, self.validation.labels)
        return loss, accuracy

    def _failure(self, train_loss: float, train_accuracy: float, val_loss: float, val_accuracy: float) -> str:
        """How an epoch shows that training blew up, or "": a non-finite loss; a loss far above
        the initial weights'; or an accuracy (on the split self.judged names) no better than
        always answering the commonest class while the training loss is well above the initial
        weights' (a slow start stays near it)."""
        start, validated = self.history.start_loss, self.validated
        losses = (train_loss, val_loss) if validated else (train_loss,)
        accuracy = val_accuracy if validated else train_accuracy
        if not all(map(math.isfinite, losses)):
            return "the training loss became non-finite"
        if max(losses) > BLOWN_UP * start:
            said = f"training {train_loss:.3g}" + (f", validation {val_loss:.3g}" if validated else "")
            return (
                f"the loss rose to {max(losses):.3g} ({said}), over {BLOWN_UP}× the initial weights'"
                f" {start:.3g}"
            )
        if accuracy <= self.chance + CHANCE_MARGIN and train_loss > WORSE * start:
            return (
                f"the {self.judged} accuracy is {accuracy:.4f}, no better than always answering the"
                f" commonest class ({self.chance:.4f}), and the training loss ({train_loss:.3g}) is"
                f" {train_loss / start:.1f}× the initial weights' ({start:.3g})"
            )
        return ""

    # --- checkpoints ---------------------------------------------------------------------

    def state(self, config: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Everything a checkpoint holds (CHECKPOINT_KEYS): arrays, and a JSON-ready mapping that
        `restore` turns back into this exact state, with the input normalisation and the run's
        whole `config` (the trainer holds only its sections) to build the trainer again from."""
        p = self.position
        arrays = {"params": self.model.params, "kept_params": self.kept_params}
        arrays |= {f"optimizer_{name}": array for name, array in self.optimizer.state().items()}
        if p.order is not None:
            arrays["order"] = p.order
        meta = {
            "position": {k: v for k, v in asdict(p).items() if k != "order"},
            "history": {
                "epochs": self.history.rows(),
                "kept_epoch": self.history.kept_epoch,
                "start_loss": self.history.start_loss,
            },
            "rng": {name: rng.bit_generator.state for name, rng in self._rngs().items()},
            "schedule": asdict(self.schedule),
            "norm": asdict(self.norm),
            "config": config,
        }
        return arrays, json.loads(json.dumps(meta))  # as it will be read back: plain JSON

    def restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        np.copyto(self.model.params, arrays["params"])
        np.copyto(self.kept_params, arrays["kept_params"])
        self.optimizer.load_state({name: arrays[f"optimizer_{name}"] for name in self.optimizer.state()})
        self.position = Position(**meta["position"], order=arrays.get("order"))
        history = meta["history"]
        epochs = [EpochRecord(**row) for row in history["epochs"]]
        start_loss = history.get("start_loss", math.nan)  # nan: no loss-based divergence check
        self.history = History(epochs, history["kept_epoch"], start_loss)
        self.history.stopped_early = self.history.patience_ran_out(self.config.patience)  # this config's
        self.schedule = Schedule(**meta.get("schedule", {}))  # none: a checkpoint of a run never rescheduled
        for name, rng in self._rngs().items():
            rng.bit_generator.state = meta["rng"][name]

    def reschedule(self, before: TrainConfig) -> str:
        """Carry the learning-rate schedule over from the config `before` the run was resumed
        with another (optim.rescheduled); what changed, in words ("" if nothing)."""
        self.schedule, note = rescheduled(self.schedule, before, self.config, self.position.epoch)
        return note

    def _rngs(self) -> dict[str, np.random.Generator]:
        return {"shuffle": self.shuffle_rng, "dropout": self.dropout_rng, "augment": self.augment_rng}
