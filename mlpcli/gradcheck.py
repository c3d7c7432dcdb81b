"""Gradient checking (equations.md §7): every hand-derived gradient beside central
differences in float64, and the Jacobian forms the delta equations come from (§1–2).

Relative error of an entry: |a - n| / max(|a| + |n|, tiny), a analytic, n numerical. An entry
passes when its relative error is at most `threshold` or, as in numpy.allclose, its absolute
error is at most `atol`: float64 central differences cannot resolve gradients much below
u·|C|/ε ≈ 1e-11 (u the unit roundoff), so an entry whose true gradient is about that small
has a meaningless relative error. A wrong derivative errs by far more than `atol`.

A ReLU whose pre-activation changes sign between θ+ε and θ-ε (a kink crossed by the step)
makes the numerical value meaningless there: such entries are counted as kinks, not failures.

`run_checks` is what `mlp gradcheck` checks (a config's model, or fixed small nets), and
`step_size_hint` says when a failure is the step's, not the backprop's.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from mlpcli import models
from mlpcli.config import Config
from mlpcli.data import MNIST_SHAPE, N_CLASSES
from mlpcli.nn.base import Network
from mlpcli.nn.losses import SoftmaxCrossEntropy
from mlpcli.nn.mlp import MLP
from mlpcli.nn.rnn import VanillaRNN
from mlpcli.progress import bar
from mlpcli.settings import GradcheckSettings
from mlpcli.tables import text_table

TINY = 1e-12  # the floor of the relative error's denominator: 0/0 counts as agreement
ALL_COMBINATIONS = [
    (activation, output, output_activation)
    for activation in ("relu", "sigmoid", "tanh")
    for output, output_activation in (
        ("softmax_cross_entropy", "sigmoid"),
        ("mse", "sigmoid"),
        ("mse", "identity"),
    )
]


@dataclass
class Row:
    check: str
    tensor: str
    shape: tuple[int, ...]
    checked: int
    max_abs: float  # over the entries not at a kink
    max_rel: float
    kinks: int
    by_abs: int  # entries whose relative error is too large but absolute error small enough
    passed: bool
    worst: tuple[int, ...]  # the entry of the largest relative error (a failing one if any), its values
    worst_analytic: float
    worst_numeric: float

    @property
    def verdict(self) -> str:
        """FAIL; pass (every entry by its relative error); or pass (N by abs, M at a kink)."""
        if not self.passed:
            return "FAIL"
        notes = []
        if self.by_abs:
            notes.append(f"{self.by_abs} by abs")
        if self.kinks:
            notes.append(f"{self.kinks} at a kink")
        return f"pass ({', '.join(notes)})" if notes else "pass"

    def to_dict(self) -> dict:
        return asdict(self) | {"shape": list(self.shape), "worst": list(self.worst), "verdict": self.verdict}


# --- central differences --------------------------------------------------------------------


def central_differences(
    f: Callable[[], np.ndarray | float],
    x: np.ndarray,
    indices: np.ndarray,
    eps: float,
    pattern: Callable[[], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(f(x + ε e_i) - f(x - ε e_i)) / 2ε for each flat index i of `x` (changed in place and
    restored); f may return an array. Also, per index, whether `pattern()` (the set of active
    ReLUs after f) differs between the two sides: a kink crossed by the step."""
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous: it is perturbed in place"
    values, kinked = [], []
    for i in bar(indices, None, desc="central differences", unit="entry", delay=2):
        old = flat[i]
        flat[i] = old + eps
        plus, plus_pattern = np.array(f(), dtype=np.float64), pattern() if pattern else None
        flat[i] = old - eps
        minus, minus_pattern = np.array(f(), dtype=np.float64), pattern() if pattern else None
        flat[i] = old
        values.append((plus - minus) / (2 * eps))
        kinked.append(pattern is not None and not np.array_equal(plus_pattern, minus_pattern))
    return np.array(values), np.array(kinked, dtype=bool)


def numerical_jacobian(f: Callable[[], np.ndarray], x: np.ndarray, eps: float) -> np.ndarray:
    """∂f/∂x with shape f.shape + x.shape."""
    columns, _ = central_differences(f, x, np.arange(x.size), eps)  # (x.size, *f.shape)
    return np.moveaxis(columns, 0, -1).reshape(columns.shape[1:] + x.shape)


