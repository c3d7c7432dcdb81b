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


def test_the_delta_of_a_step_is_the_output_error_and_the_error_carried_back():
    """δ^(t) = Vᵀ(ŷ^(t) - y^(t)) + Wᵀ r^(t+1): each term checked on its own, with numbers that
    tell a wrong factor, a missing term or a transpose apart."""
    rnn, _, _ = rnn_and_sequence()
    rng = np.random.default_rng(5)
    error, r_next = rng.standard_normal(2), rng.standard_normal(4)
    np.testing.assert_allclose(rnn.delta_step(error, np.zeros(4)), rnn.V.T @ error)  # t = T: no future
    np.testing.assert_allclose(rnn.delta_step(np.zeros(2), r_next), rnn.W.T @ r_next)
    np.testing.assert_allclose(rnn.delta_step(error, r_next), rnn.V.T @ error + rnn.W.T @ r_next)


def test_a_single_step_sequence_is_differentiated_right_too():
    """T = 1: h^(0) = 0 makes ∂L/∂W zero whatever the delta is, so U, b, V and c carry the check."""
    rnn, xs, ys = rnn_and_sequence(steps=1)
    rnn.loss_and_grad(xs, ys)
    analytic = rnn.grads.copy()
    numeric = numerical_gradient(lambda: rnn.loss(xs, ys), rnn.params)
    assert relative_error(analytic, numeric) < 1e-6
    _, grad_U = rnn.tensors()["U"]
    assert np.abs(grad_U).max() > 1e-3  # not vacuous: the input weights get a gradient
