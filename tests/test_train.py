import numpy as np
import pytest

from mlpcli.config import AugmentConfig, DataConfig, TrainConfig, load_config
from mlpcli.data import N_CLASSES, Normalisation, load_splits
from mlpcli.errors import DivergedError
from mlpcli.evaluate import loss_and_accuracy
from mlpcli.models import build_model
from mlpcli.nn.mlp import MLP
from mlpcli.train import EpochRecord, History, Trainer


def fit(
    model, train, validation, norm, config, rng, on_epoch=lambda record: None, progress=False, augment=None
):
    trainer = Trainer(model, train, validation, norm, config, rng, augment)
    assert trainer.fit(on_epoch, progress)
    return trainer.history


def setup(idx_dir, seed=0, **train):
    splits = load_splits(DataConfig(source="idx", dir=str(idx_dir), validation=200), seed)
    norm = Normalisation.of(splits.train.images)
    config = load_config(None, ["model.hidden=[16]", "model.dropout=0.1"])
    model = build_model(config.model, (8, 8), N_CLASSES, np.random.default_rng(seed))
    defaults = {"epochs": 4, "batch_size": 32, "lr": 0.01, "schedule": "constant", "patience": 0}
    return model, splits.train, splits.validation, norm, TrainConfig(**defaults | train)


def test_fit_learns_and_reports_every_epoch(idx_dir):
    model, train, validation, norm, config = setup(idx_dir)
    seen = []
    history = fit(
        model, train, validation, norm, config, np.random.default_rng(0), seen.append, progress=False
    )
    assert [r.epoch for r in history.epochs] == [1, 2, 3, 4] and seen == history.epochs
    assert history.epochs[-1].val_accuracy > 0.9  # chance is 0.1
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert all(r.lr == 0.01 and r.seconds > 0 for r in history.epochs)


def test_an_epoch_is_checkpointed_before_it_is_reported(idx_dir):
    """What history.csv (written by on_epoch) lists as done, the checkpoint holds: a run
    stopped in between never repeats an epoch when it resumes."""
    model, train, validation, norm, config = setup(idx_dir, epochs=3)
    trainer = Trainer(model, train, validation, norm, config, np.random.default_rng(0))
    checkpointed, reported = [], []
    trainer.fit(
        lambda record: reported.append((record.epoch, checkpointed[-1])),
        on_checkpoint=lambda: checkpointed.append(trainer.position.epoch),
    )
    assert reported == [(1, 1), (2, 2), (3, 3)]


def test_same_config_and_seed_give_identical_weights(idx_dir):
    weights = []
    for _ in range(2):
        model, train, validation, norm, config = setup(idx_dir)
        fit(model, train, validation, norm, config, np.random.default_rng(5), progress=False)
        weights.append(model.params.copy())
    np.testing.assert_array_equal(weights[0], weights[1])
    model, train, validation, norm, config = setup(idx_dir)
    fit(model, train, validation, norm, config, np.random.default_rng(6), progress=False)
    assert not np.array_equal(model.params, weights[0])


def test_early_stopping_keeps_the_best_epoch(idx_dir):
    model, train, validation, norm, config = setup(
        idx_dir, epochs=40, patience=2, lr=0.05, optimizer="sgd", keep="best_val_loss"
    )
    history = fit(model, train, validation, norm, config, np.random.default_rng(0), progress=False)
    losses = [r.val_loss for r in history.epochs]
    assert history.stopped_early and len(history.epochs) < 40
    assert history.kept_epoch == 1 + int(np.argmin(losses))
    assert len(history.epochs) - history.kept_epoch == 2
    assert loss_and_accuracy(model, norm.apply(validation.images), validation.labels)[0] == pytest.approx(
        min(losses), rel=1e-5
    )


def test_divergence_stops_with_advice_and_keeps_good_weights(idx_dir):
    model, train, validation, norm, config = setup(idx_dir, lr=1e6, optimizer="sgd", momentum=0.0)
    start = model.params.copy()
    with pytest.raises(DivergedError, match="non-finite.*try a lower train.lr"):
        fit(model, train, validation, norm, config, np.random.default_rng(0), progress=False)
    assert np.isfinite(model.params).all()
    np.testing.assert_array_equal(model.params, start)  # no epoch finished: the initial weights


