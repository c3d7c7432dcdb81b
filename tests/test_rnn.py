import numpy as np
import pytest
from numerical import numerical_gradient, relative_error

from mlpcli.nn.rnn import RECURRENT_INITS, RNN, VanillaRNN
from mlpcli.train import clip_by_norm


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


# --- the many-to-one RNN that mlp train trains (model.kind: rnn) -------------------------------


def batched_rnn(activation="tanh", dropout=0.0, steps=5, n_input=3, n_hidden=4, seed=0):
    rng = np.random.default_rng(seed)
    model = RNN(steps, n_input, n_hidden, 3, activation, dropout=dropout, dtype=np.float64)
    model.init(rng, "xavier", "orthogonal")
    model.params[model.n_weights :] = 0.1 * rng.standard_normal(model.params.size - model.n_weights)
    X = rng.standard_normal((6, steps * n_input))
    Y = np.eye(3)[rng.integers(0, 3, 6)]
    return model, X, Y


def test_the_batch_follows_the_recurrence_example_by_example_row_by_row():
    model, X, _ = batched_rnn()
    logits = model.forward(X).copy()
    for x, o in zip(X, logits):
        h = np.zeros(4)
        for row in x.reshape(5, 3):  # the image's rows are the time steps
            h = np.tanh(model.U @ row + model.W @ h + model.b)
        np.testing.assert_allclose(o, model.V @ h + model.c)  # only h^(T) is read out


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_batched_bptt_matches_central_differences(activation, dropout):
    """Every parameter and the input, with dropout's mask fixed and weight decay in the loss."""
    model, X, Y = batched_rnn(activation, dropout)

    def masks():
        return np.random.default_rng(7) if dropout else None

    loss, grad_X = model.loss_and_grad(X, Y, 1e-2, masks(), input_grad=True)
    assert loss == pytest.approx(model.loss(X, Y, 1e-2, masks()))
    analytic, grad_X = model.grads.copy(), grad_X.copy()
    numeric = numerical_gradient(lambda: model.loss(X, Y, 1e-2, masks()), model.params)
    for name, (tensor, _) in model.tensors().items():  # tensor by tensor: a wrong one is named
        part = slice(*_span(model.params, tensor))
        assert relative_error(analytic[part], numeric[part]) < 1e-6, name
    numeric_X = numerical_gradient(lambda: model.loss(X, Y, 1e-2, masks()), X)
    # the early rows' gradients fade through σ' step after step (sigmoid's ≤ 1/4) towards the
    # float64 resolution of the central difference, where only an absolute error means anything
    np.testing.assert_allclose(grad_X, numeric_X, rtol=1e-6, atol=1e-9)


def _span(flat: np.ndarray, view: np.ndarray) -> tuple[int, int]:
    start = (view.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) // flat.itemsize
    return start, start + view.size


def test_the_error_reaches_the_first_step_through_w():
    """∂C/∂x^(1) is nonzero only through the recurrence: with W = 0 it vanishes, so a BPTT
    that dropped the recurrent term would pass the later steps' checks and still fail this."""
    model, X, Y = batched_rnn()
    _, grad_X = model.loss_and_grad(X, Y, input_grad=True)
    first_row = grad_X.reshape(6, 5, 3)[:, 0]
    assert np.abs(first_row).max() > 1e-3
    model.W[...] = 0
    _, grad_X = model.loss_and_grad(X, Y, input_grad=True)
    np.testing.assert_array_equal(grad_X.reshape(6, 5, 3)[:, :-1], 0)


def test_param_grads_off_leaves_grads_and_gives_the_same_input_gradient():
    model, X, Y = batched_rnn()
    _, expected = model.loss_and_grad(X, Y, input_grad=True)
    expected = expected.copy()
    model.grads[...] = 7.0
    _, delta = model.output.loss_and_delta(model.forward(X), Y)
    np.testing.assert_allclose(model.backward(delta, input_grad=True, param_grads=False), expected)
    assert (model.grads == 7.0).all()


def test_buffers_are_reused_and_a_smaller_batch_after_a_larger_is_right():
    model, X, Y = batched_rnn()
    model.loss_and_grad(X, Y)
    buffers = {name: id(buffer) for name, buffer in model.buffers.items()}
    model.loss_and_grad(X[:2], Y[:2])
    small = model.grads.copy()
    assert {name: id(buffer) for name, buffer in model.buffers.items()} == buffers  # nothing new
    fresh, _, _ = batched_rnn()
    fresh.loss_and_grad(X[:2], Y[:2])
    np.testing.assert_allclose(small, fresh.grads)


@pytest.mark.parametrize("recurrent", RECURRENT_INITS)
def test_recurrent_inits(recurrent):
    model = RNN(28, 28, 64, 10)
    model.init(np.random.default_rng(0), "xavier", recurrent)
    W = model.W.astype(np.float64)
    if recurrent == "orthogonal":
        np.testing.assert_allclose(W.T @ W, np.eye(64), atol=1e-5)
        assert not np.allclose(W, np.eye(64), atol=0.1)
    elif recurrent == "identity":
        np.testing.assert_array_equal(W, np.eye(64))
    else:
        assert W.std() == pytest.approx(np.sqrt(2 / 128), rel=0.05)
    assert model.U.std() == pytest.approx(np.sqrt(2 / (28 + 64)), rel=0.1)
    assert (model.b == 0).all() and (model.c == 0).all()


def test_weight_decay_acts_on_u_w_and_v_only():
    model, X, Y = batched_rnn()
    expected = 0.5 * 0.1 * sum(float((model.tensors()[n][0] ** 2).sum()) for n in "UWV")
    assert model.penalty(0.1) == pytest.approx(expected)
    model.loss_and_grad(X, Y)
    plain = {name: g.copy() for name, (_, g) in model.tensors().items()}
    model.loss_and_grad(X, Y, 0.1)
    for name, (tensor, grad) in model.tensors().items():
        np.testing.assert_allclose(grad, plain[name] + (0.1 * tensor if name in "UWV" else 0))


def test_clip_by_norm_caps_the_length_and_keeps_the_direction():
    grads = np.array([3.0, 4.0], dtype=np.float32)  # length 5
    assert clip_by_norm(grads, 1.0) and np.allclose(grads, [0.6, 0.8])
    assert not clip_by_norm(grads, 2.0) and np.allclose(grads, [0.6, 0.8])  # short enough: unchanged
