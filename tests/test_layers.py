import numpy as np
from numerical import numerical_gradient, relative_error

from mlpcli.nn.layers import Dense


def dense(W, b):
    W, b = np.array(W, dtype=float), np.array(b, dtype=float)
    return Dense(W, b, np.zeros_like(W), np.zeros_like(b))


def test_worked_example_of_section_1():
    """W = [[4,5,6],[7,8,9]], a = [1,2,3]ᵀ, b = [1001,1002]ᵀ → z = [1033, 1052]ᵀ."""
    layer = dense([[4, 5, 6], [7, 8, 9]], [1001, 1002])
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, 2.0, 3.0]])), [[1033, 1052]])


def test_backward_gives_weight_bias_and_input_gradients():
    rng = np.random.default_rng(1)
    layer = dense(rng.normal(size=(3, 4)), rng.normal(size=3))
    A = rng.normal(size=(5, 4))
    G = rng.normal(size=(5, 3))  # an upstream ∂C/∂Z; C = Σ G ⊙ Z

    def loss():
        return float(np.sum(G * layer.forward(A)))

    layer.forward(A)
    grad_A = layer.backward(G)
    np.testing.assert_allclose(layer.grad_W, G.T @ A)  # dW = Δᵀ A_prev
    np.testing.assert_allclose(layer.grad_b, G.sum(axis=0))  # db summed over the batch
    assert relative_error(layer.grad_W, numerical_gradient(loss, layer.W)) < 1e-7
    assert relative_error(layer.grad_b, numerical_gradient(loss, layer.b)) < 1e-7
    assert relative_error(grad_A, numerical_gradient(loss, A)) < 1e-7


def test_backward_can_skip_the_input_gradient():
    layer = dense(np.ones((2, 3)), np.zeros(2))
    layer.forward(np.ones((1, 3)))
    assert layer.backward(np.ones((1, 2)), input_grad=False) is None
    np.testing.assert_array_equal(layer.grad_W, np.ones((2, 3)))