def test_last_batch_may_be_smaller(idx_dir):
    model, train, validation, norm, config = setup(idx_dir, epochs=1, batch_size=999)  # 1000 = 999 + 1
    history = fit(model, train, validation, norm, config, np.random.default_rng(0), progress=False)
    assert np.isfinite(history.epochs[0].train_loss)


def test_model_is_float32_for_training():
    assert MLP([4, 3, 2]).params.dtype == np.float32


def test_a_run_that_stopped_early_continues_when_patience_is_raised(idx_dir):
    model, train, validation, norm, config = setup(idx_dir, epochs=40, patience=2, lr=0.05, optimizer="sgd")
    trainer = Trainer(model, train, validation, norm, config, np.random.default_rng(0))
    assert trainer.fit(progress=False) and trainer.history.stopped_early
    arrays, meta = trainer.state()
    patient = TrainConfig(**{**config.__dict__, "patience": 100})
    resumed = Trainer(model, train, validation, norm, patient, np.random.default_rng(1))
    resumed.restore(arrays, meta)
    assert not resumed.history.stopped_early and not resumed.finished
    same = Trainer(model, train, validation, norm, config, np.random.default_rng(1))
    same.restore(arrays, meta)
    assert same.finished  # the same patience: still stopped


def test_augmentation_changes_training_reproducibly_and_off_means_off(idx_dir):
    def trained(augment):
        model, train, validation, norm, config = setup(idx_dir, epochs=2)
        fit(model, train, validation, norm, config, np.random.default_rng(5), augment=augment)
        return model.params.copy()

    plain = trained(None)
    off = AugmentConfig(shift=0, rotate=0, scale=0, flip=False)
    np.testing.assert_array_equal(trained(off), plain)
    flipped = trained(AugmentConfig(shift=0, rotate=0, scale=0, flip=True))
    assert not np.array_equal(flipped, plain)
    np.testing.assert_array_equal(trained(AugmentConfig(shift=0, rotate=0, scale=0, flip=True)), flipped)


def history_of(keep: str, patience: int, scores: list[tuple[float, float]]) -> History:
    """A History fed epochs of (validation accuracy, validation loss), stopping as fit would."""
    history = History()
    for epoch, (accuracy, loss) in enumerate(scores, start=1):
        history.add(EpochRecord(epoch, 0.1, 0.9, loss, accuracy, 0.001, 1.0), keep)
        if history.patience_ran_out(patience):
            history.stopped_early = True
            break
    return history


# validation accuracy rises to epoch 5 while the loss is lowest at epoch 2
SCORES = [(0.95, 0.20), (0.96, 0.10), (0.96, 0.12), (0.97, 0.15), (0.98, 0.16), (0.98, 0.17), (0.97, 0.2)]


def test_keep_best_val_accuracy_counts_patience_by_accuracy():
    history = history_of("best_val_accuracy", 2, SCORES)
    assert history.kept_epoch == 5 and history.stopped_early and len(history.epochs) == 7
    assert history_of("best_val_accuracy", 3, SCORES).stopped_early is False


def test_keep_best_val_loss_counts_patience_by_loss():
    history = history_of("best_val_loss", 2, SCORES)
    assert history.kept_epoch == 2 and history.stopped_early and len(history.epochs) == 4


def test_ties_in_accuracy_go_to_the_lower_loss_and_last_keeps_the_last():
    history = history_of("best_val_accuracy", 0, [(0.98, 0.05), (0.98, 0.04), (0.98, 0.06)])
    assert history.kept_epoch == 2
    history = history_of("last", 0, SCORES)
    assert history.kept_epoch == 7 and not history.stopped_early


def test_fit_keeps_the_weights_of_the_epoch_the_rule_picks(idx_dir):
    model, train, validation, norm, config = setup(idx_dir, epochs=6, lr=0.05, optimizer="sgd")
    history = fit(model, train, validation, norm, config, np.random.default_rng(0), progress=False)
    scores = [(r.val_accuracy, -r.val_loss) for r in history.epochs]
    assert history.kept_epoch == 1 + scores.index(max(scores))
    kept = history.kept
    loss, accuracy, _ = loss_and_accuracy(model, norm.apply(validation.images), validation.labels)
    assert accuracy == kept.val_accuracy and loss == pytest.approx(kept.val_loss, rel=1e-6)
