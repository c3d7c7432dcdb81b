import numpy as np
import pytest
from numerical import numerical_gradient, relative_error

from mlpcli.nn.rnn import VanillaRNN


def rnn_and_sequence(steps=5):
    rng = np.random.default_rng(3)
    rnn = VanillaRNN(3, 4, 2)
    rnn.init(rng)
    rnn.params[:] += 0.1 * rng.standard_normal(rnn.params.size)
    xs = rng.standard_normal((steps, 3))
    ys = np.eye(2)[rng.integers(0, 2, steps)]
    return rnn, xs, ys


def test_forward_follows_the_recurrence():
    rnn, xs, _ = rnn_and_sequence()
    os = rnn.forward(xs)
    h = np.zeros(4)
    for t, x in enumerate(xs):
        h = np.tanh(rnn.U @ x + rnn.W @ h + rnn.b)
        np.testing.assert_allclose(os[t], rnn.V @ h + rnn.c)


def test_loss_is_the_sum_over_time_of_cross_entropies():
    rnn, xs, ys = rnn_and_sequence()
    os = rnn.forward(xs)
    log_softmax = os - np.log(np.exp(os).sum(axis=1, keepdims=True))
    assert rnn.loss(xs, ys) == pytest.approx(-np.sum(ys * log_softmax))


def test_bptt_matches_central_differences():
    rnn, xs, ys = rnn_and_sequence()
    loss = rnn.loss_and_grad(xs, ys)
    assert loss == pytest.approx(rnn.loss(xs, ys))
    analytic = rnn.grads.copy()
    assert relative_error(analytic, numerical_gradient(lambda: rnn.loss(xs, ys), rnn.params)) < 1e-6


def test_last_step_delta_has_no_recurrent_term():
    rnn, xs, ys = rnn_and_sequence(steps=1)
    rnn.loss_and_grad(xs, ys)
    _, grad_W = rnn.tensors()["W"]
    np.testing.assert_array_equal(grad_W, 0)  # h^(0) = 0, so ∂L/∂W = r (h^(0))ᵀ = 0 for T = 1