def errors(analytic, numeric) -> tuple:
    """|a - n| and the relative error |a - n| / max(|a| + |n|, TINY), of numbers or arrays."""
    error = np.abs(analytic - numeric)
    return error, error / np.maximum(np.abs(analytic) + np.abs(numeric), TINY)


def compare(
    check: str,
    tensor: str,
    analytic,
    numeric,
    settings: GradcheckSettings,
    kinked=None,
    shape=None,
    indices=None,
) -> Row:
    """One row of the report: the analytic and numerical values of the entries checked, which
    are the flat `indices` of a tensor of `shape` (default: all of `analytic`'s entries)."""
    shape = tuple(shape if shape is not None else np.shape(analytic))
    analytic, numeric = np.asarray(analytic, np.float64).ravel(), np.asarray(numeric, np.float64).ravel()
    indices = np.arange(analytic.size) if indices is None else indices
    kinked = np.zeros(analytic.size, bool) if kinked is None else kinked
    error, relative = errors(analytic, numeric)
    too_far = relative > settings.threshold
    wrong = too_far & (error > settings.atol)
    smooth = ~kinked
    failing = wrong & smooth
    worst = int(np.argmax(np.where(failing if failing.any() else smooth, relative, -1.0)))
    return Row(
        check,
        tensor,
        shape,
        analytic.size,
        max_abs=float(error[smooth].max(initial=0.0)),
        max_rel=float(relative[smooth].max(initial=0.0)),
        kinks=int(np.count_nonzero(kinked & wrong)),
        by_abs=int(np.count_nonzero(too_far & ~wrong & smooth)),
        passed=not failing.any(),
        worst=tuple(int(i) for i in np.unravel_index(indices[worst], shape)),
        worst_analytic=float(analytic[worst]),
        worst_numeric=float(numeric[worst]),
    )


def check_tensors(
    check: str, loss: Callable[[], float], tensors: dict, settings: GradcheckSettings, pattern=None
) -> list[Row]:
    """Compare each tensor's analytic gradient (name → (tensor, gradient)) with central
    differences of `loss` on a seeded sample of its entries."""
    rng = np.random.default_rng(settings.seed)
    rows = []
    for name, (tensor, gradient) in tensors.items():
        indices = _sample(tensor.size, settings.samples, rng)
        numeric, kinked = central_differences(loss, tensor, indices, settings.eps, pattern)
        analytic = gradient.reshape(-1)[indices]
        rows.append(compare(check, name, analytic, numeric, settings, kinked, tensor.shape, indices))
    return rows


def every_entry(settings: GradcheckSettings) -> GradcheckSettings:
    return replace(settings, samples=None)


def _sample(size: int, samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if samples is None or samples >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, samples, replace=False))


# --- the MLP ----------------------------------------------------------------------------------


def check_mlp(
    sizes: list[int],
    activation: str,
    output: str,
    output_activation: str,
    dropout: float,
    weight_decay: float,
    settings: GradcheckSettings,
    init: str = "he",
) -> list[Row]:
    """∂loss/∂W, ∂loss/∂b of every layer and ∂loss/∂input of a float64 MLP (check_network)."""
    rng = np.random.default_rng(settings.seed)
    model = MLP(sizes, activation, output, output_activation, dropout, dtype=np.float64)
    model.init(rng, init)
    return check_network(model, rng, weight_decay, settings)


