"""Activations a = σ(z) and their derivatives σ', written in terms of the activation a
that the forward pass kept (equations.md §4): sigmoid σ' = a(1-a), tanh σ' = 1-a²,
relu σ' = [z > 0] = [a > 0], identity σ' = 1."""

import numpy as np


class Activation:
    name: str
    onnx_op: str  # the ONNX operator that computes it (mlp export)

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """a = σ(z), written into `out` when given (it may be `z` itself)."""
        raise NotImplementedError

    def derivative(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """σ'(z) from a = σ(z), written into `out` when given (a buffer other than `a`)."""
        raise NotImplementedError

    def backward(self, delta: np.ndarray, a: np.ndarray) -> None:
        """delta ⊙= σ'(z), in place: the last factor of δ^l = ((W^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l)."""
        np.multiply(delta, self.derivative(a), out=delta)

    def __repr__(self) -> str:
        return self.name


class ReLU(Activation):
    name = "relu"
    onnx_op = "Relu"

    def forward(self, z, out=None):
        return np.maximum(z, 0, out=out)

    def derivative(self, a, out=None):
        if out is None:
            return (a > 0).astype(a.dtype)  # [z > 0]
        np.copyto(out, a > 0)
        return out

    def backward(self, delta, a):
        np.multiply(delta, a > 0, out=delta)  # δ ⊙ [z > 0]


class Sigmoid(Activation):
    name = "sigmoid"
    onnx_op = "Sigmoid"

    def forward(self, z, out=None):
        out = np.multiply(z, 0.5, out=out)  # σ(z) = (1 + tanh(z/2)) / 2: no overflow
        np.tanh(out, out=out)
        out += 1
        out *= 0.5
        return out

    def derivative(self, a, out=None):
        out = np.subtract(1, a, out=out)
        out *= a  # σ' = a(1 - a)
        return out


class Tanh(Activation):
    name = "tanh"
    onnx_op = "Tanh"

    def forward(self, z, out=None):
        return np.tanh(z, out=out)

    def derivative(self, a, out=None):
        out = np.multiply(a, a, out=out)
        np.subtract(1, out, out=out)  # σ' = 1 - a²
        return out


class Identity(Activation):
    name = "identity"
    onnx_op = "Identity"

    def forward(self, z, out=None):
        if out is None or out is z:
            return z
        out[...] = z
        return out

    def derivative(self, a, out=None):
        if out is None:
            return np.ones_like(a)
        out[...] = 1
        return out

    def backward(self, delta, a):
        pass  # σ' = 1


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (ReLU(), Sigmoid(), Tanh(), Identity())}
HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh")  # the choices for hidden layers
