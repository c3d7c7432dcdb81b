"""Vanilla RNNs and back-propagation through time (equations.md §6): VanillaRNN, one sequence
with an output at every step, as derived; RNN, the many-to-one classifier `mlp train` trains
(model.kind: rnn), a whole batch at once.

VanillaRNN:

    z^(t) = U x^(t) + W h^(t-1) + b,   h^(t) = tanh(z^(t)),   o^(t) = V h^(t) + c,
    ŷ^(t) = softmax(o^(t)),            L = Σ_t CE(ŷ^(t), y^(t))

One sequence at a time; row t of `xs` is x^(t) and row t of `ys` is y^(t), a one-hot or
soft label. h^(0) = 0. Note L is a sum over time steps, not a mean.
"""

import numbers

import numpy as np

from mlpcli.errors import ConfigError
from mlpcli.nn.activations import ACTIVATIONS
from mlpcli.nn.base import Layout, ModelSection, Network, Spec
from mlpcli.nn.graph import Graph
from mlpcli.nn.layers import INITS, dropout_mask, scratch
from mlpcli.nn.losses import SoftmaxCrossEntropy, make_output
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


RECURRENT_INITS = ("orthogonal", "identity", "xavier")  # how W starts (RNN.init)


class RNN(Network):
    """A many-to-one vanilla RNN over a whole batch (equations.md §6b): an image's rows are its
    time steps x^(1…T), the last hidden state alone is read out,

        z^(t) = U x^(t) + W h^(t-1) + b,   h^(t) = σ(z^(t)),   h^(0) = 0,   o = V h^(T) + c,

    and the output layer's loss (softmax cross-entropy: the batch mean) follows o. Inputs are
    (B, T·D) batches of flattened images, as the MLP's. Arrays are kept time-major, (T, B, ·):
    each step's rows sit together, so the only loop is the one over the T steps. All weights
    and biases live in one flat buffer laid out [U, W, V, b, c] (weights first: weight decay
    acts on one slice), gradients likewise; the per-step buffers are reused from batch to
    batch (layers.scratch)."""

    kind = "rnn"
    INPUT_WEIGHTS = "U"  # its rows read one row of the image
    SPEC_INTS = ("steps",)  # sizes [T·D, H, K] and T: the weights file's entries

    def __init__(
        self,
        steps: int,
        n_input: int,
        n_hidden: int,
        n_classes: int,
        activation: str = "tanh",
        output: str = "softmax_cross_entropy",
        output_activation: str = "sigmoid",
        dropout: float = 0.0,
        dtype: type = np.float32,
    ):
        """`steps` T and `n_input` D: each input is T rows of D values."""
        self.steps, self.n_input = steps, n_input
        self.sizes = [steps * n_input, n_hidden, n_classes]  # inputs, units, outputs: as an MLP's
        self.activation = ACTIVATIONS[activation]
        self.output = make_output(output, output_activation)
        self.dropout = dropout
        named = self.layout_of({"sizes": self.sizes, "steps": steps})
        layout = list(named.values())
        self.n_weights = flat_size([named[name] for name in ("U", "W", "V")])
        self.params = np.zeros(flat_size(layout), dtype=dtype)
        self.grads = np.zeros_like(self.params)
        tensors = dict(zip(named, zip(carve(self.params, layout), carve(self.grads, layout))))
        self._tensors = {name: tensors[name] for name in ("U", "W", "b", "V", "c")}
        self.U, self.W, self.b, self.V, self.c = (tensor for tensor, _ in self._tensors.values())
        self.buffers: dict[str, np.ndarray] = {}
        self.xs = self.hs = self.h_read = np.zeros((0, 0, 0), dtype=dtype)  # kept by forward
        self.mask: np.ndarray | None = None  # dropout mask of h^(T)
        self.deltas: list[np.ndarray] = []  # [δ] of the output, of the last backward pass
        self.step_deltas: np.ndarray | None = None  # r^(1…T) of the last backward pass, (T, B, H)

    @classmethod
    def spec_from_config(cls, m: ModelSection, image_shape: tuple[int, int], n_classes: int) -> Spec:
        """An image's rows as the steps, `m.hidden`'s one width as the units, a class out."""
        if len(m.hidden) != 1:
            raise ConfigError(
                f"model.kind = rnn has one recurrent layer, so model.hidden is its one width, such"
                f" as [128] (it is {m.hidden})"
            )
        rows, columns = image_shape
        outputs = {"activation": m.activation, "output": m.output, "output_activation": m.output_activation}
        return {"sizes": [rows * columns, m.hidden[0], n_classes], "steps": rows} | outputs

    @classmethod
    def layout_of(cls, spec: Spec) -> Layout:
        """The weights U, W, V first (weight decay acts on one slice), then the biases b, c."""
        sizes, steps = spec["sizes"], spec.get("steps")
        if len(sizes) != 3:
            raise ValueError(f"an rnn's sizes are [inputs, units, outputs], not {sizes}")
        if (
            not isinstance(steps, numbers.Integral)
            or isinstance(steps, bool)
            or steps < 1
            or sizes[0] % steps
        ):
            found = "missing" if steps is None else repr(steps)
            raise ValueError(f"an rnn's steps should divide its {sizes[0]} inputs, found {found}")
        (_, H, K), D = sizes, sizes[0] // steps
        return {"U": (H, D), "W": (H, H), "V": (K, H), "b": (H,), "c": (K,)}

    @classmethod
    def from_spec(cls, spec: Spec, dropout: float = 0.0, dtype: type = np.float32) -> "RNN":
        (n_inputs, H, K), T = spec["sizes"], spec["steps"]
        outputs = spec["activation"], spec["output"], spec["output_activation"]
        return cls(T, n_inputs // T, H, K, *outputs, dropout, dtype)

    def initialise(self, rng: np.random.Generator, m: ModelSection) -> None:
        self.init(rng, m.init, m.recurrent_init)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.steps, self.n_input)

    @property
    def short_name(self) -> str:
        """rnn 28×28-128-10 tanh softmax_cross_entropy"""
        _, units, classes = self.sizes
        return f"rnn {self.steps}×{self.n_input}-{units}-{classes} {self.activation} {self.output}"

    def hidden_outputs_shown(self) -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
        """h^(T), the state the answer is read from, and h^(1…T), the state after each row."""
        states = [h[0] for h in self.hidden_outputs]
        return states[-1:], [f"h({self.steps}), the state the answer is read from"], states

    def tensors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """U, W, b, V, c, each with its gradient."""
        return self._tensors

    @property
    def hidden_outputs(self) -> list[np.ndarray]:
        """h^(1…T) of the last forward pass, a (B, H) array per step."""
        return list(self.hs[1:])

    def init(self, rng: np.random.Generator, scheme: str = "xavier", recurrent: str = "orthogonal") -> None:
        """U and V ~ N(0, std²) with the std of `scheme`; W orthogonal (uniform over the orthogonal
        matrices: every singular value 1, so errors carried back through W keep their size), the
        identity (IRNN, Le et al. 2015: with relu, h^(t) starts as a running sum of U x) or
        ~ N(0, std²) too; b = c = 0."""
        for M in (self.U, self.V):
            n_out, n_in = M.shape
            M[...] = rng.standard_normal((n_out, n_in)) * INITS[scheme](n_in, n_out)
        H = self.W.shape[0]
        if recurrent == "orthogonal":
            Q, R = np.linalg.qr(rng.standard_normal((H, H)))
            self.W[...] = Q * np.sign(np.diag(R))  # signs fixed: Q uniform (Haar) over O(H)
        elif recurrent == "identity":
            self.W[...] = np.eye(H)
        else:
            self.W[...] = rng.standard_normal((H, H)) * INITS[recurrent](H, H)
        self.b[...] = self.c[...] = 0

    def forward(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The logits o (B, n_classes) of the batch X (B, T·D); keeps x^(t) and h^(0…T) for
        BPTT. With `rng`, h^(T) is dropped out on its way to V (inverted dropout)."""
        (B, _), T, D, H = X.shape, self.steps, self.n_input, self.W.shape[0]
        xs = self._time_major("xs", T, B, D)
        np.copyto(xs, X.reshape(B, T, D).transpose(1, 0, 2))  # x^(t) = row t of every image
        hs_flat = self._flat("hs", (T + 1) * B * H)
        hs = hs_flat.reshape(T + 1, B, H)  # h^(0…T)
        hs[0] = 0
        np.matmul(xs.reshape(T * B, D), self.U.T, out=hs_flat[B * H :].reshape(T * B, H))  # U x^(t), all t
        hs[1:] += self.b
        carried = scratch(self.buffers, "carried", (B, H), X.dtype)
        for t in range(1, T + 1):
            hs[t] += np.matmul(hs[t - 1], self.W.T, out=carried)  # z^(t) = U x^(t) + b + W h^(t-1)
            self.activation.forward(hs[t], out=hs[t])  # h^(t) = σ(z^(t))
        self.xs, self.hs = xs, hs
        self.mask = dropout_mask(self.buffers, "h", hs[T], self.dropout, rng)
        self.h_read = hs[T]
        if self.mask is not None:
            self.h_read = np.multiply(hs[T], self.mask, out=scratch(self.buffers, "dropped", (B, H), X.dtype))
        logits = scratch(self.buffers, "o", (B, self.sizes[-1]), X.dtype)
        np.matmul(self.h_read, self.V.T, out=logits)
        logits += self.c  # o = V h^(T) + c
        return logits

    def backward(
        self, delta: np.ndarray, weight_decay: float = 0.0, input_grad: bool = False, param_grads: bool = True
    ):
        """Fill `grads` from δ = ∂C/∂o (B, n_classes) by back-propagation through time:
        r^(T) = (Vᵀ δ) ⊙ σ'(z^(T)), r^(t) = (Wᵀ r^(t+1)) ⊙ σ'(z^(t)), where r^(t) = ∂C/∂z^(t);
        then every weight's gradient sums its step's r^(t) times that step's input. Returns
        ∂C/∂X when `input_grad`; `param_grads=False`: the recursion alone (`grads` untouched)."""
        T, (B, H) = self.steps, self.hs.shape[1:]
        slopes = self._flat("slopes", T * B * H).reshape(T, B, H)
        self.activation.derivative(self.hs[1:], out=slopes)  # σ'(z^(t)) for every t at once
        rs_flat = self._flat("rs", T * B * H)
        rs = rs_flat.reshape(T, B, H)  # r^(1…T)
        np.matmul(delta, self.V, out=rs[T - 1])  # ∂C/∂h^(T) = Vᵀ δ, row-wise
        if self.mask is not None:
            rs[T - 1] *= self.mask  # through the dropout of h^(T)
        rs[T - 1] *= slopes[T - 1]  # r^(T) = ∂C/∂h^(T) ⊙ σ'(z^(T))
        for t in range(T - 1, 0, -1):  # rs[t - 1] is r^(t)
            np.matmul(rs[t], self.W, out=rs[t - 1])  # ∂C/∂h^(t) = Wᵀ r^(t+1), row-wise
            rs[t - 1] *= slopes[t - 1]  # r^(t) = ∂C/∂h^(t) ⊙ σ'(z^(t))
        self.deltas, self.step_deltas = [delta], rs
        if param_grads:
            self._param_grads(delta, rs_flat.reshape(T * B, H), weight_decay)
        if not input_grad:
            return None
        grad_xs = np.matmul(rs_flat.reshape(T * B, H), self.U).reshape(T, B, self.n_input)  # Uᵀ r^(t)
        return grad_xs.transpose(1, 0, 2).reshape(B, T * self.n_input)  # back to rows of images

    def _param_grads(self, delta: np.ndarray, rs: np.ndarray, weight_decay: float) -> None:
        """∂C/∂V = δᵀ h^(T), ∂C/∂c = Σ_batch δ, and the sums over time of §6b, each one matrix
        product over all (t, example) rows at once; then the weight decay λ·(U, W, V)."""
        grad = {name: g for name, (_, g) in self._tensors.items()}
        (T, B, H), D = self.xs.shape[:2] + (self.W.shape[0],), self.n_input
        np.matmul(delta.T, self.h_read, out=grad["V"])  # ∂C/∂V = δᵀ h^(T)
        np.sum(delta, axis=0, out=grad["c"])  # ∂C/∂c = Σ_batch δ
        np.matmul(rs.T, self.xs.reshape(T * B, D), out=grad["U"])  # ∂C/∂U = Σ_t r^(t) (x^(t))ᵀ
        h_before = self.hs[1:T].reshape((T - 1) * B, H)  # h^(1…T-1); h^(0) = 0 adds nothing
        np.matmul(rs[B:].T, h_before, out=grad["W"])  # ∂C/∂W = Σ_t r^(t) (h^(t-1))ᵀ
        np.sum(rs, axis=0, out=grad["b"])  # ∂C/∂b = Σ_t r^(t)
        self.add_weight_decay(weight_decay)  # on U, W and V

    def onnx_forward(self, graph: Graph, x: str) -> str:
        """x [N, T, D] → time-major [T, N, D] → ONNX's RNN operator, whose equation is §6b's,
        h^(t) = σ(U x^(t) + W h^(t-1) + b) with h^(0) = 0 (its weights W = U, R = W and bias
        [b, 0]) → its last state h^(T) → o = V h^(T) + c as a Gemm."""
        H = self.W.shape[0]
        rows = graph.node("Transpose", x, perm=[1, 0, 2])
        bias = np.concatenate([self.b, np.zeros(H, self.b.dtype)])[None]  # ONNX adds two biases
        h_last = graph.node(
            "RNN",
            rows,
            graph.constant("U", self.U[None]),
            graph.constant("W", self.W[None]),
            graph.constant("b", bias),
            skipped_outputs=1,  # every h^(t): not needed, only h^(T)
            hidden_size=H,
            activations=[self.activation.onnx_op],
        )
        h = graph.node("Squeeze", h_last, graph.constant("direction_axis", np.array([0], dtype=np.int64)))
        V, c = graph.constant("V", self.V), graph.constant("c", self.c)
        return graph.node("Gemm", h, V, c, transB=1)

    def _flat(self, name: str, size: int) -> np.ndarray:
        return scratch(self.buffers, name, (size,), self.params.dtype)

    def _time_major(self, name: str, T: int, B: int, width: int) -> np.ndarray:
        return self._flat(name, T * B * width).reshape(T, B, width)

    def __repr__(self) -> str:
        T, D, (_, H, K) = self.steps, self.n_input, self.sizes
        return f"RNN({T} steps of {D} → {H} → {K}, {self.activation}, {self.output})"
