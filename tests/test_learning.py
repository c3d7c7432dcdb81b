"""What the training loop actually does, watched from inside: the order batches are drawn in,
the rate the optimizer receives, that every layer learns (on a task the last layer alone
cannot solve), what an epoch's figures are made of, and where dropout is on. Each test fails
for a bug that a run's accuracy alone would hide."""

import numpy as np
import pytest
from conftest import trainer_for

from mlpcli.data import one_hot
from mlpcli.optim import learning_rate
from mlpcli.train import Trainer

PLAIN = ["data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0", "model.dropout=0"]


@pytest.fixture
def tiny(idx_dir):
    return ["data.source=idx", f"data.dir={idx_dir}", "data.validation=200", "model.hidden=[16]", *PLAIN]


def watch_steps(trainer: Trainer) -> list[tuple[np.ndarray, float, float, int]]:
    """Every batch _step is given and returns: (indices, lr, loss, correct)."""
    seen, step = [], trainer._step

    def watched(index, lr):
        loss, correct, clipped = step(index, lr)
        seen.append((index.copy(), lr, loss, correct))
        return loss, correct, clipped

    trainer._step = watched
    return seen


def test_each_epoch_draws_every_example_once_in_a_fresh_shuffled_order(tiny):
    trainer = trainer_for(tiny, "train.epochs=3", "train.batch_size=64")
    seen = watch_steps(trainer)
    shuffle = np.random.default_rng(0).spawn(2)[1].spawn(3)[0]  # the Trainer's shuffle generator
    assert trainer.fit(progress=False)
    n, per_epoch = len(trainer.train), -(-len(trainer.train) // 64)
    assert len(seen) == 3 * per_epoch
    orders = [
        np.concatenate([index for index, *_ in seen[e * per_epoch : (e + 1) * per_epoch]]) for e in range(3)
    ]
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(n))  # every example, once
        np.testing.assert_array_equal(order, shuffle.permutation(n))  # in the generator's order
        assert not np.array_equal(order, np.arange(n))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


@pytest.mark.parametrize(
    "schedule", [("train.schedule=cosine",), ("train.schedule=step", "train.step_size=2", "train.gamma=0.5")]
)
def test_the_optimizer_receives_the_scheduled_rate_every_batch(tiny, schedule):
    trainer = trainer_for(tiny, "train.epochs=4", "train.lr=0.02", *schedule)
    received, step = [], trainer.optimizer.step
    trainer.optimizer.step = lambda params, grads, lr: (received.append(lr), step(params, grads, lr))
    assert trainer.fit(progress=False)
    per_epoch = len(received) // 4
    expected = [learning_rate(trainer.config, epoch) for epoch in range(4)]
    assert received == [rate for rate in expected for _ in range(per_epoch)]
    assert [record.lr for record in trainer.history.epochs] == expected
    assert len(set(expected)) > 1  # the schedule moves


def test_every_layer_learns_real_mnist_which_the_last_layer_alone_cannot():
    """784-64-10, one epoch of real MNIST: 0.9386 validation accuracy here; with the hidden
    layer's gradients zeroed (only the last layer learning) it reaches 0.69."""
    trainer = trainer_for(["data.source=shipped"], "model.hidden=[64]", "train.epochs=1", *PLAIN)
    before = {name: tensor.copy() for name, (tensor, _) in trainer.model.tensors().items()}
    assert trainer.fit(progress=False)
    assert trainer.history.epochs[-1].val_accuracy >= 0.92
    for name, (tensor, _) in trainer.model.tensors().items():
        assert np.abs(tensor - before[name]).max() > 1e-3, f"{name} did not learn"


def test_an_epochs_figures_are_the_means_over_its_batches(tiny):
    trainer = trainer_for(tiny, "train.epochs=2", "train.batch_size=300")  # 1000 = 300·3 + 100
    initial = trainer.model.params.copy()
    seen = watch_steps(trainer)
    assert trainer.fit(progress=False)
    sizes = [len(index) for index, *_ in seen[:4]]
    assert sizes == [300, 300, 300, 100]
    first = trainer.history.epochs[0]
    losses = [loss for _, _, loss, _ in seen[:4]]
    assert first.train_loss == pytest.approx(np.average(losses, weights=sizes), rel=1e-6)
    assert first.train_accuracy == sum(correct for *_, correct in seen[:4]) / 1000
    index, _, loss, correct = seen[0]  # the first batch: the initial weights' loss and right answers
    model = trainer.model
    np.copyto(model.params, initial)
    Z = model.forward(trainer.norm.apply(trainer.train.images[index]))
    assert correct == np.count_nonzero(Z.argmax(axis=1) == trainer.train.labels[index])
    assert loss == pytest.approx(model.output.loss(Z, one_hot(trainer.train.labels[index], dtype=Z.dtype)))


def test_dropout_is_on_in_training_and_off_in_validation(tiny):
    trainer = trainer_for(tiny, "train.epochs=1", "model.dropout=0.5")
    calls, forward = [], trainer.model.forward
    trainer.model.forward = lambda X, rng=None: (calls.append((len(X), rng is not None)), forward(X, rng))[1]
    assert trainer.fit(progress=False)
    *training, validation = calls
    assert len(training) >= 8 and all(dropped for _, dropped in training)  # every training batch drops
    assert validation == (200, False)  # the validation pass does not
