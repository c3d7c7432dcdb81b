"""What every kind of network is to its callers (equations.md §2–4): its weights and biases in
one flat buffer laid out [weights…, biases…] (gradients likewise, nn/params.py), weight decay
on the weights' slice, the loss of a batch through its output layer, and how it describes
itself: its kind, the spec a weights file rebuilds it from, its tensors' names and shapes, the
input it reads, its hidden states for display and its name in tables.

A kind of network is a subclass that fills in the methods marked so and is registered in
nn/kinds.py; nothing outside nn/ (and models.py, which turns a config into a network) asks
which kind it holds."""

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from mlpcli.nn.activations import ACTIVATIONS, Activation
from mlpcli.nn.graph import Graph
from mlpcli.nn.layers import scratch
from mlpcli.nn.losses import Output
from mlpcli.nn.params import flat_size


class ModelSection(Protocol):
    """What a kind reads of a config's model section (config.ModelConfig, which nn/ stands
    below and never imports)."""

    hidden: list[int]
    dropout: float
    activation: str
    output: str
    output_activation: str
    init: str
    recurrent_init: str


CHUNK = 10_000  # examples a forward pass takes at once when a whole set is scored
Spec = dict[str, Any]  # what rebuilds a network: sizes, activation, output, … (Network.spec)
Layout = dict[str, tuple[int, ...]]  # tensor name → shape, in the flat buffer's order


class Network:
    """A network of one kind, trained in batches (rows of X are examples).

    Buffer rules, for every kind: the arrays `forward` and `backward` return, the activations
    (applied in place) and `hidden_outputs` are buffers the network reuses, valid until its
    next forward or backward pass; `grads` is rewritten by every backward pass, and an
    optimizer may use it as scratch after its step; a batch of another size allocates the
    buffers anew. So one pass at a time per network (a server holds a lock), and a caller that
    keeps a result copies it: `gradients()` and `copy()` give copies of their own."""

    kind: ClassVar[str]  # the model.kind that builds it, and a weights file's "kind"
    SPEC_INTS: ClassVar[tuple[str, ...]] = ()  # whole numbers its spec holds beside "sizes"
    sizes: list[int]  # [inputs, …, outputs]
    params: np.ndarray
    grads: np.ndarray
    n_weights: int  # params[:n_weights] are the weights, the rest biases
    activation: Activation  # σ of the hidden units
    output: Output
    dropout: float
    buffers: dict[str, np.ndarray]
    hidden_outputs: list[np.ndarray]  # the hidden activations of the last forward pass (buffers)
    deltas: Sequence[np.ndarray] = ()  # δ^l = ∂C/∂z^l of the last backward pass, (B, units) a layer,
    # the first layer's first and the output's last; buffers, as they were computed
    step_deltas: np.ndarray | None = None  # r^(t) = ∂C/∂z^(t) of a kind with steps, (T, B, H); else None
    INPUT_WEIGHTS: ClassVar[str | None] = None  # the tensor whose rows read the input, a unit a row

    # --- what each kind fills in -------------------------------------------------------------

    @classmethod
    def spec_from_config(cls, m: ModelSection, image_shape: tuple[int, int], n_classes: int) -> Spec:
        """The spec of the network the model section `m` describes for images of `image_shape`
        (rows, columns) and `n_classes` classes; a ConfigError when its keys contradict each other."""
        raise NotImplementedError

    @classmethod
    def layout_of(cls, spec: Spec) -> Layout:
        """The tensors of the network `spec` describes, names and shapes in the flat buffer's
        order (weights first), known before anything is allocated; ValueError, saying why, when
        the spec contradicts itself."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: Spec, dropout: float = 0.0, dtype: type = np.float32) -> "Network":
        """The network `spec` describes, its weights all zero (to be initialised or loaded)."""
        raise NotImplementedError

    def initialise(self, rng: np.random.Generator, m: ModelSection) -> None:
        """Draw the weights as the model section `m` says (model.init, …)."""
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...]:
        """What one example is to this network: (784,) values, or (T, D), T rows of D."""
        raise NotImplementedError

    @property
    def short_name(self) -> str:
        """Its name in tables and titles: 784-512-10 relu softmax_cross_entropy."""
        raise NotImplementedError

    def hidden_outputs_shown(self) -> tuple[list[np.ndarray], list[str], list[np.ndarray] | None]:
        """For display, of the first example of the last forward pass: the hidden layers'
        activations and their names, and the states it went through one step at a time
        (None for a network with no steps)."""
        raise NotImplementedError

    def tensors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each tensor by its name in the equations, with its gradient (views into `params`
        and `grads`)."""
        raise NotImplementedError

    def forward(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The logits of the batch X; dropout drawn from `rng` when given (training)."""
        raise NotImplementedError

    def backward(
        self, delta: np.ndarray, weight_decay: float = 0.0, input_grad: bool = False, param_grads: bool = True
    ):
        """Fill `grads` from δ = ∂C/∂logits; ∂C/∂X when `input_grad`."""
        raise NotImplementedError

    def onnx_forward(self, graph: Graph, x: str) -> str:
        """Its forward pass (no dropout) as ONNX nodes written into `graph` (mlp export), from
        the normalised inputs `x`, [N, *input_shape], to the logits [N, classes]; their name."""
        raise NotImplementedError

    # --- what every kind shares ----------------------------------------------------------------

    def spec(self) -> Spec:
        """What rebuilds this network (`from_spec`), as a weights file holds it."""
        spec = {"sizes": list(self.sizes), "activation": self.activation.name, "output": self.output.name}
        spec["output_activation"] = getattr(self.output, "activation", ACTIVATIONS["sigmoid"]).name
        return spec | {name: getattr(self, name) for name in self.SPEC_INTS}

    @classmethod
    def parameter_count(cls, spec: Spec) -> int:
        return flat_size(list(cls.layout_of(spec).values()))

    def reads(self, image_shape: tuple[int, int]) -> bool:
        """Whether it reads images of `image_shape` (rows, columns): as that many values, or
        as those rows."""
        rows, columns = image_shape
        return self.input_shape in ((rows * columns,), (rows, columns))

    def input_text(self) -> str:
        """ "784 inputs", or "784 inputs as 28 rows": what an example is, in words."""
        said = f"{self.sizes[0]} inputs"
        return said if len(self.input_shape) == 1 else f"{said} as {self.input_shape[0]} rows"

    def copy(self, params: np.ndarray | None = None) -> "Network":
        """A network of the same spec and dropout with buffers of its own, holding a copy of
        `params` (by default its own)."""
        twin = type(self).from_spec(self.spec(), self.dropout, self.params.dtype)
        np.copyto(twin.params, self.params if params is None else params)
        return twin

    def gradients(self) -> dict[str, np.ndarray]:
        """Each tensor's gradient from the last backward pass, copied: kept after the next."""
        return {name: grad.copy() for name, (_, grad) in self.tensors().items()}

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

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The output layer's scores of each row of X (no dropout), CHUNK rows a forward pass, so
        that the buffers kept stay a chunk's; an array of its own."""
        chunks = [
            self.output.scores(self.forward(X[start : start + CHUNK])) for start in range(0, len(X), CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.sizes[-1]), X.dtype)

    def loss(self, X: np.ndarray, Y: np.ndarray, weight_decay: float = 0.0, rng=None) -> float:
        return self.output.loss(self.forward(X, rng), Y) + self.penalty(weight_decay)
