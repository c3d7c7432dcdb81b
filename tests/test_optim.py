import numpy as np
import pytest

from mlpcli.config import TrainConfig
from mlpcli.optim import SGD, Adam, learning_rate, make_optimizer


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
