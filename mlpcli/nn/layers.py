"""A dense layer, z^l = W^l a^{l-1} + b^l (equations.md §1 and §4).

W is stored (n_out, n_in) as in the derivations; a batch stacks examples as rows, so the
forward pass is Z = A_prev Wᵀ + b. W, b and their gradients are views into the network's
flat parameter and gradient buffers, so an optimizer step touches one array. Z and ∂C/∂A_prev
are written into buffers the layer keeps and reuses from batch to batch: an array a layer
returns holds until the layer's next call.
"""

import numpy as np

INITS = {  # the std of a weight matrix's entries drawn at random, by the scheme's name
    "he": lambda n_in, n_out: np.sqrt(2.0 / n_in),  # for relu layers
    "xavier": lambda n_in, n_out: np.sqrt(2.0 / (n_in + n_out)),  # for sigmoid / tanh
}


def scratch(buffers: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The buffer `name` of `buffers`, cut to `shape`: reused from call to call, and made anew
    only when a longer first dimension (a larger batch) comes."""
    buffer = buffers.get(name)
    if buffer is None or len(buffer) < shape[0] or buffer.dtype != dtype:
        buffer = buffers[name] = np.empty(shape, dtype=dtype)
    return buffer[: shape[0]]


def dropout_mask(
    buffers: dict[str, np.ndarray], name: str, A: np.ndarray, p: float, rng: np.random.Generator | None
) -> np.ndarray | None:
    """Inverted dropout of the activations A: 1/(1-p) where a unit is kept, 0 where dropped,
    each with probability p (None: nothing is dropped, as without `rng`, in evaluation)."""
    if rng is None or p == 0:
        return None
    keep = 1.0 - p
    uniform = rng.random(dtype=np.float32, out=scratch(buffers, f"uniform{name}", A.shape, np.float32))
    mask = np.less(uniform, keep, out=scratch(buffers, f"mask{name}", A.shape, A.dtype))
    mask *= A.dtype.type(1.0 / keep)
    return mask


class Dense:
    def __init__(self, W: np.ndarray, b: np.ndarray, grad_W: np.ndarray, grad_b: np.ndarray):
        self.W, self.b = W, b  # (n_out, n_in), (n_out,)
        self.grad_W, self.grad_b = grad_W, grad_b
        self.A_prev: np.ndarray | None = None  # kept by forward for backward
        self.buffers: dict[str, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.W.shape

    def forward(self, A_prev: np.ndarray) -> np.ndarray:
        """Z = A_prev Wᵀ + b, (B, n_out); keeps A_prev, (B, n_in)."""
        self.A_prev = A_prev
        Z = np.matmul(A_prev, self.W.T, out=self._buffer("Z", len(A_prev), self.W.shape[0]))
        Z += self.b
        return Z

    def backward(
        self, delta: np.ndarray, input_grad: bool = True, param_grads: bool = True
    ) -> np.ndarray | None:
        """Given Δ = ∂C/∂Z (B, n_out), store ∂C/∂W = Δᵀ A_prev and ∂C/∂b = Σ_batch Δ, and
        return ∂C/∂A_prev = Δ W (B, n_in): the (W^l)ᵀ δ^l of the previous layer's delta.
        `input_grad=False` skips that product where nothing needs it (the first layer);
        `param_grads=False` skips dW and db where only the input's gradient is wanted."""
        if param_grads:
            np.matmul(delta.T, self.A_prev, out=self.grad_W)  # dW = Δᵀ A_prev
            np.sum(delta, axis=0, out=self.grad_b)  # db = Δ summed over the batch
        if not input_grad:
            return None
        out = self._buffer("grad_A_prev", len(delta), self.W.shape[1])
        return np.matmul(delta, self.W, out=out)  # rows of Δ W are (Wᵀ δ)ᵀ

    def _buffer(self, name: str, rows: int, columns: int) -> np.ndarray:
        return scratch(self.buffers, name, (rows, columns), self.W.dtype)

    def __repr__(self) -> str:
        return f"Dense({self.W.shape[1]} → {self.W.shape[0]})"
