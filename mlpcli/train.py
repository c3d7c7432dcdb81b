"""The training loop: shuffled mini-batches, validation each epoch, early stopping on the
validation loss, best weights kept. No file I/O: the caller saves what `fit` returns."""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from mlpcli.config import TrainConfig
from mlpcli.data import Dataset, Normalisation, one_hot
from mlpcli.errors import DivergedError
from mlpcli.evaluate import loss_and_accuracy
from mlpcli.nn.network import MLP
from mlpcli.optim import learning_rate, make_optimizer


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


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0  # 1-based epoch whose weights were kept; 0 = the initial weights
    stopped_early: bool = False

    def rows(self) -> list[dict]:
        return [asdict(record) for record in self.epochs]


def fit(
    model: MLP,
    train: Dataset,
    validation: Dataset,
    norm: Normalisation,
    config: TrainConfig,
    seed_rng: np.random.Generator,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
    progress: bool | None = None,
) -> History:
    """Train `model` in place; on return it holds the weights of the best validation loss.
    `progress`: show a bar per epoch (None: only on a terminal)."""
    trainer = Trainer(model, train, norm, config, seed_rng)
    X_validation = norm.apply(validation.images)
    history, best_params, best_loss = History(), model.params.copy(), math.inf
    for epoch in range(config.epochs):
        start, lr = time.perf_counter(), learning_rate(config, epoch)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses are caught below
            train_loss, train_accuracy = trainer.epoch(lr, progress, f"epoch {epoch + 1}/{config.epochs}")
            val_loss, val_accuracy, _ = loss_and_accuracy(model, X_validation, validation.labels)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            _diverged(model, best_params, history, f"epoch {epoch + 1}, learning rate {lr:g}")
        record = EpochRecord(
            epoch + 1, train_loss, train_accuracy, val_loss, val_accuracy, lr, time.perf_counter() - start
        )
        history.epochs.append(record)
        on_epoch(record)
        if val_loss < best_loss:
            best_loss, history.best_epoch = val_loss, epoch + 1
            np.copyto(best_params, model.params)
        elif config.patience and epoch + 1 - history.best_epoch >= config.patience:
            history.stopped_early = True
            break
    np.copyto(model.params, best_params)
    return history


class Trainer:
    """Epochs over `train`: shuffled mini-batches, forward, the delta equations backward, an
    optimizer step. Owns the optimizer's state and the buffers each batch reuses. The images
    stay compact (uint8); each batch is normalised into a float buffer as it is drawn."""

    def __init__(
        self, model: MLP, train: Dataset, norm: Normalisation, config: TrainConfig, rng: np.random.Generator
    ):
        self.model, self.train, self.norm, self.config = model, train, norm, config
        self.targets = one_hot(train.labels, dtype=model.params.dtype)  # (N, classes)
        self.optimizer = make_optimizer(config, model.params.size, model.params.dtype)
        self.shuffle_rng, self.dropout_rng = rng.spawn(2)
        batch, n_input = config.batch_size, train.images.shape[1]
        self.pixels = np.empty((batch, n_input), dtype=train.images.dtype)
        self.X_batch = np.empty((batch, n_input), dtype=model.params.dtype)
        self.Y_batch = np.empty((batch, self.targets.shape[1]), dtype=model.params.dtype)

    def epoch(self, lr: float, progress: bool | None = False, desc: str = "") -> tuple[float, float]:
        """One pass over the shuffled batches; returns the running mean loss and accuracy
        (a non-finite loss ends the pass at once and is returned)."""
        model, train, batch_size = self.model, self.train, self.config.batch_size
        order = self.shuffle_rng.permutation(len(train.labels))
        total_loss, correct, seen = 0.0, 0, 0
        starts = range(0, len(order), batch_size)
        bar = tqdm(starts, desc=desc, unit="batch", leave=False, disable=_no_bar(progress))
        for start in bar:
            index = order[start : start + batch_size]
            X, Y, pixels = self.X_batch[: len(index)], self.Y_batch[: len(index)], self.pixels[: len(index)]
            np.take(train.images, index, axis=0, out=pixels)
            self.norm.apply(pixels, out=X)
            np.take(self.targets, index, axis=0, out=Y)
            Z = model.forward(X, self.dropout_rng)
            correct += int(np.count_nonzero(Z.argmax(axis=1) == train.labels[index]))
            loss, delta = model.output.loss_and_delta(Z, Y)
            if not math.isfinite(loss):
                return loss, 0.0
            model.backward(delta, self.config.weight_decay)
            self.optimizer.step(model.params, model.grads, lr)
            total_loss += loss * len(index)
            seen += len(index)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        return total_loss / seen, correct / seen


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # tqdm: None disables off a terminal


def _diverged(model: MLP, best_params: np.ndarray, history: History, where: str) -> None:
    np.copyto(model.params, best_params)
    raise DivergedError(
        f"the training loss became non-finite ({where}); try a lower train.lr."
        f" The weights of epoch {history.best_epoch} (the best so far) were kept.",
        history,
    )
