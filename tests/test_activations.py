import numpy as np
import pytest
from numerical import numerical_gradient, relative_error

from mlpcli.nn.activations import ACTIVATIONS

# points away from relu's kink at 0, where the derivative is undefined
Z = np.array([-3.0, -1.2, -0.4, 0.3, 0.9, 2.5, 6.0])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_from_the_kept_activation_matches_central_differences(name):
    act = ACTIVATIONS[name]
    z = Z.copy()
    numeric = numerical_gradient(lambda: float(act.forward(z).sum()), z)  # σ acts entrywise
    assert relative_error(act.derivative(act.forward(Z.copy())), numeric) < 1e-6


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backward_multiplies_delta_by_the_derivative_in_place(name):
    act = ACTIVATIONS[name]
    a = act.forward(Z.copy())
    delta = np.linspace(-1, 1, Z.size)
    expected = delta * act.derivative(a)
    act.backward(delta, a)
    np.testing.assert_allclose(delta, expected)


def test_known_values():
    np.testing.assert_allclose(ACTIVATIONS["relu"].forward(np.array([-2.0, 0.0, 3.0])), [0, 0, 3])
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"].forward(np.array([0.0])), [0.5])
    np.testing.assert_allclose(ACTIVATIONS["tanh"].forward(np.array([0.5])), [np.tanh(0.5)])


def test_sigmoid_does_not_overflow_for_large_inputs():
    with np.errstate(all="raise"):
        a = ACTIVATIONS["sigmoid"].forward(np.array([-1000.0, 1000.0], dtype=np.float32))
    np.testing.assert_array_equal(a, [0.0, 1.0])


def test_relu_derivative_is_the_indicator_of_positive_z():
    np.testing.assert_array_equal(ACTIVATIONS["relu"].derivative(np.array([0.0, 0.0, 2.0])), [0, 0, 1])
