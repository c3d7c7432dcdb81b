import numpy as np
import pytest
from numerical import numerical_gradient, relative_error

from mlpcli.nn.mlp import MLP

COMBINATIONS = [
    (act, out, out_act)
    for act in ("relu", "sigmoid", "tanh")
    for out, out_act in (("softmax_cross_entropy", "sigmoid"), ("mse", "sigmoid"), ("mse", "identity"))
]


def small_net(activation="tanh", output="softmax_cross_entropy", output_activation="sigmoid", dropout=0.0):
    model = MLP([6, 5, 4, 3], activation, output, output_activation, dropout, dtype=np.float64)
    model.init(np.random.default_rng(0), "xavier")
    model.params[model.n_weights :] = np.random.default_rng(1).normal(
        size=model.params.size - model.n_weights
    )
    rng = np.random.default_rng(2)
    X = rng.normal(size=(7, 6))
    Y = np.eye(3)[rng.integers(0, 3, 7)]
    return model, X, Y


@pytest.mark.parametrize(("activation", "output", "output_activation"), COMBINATIONS)
def test_delta_equations_match_central_differences(activation, output, output_activation):
    model, X, Y = small_net(activation, output, output_activation)
    loss, grad_X = model.loss_and_grad(X, Y, weight_decay=0.01, input_grad=True)
    analytic = model.grads.copy()
    numeric = numerical_gradient(lambda: model.loss(X, Y, weight_decay=0.01), model.params)
    assert loss == pytest.approx(model.loss(X, Y, weight_decay=0.01))
    assert relative_error(analytic, numeric) < 1e-6
    assert relative_error(grad_X, numerical_gradient(lambda: model.loss(X, Y, 0.01), X)) < 1e-6


def test_dropout_gradient_with_a_fixed_mask():
    model, X, Y = small_net(dropout=0.5)
    model.loss_and_grad(X, Y, rng=np.random.default_rng(7))
    analytic = model.grads.copy()
    numeric = numerical_gradient(lambda: model.loss(X, Y, rng=np.random.default_rng(7)), model.params)
    assert any(m is not None and (m == 0).any() for m in model.masks)  # something was dropped
    assert relative_error(analytic, numeric) < 1e-6


def test_dropout_keeps_the_expected_activation_and_is_off_without_rng():
    model = MLP([1, 4000, 2], "relu", dropout=0.25, dtype=np.float64)
    model.layers[0].W[...] = 1.0
    model.forward(np.ones((1, 1)), np.random.default_rng(0))
    mask = model.masks[0]
    assert set(np.unique(mask)) == {0.0, 1 / 0.75}
    assert (mask == 0).mean() == pytest.approx(0.25, abs=0.03)
    model.forward(np.ones((1, 1)))
    assert model.masks == [None]


def test_layers_are_views_into_one_flat_buffer_weights_first():
    model = MLP([3, 2, 2], dtype=np.float64)
    assert model.params.size == 3 * 2 + 2 * 2 + 2 + 2
    model.params[:] = np.arange(model.params.size)
    np.testing.assert_array_equal(model.layers[0].W, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(model.layers[1].W, [[6, 7], [8, 9]])
    np.testing.assert_array_equal(model.layers[0].b, [10, 11])
    np.testing.assert_array_equal(model.weights, np.arange(10))
    assert np.shares_memory(model.layers[1].grad_b, model.grads)


@pytest.mark.parametrize(("scheme", "std"), [("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(2 / 700))])
def test_initialisation_scale(scheme, std):
    model = MLP([400, 300, 10], dtype=np.float64)
    model.init(np.random.default_rng(0), scheme)
    assert model.layers[0].W.std() == pytest.approx(std, rel=0.02)
    assert (model.layers[0].b == 0).all()


def test_weight_decay_adds_half_lambda_squared_norm_of_weights_only():
    model, X, Y = small_net()
    expected = 0.5 * 0.1 * sum(float((layer.W**2).sum()) for layer in model.layers)
    assert model.loss(X, Y, 0.1) - model.loss(X, Y) == pytest.approx(expected)
