import numpy as np
import pytest

from mlpcli.config import TrainConfig
from mlpcli.optim import SGD, UNCHANGED, Adam, learning_rate, make_optimizer, rescheduled


def run(optimizer, grads_seq, theta):
    for g in grads_seq:
        optimizer.step(theta, g.copy(), 0.1)
    return theta


GRADS = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-1.0, 3.0])]


def test_plain_sgd():
    theta = run(SGD(2, np.float64), GRADS, np.zeros(2))
    np.testing.assert_allclose(theta, -0.1 * sum(GRADS))


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_with_momentum_follows_the_recurrence(nesterov):
    theta, v = np.zeros(2), np.zeros(2)
    for g in GRADS:
        v = 0.9 * v + g
        theta = theta - 0.1 * ((g + 0.9 * v) if nesterov else v)
    np.testing.assert_allclose(run(SGD(2, np.float64, 0.9, nesterov), GRADS, np.zeros(2)), theta)


def test_adam_matches_algorithm_1_of_kingma_and_ba():
    theta, m, v = np.ones(2), np.zeros(2), np.zeros(2)
    for t, g in enumerate(GRADS, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
        theta = theta - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(run(Adam(2, np.float64), GRADS, np.ones(2)), theta, rtol=1e-6)


def test_schedules():
    constant = TrainConfig(lr=0.1, schedule="constant")
    step = TrainConfig(lr=0.1, schedule="step", step_size=2, gamma=0.5)
    cosine = TrainConfig(lr=0.1, schedule="cosine", epochs=4)
    assert [learning_rate(constant, e) for e in range(3)] == [0.1, 0.1, 0.1]
    assert [learning_rate(step, e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert [learning_rate(cosine, e) for e in range(4)] == pytest.approx(
        [0.1, 0.0853553, 0.05, 0.0146447], rel=1e-5
    )


def test_make_optimizer_by_name():
    assert isinstance(make_optimizer(TrainConfig(optimizer="sgd"), 3, np.float32), SGD)
    adam = make_optimizer(TrainConfig(optimizer="adam", beta1=0.8), 3, np.float32)
    assert isinstance(adam, Adam) and adam.beta1 == 0.8 and adam.u.dtype == np.float32


COSINE_60 = TrainConfig(lr=1e-3, schedule="cosine", epochs=60)


def cosine(lr: float, first: int, last: int, epoch: int) -> float:
    """½ lr (1 + cos π (epoch - first) / (last - first)): from lr at `first` to 0 at `last`."""
    return 0.5 * lr * (1 + np.cos(np.pi * (epoch - first) / (last - first)))


@pytest.mark.parametrize("epochs", [100, 45])
def test_a_cosine_run_resumed_with_other_epochs_goes_on_smoothly_to_0_at_its_new_end(epochs):
    after = TrainConfig(lr=1e-3, schedule="cosine", epochs=epochs)
    schedule, note = rescheduled(UNCHANGED, COSINE_60, after, epoch=40)
    reached = learning_rate(COSINE_60, 40)  # what epoch 41 would have trained at: 2.5e-4
    rates = [learning_rate(after, e, schedule) for e in range(40, epochs)]
    assert rates[0] == pytest.approx(reached, rel=1e-12)  # no jump
    assert rates == pytest.approx([cosine(reached, 40, epochs, e) for e in range(40, epochs)], rel=1e-9)
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] < 0.1 * reached
    assert note == (
        f"train.epochs 60 → {epochs}: the cosine schedule goes on from where it stands,"
        f" down to 0 at epoch {epochs}: epoch 41 trains at 0.00025"
    )


def test_a_finished_cosine_run_trained_longer_starts_again_at_train_lr():
    after = TrainConfig(lr=1e-3, schedule="cosine", epochs=100)
    assert learning_rate(COSINE_60, 60) == 0  # where the finished curve has come
    schedule, note = rescheduled(UNCHANGED, COSINE_60, after, epoch=60)
    rates = [learning_rate(after, e, schedule) for e in range(60, 100)]
    assert rates == pytest.approx([cosine(1e-3, 60, 100, e) for e in range(60, 100)], rel=1e-9)
    assert "had come down to 0; it starts again at train.lr, down to 0 at epoch 100" in note
    assert note.endswith("epoch 61 trains at 0.001")


def test_other_changes_on_resume_take_effect_and_are_said():
    lower = TrainConfig(lr=1e-4, schedule="cosine", epochs=60)
    schedule, note = rescheduled(UNCHANGED, COSINE_60, lower, epoch=40)
    assert schedule == UNCHANGED and learning_rate(lower, 40, schedule) == pytest.approx(2.5e-5)
    assert note == "the learning rate of epoch 41 is now 2.5e-05 (it was to be 0.00025)"
    assert rescheduled(UNCHANGED, COSINE_60, COSINE_60, epoch=40) == (UNCHANGED, "")
    constant = TrainConfig(lr=0.01, schedule="constant", epochs=3)
    longer = TrainConfig(lr=0.01, schedule="constant", epochs=6)
    assert rescheduled(UNCHANGED, constant, longer, epoch=3) == (UNCHANGED, "")


def test_a_rescheduled_curve_composes_with_another_change_of_epochs():
    """Stopped at 40 of 60, resumed to 100, stopped at 70, resumed to 80: still no jump."""
    to_100 = TrainConfig(lr=1e-3, schedule="cosine", epochs=100)
    first, _ = rescheduled(UNCHANGED, COSINE_60, to_100, epoch=40)
    to_80 = TrainConfig(lr=1e-3, schedule="cosine", epochs=80)
    second, _ = rescheduled(first, to_100, to_80, epoch=70)
    assert learning_rate(to_80, 70, second) == pytest.approx(learning_rate(to_100, 70, first), rel=1e-12)
    assert second.start == 70
