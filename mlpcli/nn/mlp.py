"""The multilayer perceptron: a stack of dense layers, forward and the delta recursion
backward (equations.md §4).

All weights and biases live in one flat buffer `params` laid out [W¹, W², …, b¹, b², …]
(gradients likewise in `grads`): the optimizer updates one array, weight decay touches
one contiguous slice, and gradient checking perturbs entries of one vector.
"""

import numpy as np

from mlpcli.errors import ConfigError
from mlpcli.nn.activations import ACTIVATIONS
from mlpcli.nn.base import Layout, ModelSection, Network, Spec
from mlpcli.nn.graph import Graph
from mlpcli.nn.layers import INITS, Dense, dropout_mask, scratch
from mlpcli.nn.losses import make_output
from mlpcli.nn.params import carve, flat_size


class MLP(Network):
    kind = "mlp"
    INPUT_WEIGHTS = "W1"

    def __init__(
        self,
        sizes: list[int],
        activation: str = "relu",
        output: str = "softmax_cross_entropy",
        output_activation: str = "sigmoid",
        dropout: float = 0.0,
        dtype: type = np.float32,
    ):
        """`sizes` = [n_input, hidden widths…, n_classes]."""
        self.sizes = list(sizes)
        self.activation = ACTIVATIONS[activation]
        self.output = make_output(output, output_activation)
        self.dropout = dropout
        layout = list(self.layout_of({"sizes": sizes}).values())
        self.n_weights = flat_size(layout[: len(layout) // 2])
        self.params = np.zeros(flat_size(layout), dtype=dtype)
        self.grads = np.zeros_like(self.params)
        Ws, bs = _split(carve(self.params, layout))
        grad_Ws, grad_bs = _split(carve(self.grads, layout))
        self.layers = [Dense(*tensors) for tensors in zip(Ws, bs, grad_Ws, grad_bs)]
        self.hidden_outputs: list[np.ndarray] = []  # a^l of each hidden layer, kept for backward
        self.masks: list[np.ndarray | None] = []  # dropout mask of each hidden layer
        self.deltas: list[np.ndarray] = []  # δ^1, …, δ^L of the last backward pass
        self.step_deltas = None
        self.buffers: dict[str, np.ndarray] = {}  # reused from batch to batch (layers.scratch)

    @classmethod
    def spec_from_config(cls, m: ModelSection, image_shape: tuple[int, int], n_classes: int) -> Spec:
        """An image's pixels in, `m.hidden`'s widths, a class out."""
        if m.dropout and not m.hidden:
            raise ConfigError(
                f"model.dropout = {m.dropout} drops hidden activations, and model.hidden = [] has none:"
                " set model.dropout=0 (configs/softmax_regression.yaml does)"
            )
        sizes = [image_shape[0] * image_shape[1], *m.hidden, n_classes]
        return {
            "sizes": sizes,
            "activation": m.activation,
            "output": m.output,
            "output_activation": m.output_activation,
        }

    @classmethod
    def layout_of(cls, spec: Spec) -> Layout:
        """[W¹, W², …, b¹, b², …] (W^l is out × in), numbered from the input as in the equations."""
        pairs = list(enumerate(zip(spec["sizes"][:-1], spec["sizes"][1:]), start=1))
        weights = {f"W{l}": (n_out, n_in) for l, (n_in, n_out) in pairs}
        return weights | {f"b{l}": (n_out,) for l, (_, n_out) in pairs}

    @classmethod
    def from_spec(cls, spec: Spec, dropout: float = 0.0, dtype: type = np.float32) -> "MLP":
        outputs = spec["activation"], spec["output"], spec["output_activation"]
        return cls(spec["sizes"], *outputs, dropout, dtype)

    def initialise(self, rng: np.random.Generator, m: ModelSection) -> None:
        self.init(rng, m.init)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.sizes[0],)

    @property
    def short_name(self) -> str:
        """784-512-512-10 relu softmax_cross_entropy (softmax regression has no activation)."""
        hidden = f" {self.activation}" if len(self.sizes) > 2 else ""
        return f"{'-'.join(map(str, self.sizes))}{hidden} {self.output}"

    def hidden_outputs_shown(self) -> tuple[list[np.ndarray], list[str], None]:
        activations = [a[0] for a in self.hidden_outputs]
        return activations, [f"hidden layer {l}" for l in range(1, len(activations) + 1)], None

    def tensors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """W1, b1, W2, … (numbered from the input, as in the equations), each with its gradient."""
        named = {}
        for i, layer in enumerate(self.layers, start=1):
            named[f"W{i}"] = (layer.W, layer.grad_W)
            named[f"b{i}"] = (layer.b, layer.grad_b)
        return named

    def init(self, rng: np.random.Generator, scheme: str = "he") -> None:
        """W ~ N(0, std²) with the std of `scheme`; b = 0."""
        for layer in self.layers:
            n_out, n_in = layer.shape
            layer.W[...] = rng.standard_normal((n_out, n_in)) * INITS[scheme](n_in, n_out)
            layer.b[...] = 0

    def forward(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Z^L, the logits (B, n_classes), of the batch X (B, n_input). With `rng`, each hidden
        activation is dropped with probability `dropout` (inverted dropout: survivors scaled
        by 1/(1-p)); without it (evaluation) nothing is dropped."""
        self.hidden_outputs, self.masks = [], []
        A = X
        for l, layer in enumerate(self.layers[:-1], start=1):
            Z = layer.forward(A)
            A = self.activation.forward(Z, out=Z)  # a^l = σ(z^l), in place
            self.hidden_outputs.append(A)
            mask = dropout_mask(self.buffers, f"{l}", A, self.dropout, rng)
            self.masks.append(mask)
            if mask is not None:
                A = np.multiply(A, mask, out=scratch(self.buffers, f"dropped{l}", A.shape, A.dtype))
        return self.layers[-1].forward(A)

    def backward(
        self, delta: np.ndarray, weight_decay: float = 0.0, input_grad: bool = False, param_grads: bool = True
    ):
        """Fill `grads` from δ^L = ∂C/∂Z^L (B, n_classes) by the delta recursion
        δ^l = ((W^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l); return ∂C/∂X when `input_grad`.
        `param_grads=False`: the recursion alone, for ∂C/∂X only (`grads` is left as it is)."""
        self.deltas = [delta]  # δ^L, then each δ^l in the buffer it is computed in
        for l in range(len(self.layers) - 1, 0, -1):
            delta = self.layers[l].backward(delta, param_grads=param_grads)  # (W^{l+1})ᵀ δ^{l+1}, row-wise
            if self.masks[l - 1] is not None:
                delta *= self.masks[l - 1]  # through the dropout of a^l
            self.activation.backward(delta, self.hidden_outputs[l - 1])  # ⊙ σ'(z^l)
            self.deltas.insert(0, delta)
        grad_input = self.layers[0].backward(delta, input_grad, param_grads)
        if param_grads:
            self.add_weight_decay(weight_decay)
        return grad_input

    def onnx_forward(self, graph: Graph, x: str) -> str:
        """z^l = W^l a^{l-1} + b^l as Gemm(a, W, b) with W transposed (it is stored out × in),
        a^l = σ(z^l), layer after layer; the last z^L, the logits."""
        a = x
        for l, layer in enumerate(self.layers, start=1):
            W, b = graph.constant(f"W{l}", layer.W), graph.constant(f"b{l}", layer.b)
            z = graph.node("Gemm", a, W, b, transB=1)
            a = z if l == len(self.layers) else graph.node(self.activation.onnx_op, z)
        return a

    def __repr__(self) -> str:
        return f"MLP({' → '.join(map(str, self.sizes))}, {self.activation}, {self.output})"


def _split(views: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """[W¹, …, Wᴸ, b¹, …, bᴸ] → ([W¹, …, Wᴸ], [b¹, …, bᴸ])."""
    half = len(views) // 2
    return views[:half], views[half:]
