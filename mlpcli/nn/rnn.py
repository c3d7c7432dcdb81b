"""A vanilla RNN and back-propagation through time (equations.md §6).

    z^(t) = U x^(t) + W h^(t-1) + b,   h^(t) = tanh(z^(t)),   o^(t) = V h^(t) + c,
    ŷ^(t) = softmax(o^(t)),            L = Σ_t CE(ŷ^(t), y^(t))

One sequence at a time; row t of `xs` is x^(t) and row t of `ys` is y^(t), a one-hot or
soft label. h^(0) = 0. Note L is a sum over time steps, not a mean.
"""

import numpy as np

from mlpcli.nn.losses import SoftmaxCrossEntropy
from mlpcli.nn.params import carve, flat_size

SOFTMAX_CE = SoftmaxCrossEntropy()


class VanillaRNN:
    def __init__(self, n_input: int, n_hidden: int, n_output: int, dtype: type = np.float64):
        shapes = {
            "U": (n_hidden, n_input),
            "W": (n_hidden, n_hidden),
            "b": (n_hidden,),
            "V": (n_output, n_hidden),
            "c": (n_output,),
        }
        self.params = np.zeros(flat_size(list(shapes.values())), dtype=dtype)
        self.grads = np.zeros_like(self.params)
        self.U, self.W, self.b, self.V, self.c = carve(self.params, list(shapes.values()))
        grads = carve(self.grads, list(shapes.values()))
        self._tensors = {
            name: (p, g) for name, p, g in zip(shapes, (self.U, self.W, self.b, self.V, self.c), grads)
        }
        self.hs = np.zeros((0, n_hidden), dtype=dtype)  # h^(0), …, h^(T), kept for BPTT

    def tensors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """U, W, b, V, c, each with its gradient."""
        return self._tensors

    def init(self, rng: np.random.Generator) -> None:
        """Matrices ~ N(0, 1/fan_in), biases 0."""
        for tensor, _ in self._tensors.values():
            tensor[...] = (
                rng.standard_normal(tensor.shape) / np.sqrt(tensor.shape[1]) if tensor.ndim == 2 else 0
            )

    def forward(self, xs: np.ndarray) -> np.ndarray:
        """The logits o^(1…T) as rows (T, n_output); keeps h^(0…T)."""
        T = len(xs)
        self.hs = np.zeros((T + 1, self.W.shape[0]), dtype=self.params.dtype)
        for t in range(1, T + 1):
            z = self.U @ xs[t - 1] + self.W @ self.hs[t - 1] + self.b  # z^(t) = U x + W h^(t-1) + b
            self.hs[t] = np.tanh(z)  # h^(t) = tanh(z^(t))
        return self.hs[1:] @ self.V.T + self.c  # o^(t) = V h^(t) + c

    def loss(self, xs: np.ndarray, ys: np.ndarray) -> float:
        """L = Σ_t CE(ŷ^(t), y^(t)) (the CE's batch mean times T)."""
        return SOFTMAX_CE.loss(self.forward(xs), ys) * len(xs)

    def loss_and_grad(self, xs: np.ndarray, ys: np.ndarray) -> float:
        """L, with `grads` filled by back-propagation through time."""
        os = self.forward(xs)
        errors = SOFTMAX_CE.predict(os) - ys  # ŷ^(t) - y^(t) = ∂L/∂o^(t), rows (T, n_output)
        H = self.hs[1:]
        grad = {name: g for name, (_, g) in self._tensors.items()}
        np.matmul(errors.T, H, out=grad["V"])  # ∂L/∂V = Σ_t (ŷ - y)(h^(t))ᵀ
        np.sum(errors, axis=0, out=grad["c"])  # ∂L/∂c = Σ_t (ŷ - y)
        for name in ("U", "W", "b"):
            grad[name][...] = 0
        r_next = np.zeros(self.W.shape[0], dtype=self.params.dtype)  # diag(1 - h²) δ at t+1
        for t in range(len(xs), 0, -1):
            delta = self.delta_step(errors[t - 1], r_next)  # δ^(t) = ∂L/∂h^(t)
            r = (1 - self.hs[t] ** 2) * delta  # diag(1 - (h^(t))²) δ^(t)
            grad["W"] += np.outer(r, self.hs[t - 1])  # ∂L/∂W += r (h^(t-1))ᵀ
            grad["b"] += r  # ∂L/∂b += r
            grad["U"] += np.outer(r, xs[t - 1])  # ∂L/∂U += r (x^(t))ᵀ
            r_next = r
        return SOFTMAX_CE.loss(os, ys) * len(xs)

    def delta_step(self, error: np.ndarray, r_next: np.ndarray) -> np.ndarray:
        """δ^(t) = Vᵀ (ŷ^(t) - y^(t)) + Wᵀ diag(1 - (h^(t+1))²) δ^(t+1); at t = T, r_next = 0."""
        return self.V.T @ error + self.W.T @ r_next

    def __repr__(self) -> str:
        return f"VanillaRNN({self.U.shape[1]} → {self.W.shape[0]} → {self.V.shape[0]}, tanh)"