def check_network(
    model: Network, rng: np.random.Generator, weight_decay: float, settings: GradcheckSettings
) -> list[Row]:
    """Every tensor's ∂loss/∂tensor and ∂loss/∂input of the float64 `model`, initialised from
    `rng`, on a synthetic batch drawn from it next, its biases made nonzero; dropout with a
    fixed mask (the same seed on every pass), weight decay in the loss."""
    model.params[model.n_weights :] = 0.1 * rng.standard_normal(model.params.size - model.n_weights)
    n_input, *_, n_classes = model.sizes
    X = rng.standard_normal((settings.batch, n_input))
    Y = np.eye(n_classes)[rng.integers(0, n_classes, settings.batch)]

    def mask_rng():
        return np.random.default_rng(settings.seed + 1) if model.dropout else None

    _, grad_X = model.loss_and_grad(X, Y, weight_decay, mask_rng(), input_grad=True)
    gradients = model.gradients()
    tensors = {name: (tensor, gradients[name]) for name, (tensor, _) in model.tensors().items()}
    tensors["input"] = (X, grad_X.copy())  # the network's buffer, rewritten by the next pass
    hidden = len(model.sizes) > 2
    pattern = relu_pattern(model) if model.activation.name == "relu" and hidden else None

    def loss() -> float:
        return model.loss(X, Y, weight_decay, mask_rng())

    return check_tensors(model.short_name, loss, tensors, settings, pattern)


def relu_pattern(model: Network) -> Callable[[], np.ndarray]:
    """After a forward pass, which hidden ReLUs are active (z > 0): a change between the two
    sides of a central difference means the step crossed a kink."""
    return lambda: np.concatenate([(a > 0).ravel() for a in model.hidden_outputs])


def check_configured(config: Config, settings: GradcheckSettings) -> list[Row]:
    """The model a config describes, at MNIST's image size: an MLP, or an RNN over its 28 rows."""
    models.check_config(config, MNIST_SHAPE, N_CLASSES)  # what training it would meet, said first
    rng = np.random.default_rng(settings.seed)
    model = models.build_model(config.model, MNIST_SHAPE, N_CLASSES, rng, np.float64)  # at MNIST's size
    return check_network(model, rng, config.train.weight_decay, settings)


def check_all(settings: GradcheckSettings) -> list[Row]:
    """Every hidden activation with every output, on a small net, every entry, with dropout
    and weight decay on; and softmax regression, with no hidden layer."""
    rows = []
    for activation, output, output_activation in ALL_COMBINATIONS:
        rows += check_mlp(
            [12, 9, 7, 5], activation, output, output_activation, 0.25, 1e-3, every_entry(settings), "xavier"
        )
    # softmax regression: "relu" names a hidden activation that no layer uses
    return rows + check_mlp(
        [12, 5], "relu", "softmax_cross_entropy", "sigmoid", 0.0, 1e-3, every_entry(settings)
    )


# --- Jacobians ----------------------------------------------------------------------------------


