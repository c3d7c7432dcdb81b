"""Output layers: the loss C of a batch and the output delta δ^L = ∂C/∂z^L (equations.md §2–3).

Stated once for the whole project: the loss of a batch is the mean over its B examples,
C = (1/B) Σ_b C_b. So δ^L here carries the factor 1/B, and the delta recursion and
dW = Δᵀ A_prev that follow give the gradient of that mean. Targets Y are (B, classes)
rows that sum to 1: one-hot labels, or soft labels.
"""

import numpy as np

from mlpcli.nn.activations import ACTIVATIONS, Activation
from mlpcli.nn.graph import Graph


class Output:
    name: str
    score_name = "score"  # what `scores` are: softmax's are probabilities, mse's are not

    def predict(self, z: np.ndarray) -> np.ndarray:
        """The network's output ŷ (or a^L) from the logits z^L."""
        raise NotImplementedError

    def scores(self, z: np.ndarray) -> np.ndarray:
        """How much the network believes in each class, summing to 1 over the classes: ŷ for
        softmax, the probabilities; for mse, which has no probabilities, the outputs a^L
        clipped at 0 and scaled to sum to 1 (scores, and said to be so)."""
        a = np.maximum(self.predict(z), 0)
        total = a.sum(axis=1, keepdims=True)
        return np.divide(a, total, out=np.full_like(a, 1 / a.shape[1]), where=total > 0)

    def loss(self, z: np.ndarray, y: np.ndarray) -> float:
        """C: the mean loss over the batch."""
        return self.loss_and_delta(z, y)[0]

    def loss_and_delta(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """C and δ^L = ∂C/∂z^L, sharing the work of the forward output."""
        raise NotImplementedError

    def onnx_predict(self, graph: Graph, z: str) -> str:
        """`predict` as ONNX nodes on the logits `z` [N, classes] (mlp export)."""
        raise NotImplementedError

    def onnx_scores(self, graph: Graph, z: str, classes: int) -> str:
        """`scores` as ONNX nodes: a = max(ŷ, 0), then a / Σ_k a_k, or 1/classes where that sum is 0."""
        a = graph.node("Relu", self.onnx_predict(graph, z))
        total = graph.node(
            "ReduceSum", a, graph.constant("class_axis", np.array([1], dtype=np.int64)), keepdims=1
        )
        positive = graph.node("Greater", total, graph.constant("zero", np.float32(0)))
        uniform = graph.constant("uniform", np.float32(1 / classes))
        return graph.node("Where", positive, graph.node("Div", a, total), uniform)

    def __repr__(self) -> str:
        return self.name


class SoftmaxCrossEntropy(Output):
    """ŷ = softmax(z), C = -Σ_k y_k log ŷ_k, δ^L = ŷ - y (for any y that sums to 1)."""

    name = "softmax_cross_entropy"
    score_name = "probability"

    @staticmethod
    def _parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z - max(z) (exp never overflows, ŷ is unchanged), its exp, and the row sums Σ_k exp."""
        shifted = z - z.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return shifted, exp, exp.sum(axis=1, keepdims=True)

    def predict(self, z):
        _, exp, total = self._parts(z)
        exp /= total  # ŷ_i = exp(z_i) / Σ_k exp(z_k)
        return exp

    def scores(self, z):
        return self.predict(z)

    def onnx_predict(self, graph, z):
        return graph.node("Softmax", z, axis=1)  # ŷ = softmax(z), each row

    def onnx_scores(self, graph, z, classes):
        return self.onnx_predict(graph, z)

    def loss_and_delta(self, z, y):
        shifted, delta, total = self._parts(z)
        # -Σ_k y_k log ŷ_k = log Σ_k exp(z_k) - Σ_k y_k z_k, as Σ_k y_k = 1
        loss = float(np.mean(np.log(total[:, 0]) - np.einsum("bk,bk->b", y, shifted)))
        delta /= total  # ŷ
        delta -= y  # δ^L = ŷ - y
        delta /= len(z)  # the 1/B of the batch mean
        return loss, delta


class MeanSquaredError(Output):
    """a = σ(z), C = ½‖a - y‖², δ^L = (a - y) ⊙ σ'(z)."""

    name = "mse"

    def __init__(self, activation: Activation):
        self.activation = activation

    def predict(self, z):
        return self.activation.forward(z)

    def onnx_predict(self, graph, z):
        return graph.node(self.activation.onnx_op, z)  # a = σ(z)

    def loss_and_delta(self, z, y):
        a = self.predict(z)
        error = a - y
        loss = float(0.5 * np.einsum("bk,bk->", error, error) / len(z))
        self.activation.backward(error, a)  # δ^L = (a - y) ⊙ σ'(z)
        error /= len(z)  # the 1/B of the batch mean
        return loss, error

    def __repr__(self) -> str:
        return f"mse({self.activation})"


OUTPUTS = ("softmax_cross_entropy", "mse")
OUTPUT_ACTIVATIONS = ("sigmoid", "identity")  # what mse may follow


def make_output(name: str, activation: str = "sigmoid") -> Output:
    """The output layer a config names: softmax_cross_entropy, or mse after `activation`."""
    if name == "softmax_cross_entropy":
        return SoftmaxCrossEntropy()
    return MeanSquaredError(ACTIVATIONS[activation])
