"""What every network shares: its weights and biases in one flat buffer laid out [weights…,
biases…] (gradients likewise, nn/params.py), weight decay on the weights' slice, and the loss
of a batch through its output layer (equations.md §2–4)."""

import numpy as np

from mlpcli.nn.layers import scratch
from mlpcli.nn.losses import Output


class Network:
    kind: str  # the model.kind that builds it
    sizes: list[int]  # [inputs, …, outputs]
    params: np.ndarray
    grads: np.ndarray
    n_weights: int  # params[:n_weights] are the weights, the rest biases
    output: Output
    dropout: float
    buffers: dict[str, np.ndarray]

    def tensors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each tensor by its name in the equations, with its gradient."""
        raise NotImplementedError

    def forward(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The logits of the batch X; dropout drawn from `rng` when given (training)."""
        raise NotImplementedError

    def backward(
        self, delta: np.ndarray, weight_decay: float = 0.0, input_grad: bool = False, param_grads: bool = True
    ):
        """Fill `grads` from δ = ∂C/∂logits; ∂C/∂X when `input_grad`."""
        raise NotImplementedError

    @property
    def weights(self) -> np.ndarray:
        """All weights (no biases) as one flat view: the part weight decay acts on."""
        return self.params[: self.n_weights]

    def add_weight_decay(self, weight_decay: float) -> None:
        """grads of the weights += λW: ∂/∂W (λ/2)‖W‖² (biases are not decayed)."""
        if weight_decay:
            decay = scratch(self.buffers, "decay", self.weights.shape, self.weights.dtype)
            np.multiply(self.weights, weight_decay, out=decay)
            self.grads[: self.n_weights] += decay

    def penalty(self, weight_decay: float) -> float:
        """(λ/2) Σ‖W‖², the L2 part of the loss (biases are not decayed)."""
        return 0.5 * weight_decay * float(self.weights @ self.weights) if weight_decay else 0.0

    def loss_and_grad(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        weight_decay: float = 0.0,
        rng: np.random.Generator | None = None,
        input_grad: bool = False,
    ):
        """The loss C + (λ/2)Σ‖W‖² of (X, Y) with `grads` filled; also ∂/∂X when asked."""
        loss, delta = self.output.loss_and_delta(self.forward(X, rng), Y)
        grad_input = self.backward(delta, weight_decay, input_grad)
        return loss + self.penalty(weight_decay), grad_input

    def loss(self, X: np.ndarray, Y: np.ndarray, weight_decay: float = 0.0, rng=None) -> float:
        return self.output.loss(self.forward(X, rng), Y) + self.penalty(weight_decay)