def check_jacobians(settings: GradcheckSettings) -> tuple[list[Row], str]:
    """The Jacobian forms of equations.md §1–2, each built from its formula and compared with a
    numerical Jacobian; also the text of the worked example of §1."""
    eps = settings.eps
    W = np.array([[4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1001.0, 1002.0])

    def z():
        return W @ a + b  # z = W a + b

    dz_dW = np.einsum("ij,k->ijk", np.eye(2), a)  # [i][j] = aᵀ when i = j, else 0
    rows = [
        compare("dense layer", "∂z/∂a = W", W, numerical_jacobian(z, a, eps), settings),
        compare("dense layer", "∂z/∂b = I", np.eye(2), numerical_jacobian(z, b, eps), settings),
        compare("dense layer", "∂z/∂W", dz_dW, numerical_jacobian(z, W, eps), settings),
    ]
    rows += _softmax_rows(settings)
    example = (
        "worked example (equations.md §1): W = [[4,5,6],[7,8,9]], a = [1,2,3]ᵀ, b = [1001,1002]ᵀ\n"
        f"  z = W a + b = {z().tolist()}\n"
        f"  ∂z/∂a = W = {W.tolist()}, ∂z/∂b = I₂\n"
        f"  ∂z/∂W[0][0] = {dz_dW[0, 0].tolist()}, ∂z/∂W[1][1] = {dz_dW[1, 1].tolist()},"
        f" off-diagonal blocks {dz_dW[0, 1].tolist()}"
    )
    return rows, example


def _softmax_rows(settings: GradcheckSettings) -> list[Row]:
    """∂ŷ/∂z = diag(ŷ) - ŷŷᵀ, ∂C/∂ŷ = -y/ŷ, and the chain (∂ŷ/∂z)ᵀ ∂C/∂ŷ = ŷ - y (§2)."""
    eps = settings.eps
    softmax = SoftmaxCrossEntropy()
    y_hat = np.array([0.01, 0.11, 0.31, 0.11, 0.21, 0.01, 0.01, 0.01, 0.21, 0.01])
    y = np.eye(10)[2]
    z = np.log(y_hat)  # logits whose softmax is the ŷ of the worked example

    def probabilities():
        return softmax.predict(z[None])[0]

    def cross_entropy_of_y_hat():
        return -np.sum(y * np.log(p))  # C(ŷ) = -Σ_k y_k log ŷ_k

    p = y_hat.copy()
    jacobian = np.diag(y_hat) - np.outer(y_hat, y_hat)  # ∂ŷ/∂z
    dC_dy_hat = -y / y_hat  # ∂C/∂ŷ
    chained = jacobian.T @ dC_dy_hat
    dC_dz = numerical_jacobian(lambda: softmax.loss(z[None], y[None]), z, eps)
    return [
        compare(
            "softmax", "∂ŷ/∂z = diag(ŷ) - ŷŷᵀ", jacobian, numerical_jacobian(probabilities, z, eps), settings
        ),
        compare(
            "cross-entropy",
            "∂C/∂ŷ = -y/ŷ",
            dC_dy_hat,
            numerical_jacobian(cross_entropy_of_y_hat, p, eps),
            settings,
        ),
        compare("chain", "(∂ŷ/∂z)ᵀ ∂C/∂ŷ vs ŷ - y", chained, y_hat - y, settings),
        compare("chain", "ŷ - y vs numerical ∂C/∂z", y_hat - y, dC_dz, settings),
    ]


# --- the RNN ------------------------------------------------------------------------------------


def check_rnn(
    settings: GradcheckSettings, n_input: int = 4, n_hidden: int = 6, n_output: int = 3, steps: int = 7
) -> list[Row]:
    """Back-propagation through time (§6) against central differences, every entry, with soft labels."""
    rng = np.random.default_rng(settings.seed)
    rnn = VanillaRNN(n_input, n_hidden, n_output)
    rnn.init(rng)
    rnn.params[:] += 0.1 * rng.standard_normal(rnn.params.size)  # nonzero biases too
    xs = rng.standard_normal((steps, n_input))
    ys = rng.random((steps, n_output))
    ys /= ys.sum(axis=1, keepdims=True)  # soft labels: each row sums to 1
    rnn.loss_and_grad(xs, ys)
    tensors = {name: (tensor, grad.copy()) for name, (tensor, grad) in rnn.tensors().items()}
    return check_tensors(f"rnn T={steps}", lambda: rnn.loss(xs, ys), tensors, every_entry(settings))


# --- the report ---------------------------------------------------------------------------------


def format_table(
    rows: list[Row], settings: GradcheckSettings, explain: bool = False, width: int | None = None
) -> str:
    """The rows as a table (in blocks of columns when wider than `width`), a line that sums
    them up, and how to read them (and, unless `explain` is on, where to see more)."""
    header = ("check", "tensor", "shape", "entries", "max abs err", "max rel err", "verdict")
    cells = [
        (
            r.check,
            r.tensor,
            "×".join(map(str, r.shape)),
            str(r.checked),
            f"{r.max_abs:.2e}",
            f"{r.max_rel:.2e}",
            r.verdict,
        )
        for r in rows
    ]
    lines = text_table(header, cells, width)
    lines.append(summary(rows))
    lines.append(
        f"(ε = {settings.eps:g}. An entry passes when its relative error |a − n| / (|a| + |n|) is at most"
        f" {settings.threshold:g},\n or else 'by abs' when |a − n| is at most {settings.atol:g};"
        " a: analytic, n: numerical."
        + ("" if explain else "\n --explain shows the worst entry of each tensor.")
        + ")"
    )
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """One line: how many tensors passed or failed, of how many entries."""
    failed = sum(not r.passed for r in rows)
    entries = sum(r.checked for r in rows)
    notes = [
        f"{n} {what}"
        for n, what in ((sum(r.by_abs for r in rows), "by abs"), (sum(r.kinks for r in rows), "at a kink"))
        if n
    ]
    verdict = f"{failed} of {len(rows)} tensors FAILED" if failed else f"all {len(rows)} tensors passed"
    return f"{verdict} ({entries} entries checked{''.join(f', {note}' for note in notes)})"


def worst_entries(rows: list[Row], settings: GradcheckSettings) -> str:
    """For the worst entry of each tensor, the analytic and numerical values side by side and the
    relative error worked out, so that the comparison itself can be read."""
    blocks = []
    for r in rows:
        a, n = r.worst_analytic, r.worst_numeric
        error, relative = errors(a, n)
        if relative <= settings.threshold:
            rule = f"≤ {settings.threshold:g}: pass"
        elif error <= settings.atol:
            rule = f"> {settings.threshold:g}, but |a − n| ≤ {settings.atol:g}: pass by abs"
        else:
            rule = f"> {settings.threshold:g} and |a − n| > {settings.atol:g}: FAIL"
        blocks.append(
            f"{r.check}  {r.tensor}{list(r.worst)}\n"
            f"  analytic   a = {a: .12e}\n"
            f"  numerical  n = {n: .12e}   (f(θ + ε) − f(θ − ε)) / 2ε, ε = {settings.eps:g}\n"
            f"  |a − n| = {error:.3e};  |a| + |n| = {abs(a) + abs(n):.3e};"
            f"  |a − n| / max(|a| + |n|, {TINY:g}) = {relative:.3e} {rule}"
        )
    return "\n\n".join(blocks)


def _hint_at_default(rows: list[Row], rows_at_default: list[Row], eps: float) -> str:
    """When rows that failed at the step `eps` pass at the default step: say the step was at
    fault for them, and that the others fail at the default step too."""
    passed_there = {(r.check, r.tensor) for r in rows_at_default if r.passed}
    failed = [r for r in rows if not r.passed]
    excused = [f"{r.check}: {r.tensor}" for r in failed if (r.check, r.tensor) in passed_there]
    if not excused:
        return ""
    default = GradcheckSettings().eps
    hint = (
        f"hint: at the default step ε = {default:g} these pass: {'; '.join(excused)}.\n"
        f"For them the step ε = {eps:g} is at fault, not the backprop: central differences err by O(ε²)"
        " (truncation) and by O(u/ε) (round-off, u ≈ 1e-16 in float64), least near ε = 1e-5."
    )
    still = [f"{r.check}: {r.tensor}" for r in failed if (r.check, r.tensor) not in passed_there]
    if still:
        hint += f"\nThese fail at the default step too: {'; '.join(still)}; look at their backprop."
    return hint


def failures(rows: list[Row]) -> list[str]:
    """`check: tensor` of every row that failed."""
    return [f"{r.check}: {r.tensor}" for r in rows if not r.passed]


def step_size_hint(
    rows: list[Row],
    config: Config,
    settings: GradcheckSettings,
    model: str,
    every_combination: bool,
    jacobians: bool,
) -> str:
    """When checks failed at a step ε far (10× or more) from the default, whether they pass at
    the default: then the step is at fault, not the backprop. Empty when there is nothing to say."""
    default = GradcheckSettings().eps
    if all(r.passed for r in rows) or max(settings.eps / default, default / settings.eps) < 10:
        return ""
    at_default = replace(settings, eps=default)
    rows_at_default, _ = run_checks(config, at_default, model, every_combination, jacobians)
    return _hint_at_default(rows, rows_at_default, settings.eps)


def run_checks(
    config: Config, settings: GradcheckSettings, model: str, every_combination: bool, jacobians: bool
) -> tuple[list[Row], str]:
    """The checks `mlp gradcheck` selects: without --model rnn, --all or --jacobians, the model
    of the config. Returns the rows and the worked example's text (with --jacobians)."""
    rows, example = [], ""
    if model == "rnn":
        rows += check_rnn(settings)
    if every_combination:
        rows += check_all(settings)
    if jacobians:
        jacobian_rows, example = check_jacobians(settings)
        rows += jacobian_rows
    if not rows:
        rows = check_configured(config, settings)
    return rows, example
