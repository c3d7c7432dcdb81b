"""The training loop: shuffled mini-batches, validation each epoch, early stopping on the
validation loss, best weights kept. No file I/O: the caller saves what `fit` returns."""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from mlpcli.config import TrainConfig
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


@dataclass
class Inputs:
    """A split as the network sees it: normalised inputs X, one-hot targets Y, labels."""

    X: np.ndarray
    Y: np.ndarray
    labels: np.ndarray


def fit(
    model: MLP,
    train: Inputs,
    validation: Inputs,
    config: TrainConfig,
    seed_rng: np.random.Generator,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
    progress: bool | None = None,
) -> History:
    """Train `model` in place; on return it holds the weights of the best validation loss.
    `progress`: show a bar per epoch (None: only on a terminal)."""
    optimizer = make_optimizer(config, model.params.size, model.params.dtype)
    shuffle_rng, dropout_rng = seed_rng.spawn(2)
    history, best_params, best_loss = History(), model.params.copy(), math.inf
    for epoch in range(config.epochs):
        start, lr = time.perf_counter(), learning_rate(config, epoch)
        order = shuffle_rng.permutation(len(train.labels))
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses are caught below
            train_loss, train_accuracy = _epoch(
                model, optimizer, train, order, config, lr, dropout_rng, progress, epoch
            )
            val_loss, val_accuracy, _ = loss_and_accuracy(model, validation.X, validation.labels)
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


def _epoch(model, optimizer, train: Inputs, order, config: TrainConfig, lr, dropout_rng, progress, epoch):
    """One pass over the shuffled batches; returns the running mean loss and accuracy."""
    batch_size = config.batch_size
    X_batch = np.empty((batch_size, train.X.shape[1]), dtype=train.X.dtype)
    Y_batch = np.empty((batch_size, train.Y.shape[1]), dtype=train.Y.dtype)
    total_loss, correct, seen = 0.0, 0, 0
    starts = range(0, len(order), batch_size)
    bar = tqdm(
        starts,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="batch",
        leave=False,
        disable=_no_bar(progress),
    )
    for start in bar:
        index = order[start : start + batch_size]
        X, Y = X_batch[: len(index)], Y_batch[: len(index)]
        np.take(train.X, index, axis=0, out=X)
        np.take(train.Y, index, axis=0, out=Y)
        Z = model.forward(X, dropout_rng)
        loss, delta = model.output.loss_and_delta(Z, Y)
        if not math.isfinite(loss):
            return loss, 0.0
        correct += int(np.count_nonzero(Z.argmax(axis=1) == train.labels[index]))
        model.backward(delta, config.weight_decay)
        optimizer.step(model.params, model.grads, lr)
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
