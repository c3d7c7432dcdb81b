import math

import numpy as np
import pytest
from numerical import numerical_gradient, relative_error

from mlpcli.nn.activations import ACTIVATIONS
from mlpcli.nn.losses import MeanSquaredError, SoftmaxCrossEntropy, make_output

CE = SoftmaxCrossEntropy()


def test_worked_example_of_section_2():
    """ŷ = [.01,.11,.31,.11,.21,.01,.01,.01,.21,.01], y = one-hot(2) → C = -log 0.31."""
    y_hat = np.array([[0.01, 0.11, 0.31, 0.11, 0.21, 0.01, 0.01, 0.01, 0.21, 0.01]])
    y = np.eye(10)[[2]]
    z = np.log(y_hat)  # logits whose softmax is ŷ (ŷ sums to 1)
    np.testing.assert_allclose(CE.predict(z), y_hat)
    assert CE.loss(z, y) == pytest.approx(1.17118, abs=1e-5)
    assert CE.loss(z, y) == pytest.approx(-math.log(0.31))
    _, delta = CE.loss_and_delta(z, y)
    np.testing.assert_allclose(delta, y_hat - y)  # δ^L = ŷ - y (B = 1)


def test_logits_from_the_dense_example_do_not_overflow():
    z = np.array([[1033.0, 1052.0]])  # equations.md §1: exp(1052) overflows float64
    with np.errstate(all="raise"):
        loss = CE.loss(z, np.array([[1.0, 0.0]]))
        y_hat = CE.predict(z)
    assert loss == pytest.approx(19.0, abs=1e-6)  # log(e^1033 + e^1052) - 1033 ≈ 19
    assert np.isfinite(y_hat).all() and y_hat.sum() == pytest.approx(1.0)


def targets(rng, soft: bool):
    if soft:  # soft labels: any rows that sum to 1
        y = rng.random((4, 5))
        return y / y.sum(axis=1, keepdims=True)
    return np.eye(5)[rng.integers(0, 5, 4)]


@pytest.mark.parametrize(
    "output",
    [CE, MeanSquaredError(ACTIVATIONS["sigmoid"]), MeanSquaredError(ACTIVATIONS["identity"])],
    ids=repr,
)
@pytest.mark.parametrize("soft", [False, True])
def test_delta_is_the_gradient_of_the_batch_mean_loss(output, soft):
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(4, 5)), targets(rng, soft)
    loss, delta = output.loss_and_delta(z.copy(), y)
    assert loss == pytest.approx(output.loss(z, y))
    assert relative_error(delta, numerical_gradient(lambda: output.loss(z, y), z)) < 1e-7


def test_mse_value_is_half_the_squared_error_averaged_over_the_batch():
    mse = make_output("mse", "identity")
    z, y = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 1.0]])
    assert mse.loss(z, y) == pytest.approx((0.5 * 5 + 0.5 * 1) / 2)


def test_make_output_names():
    assert repr(make_output("softmax_cross_entropy")) == "softmax_cross_entropy"
    assert repr(make_output("mse", "sigmoid")) == "mse(sigmoid)"
