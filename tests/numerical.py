"""Central differences in float64 (equations.md §7), for the tests' own checks."""

import numpy as np


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """g_i ≈ (f(x + ε e_i) - f(x - ε e_i)) / 2ε for every entry of x (x is restored)."""
    grad = np.zeros_like(x)
    flat, g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        g[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, n: np.ndarray) -> float:
    """max |a - n| / max(|a| + |n|, tiny)."""
    return float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-12)))
