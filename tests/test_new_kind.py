"""A third kind of network needs nn/ alone: a one-layer linear model, defined here and
registered in nn/kinds.py's registry, is trained, resumed, evaluated, listed, checked and
served by the commands as they are, no module changed."""

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import mlp

from mlpcli.errors import ConfigError
from mlpcli.nn.activations import ACTIVATIONS
from mlpcli.nn.base import Layout, Network, Spec
from mlpcli.nn.kinds import KINDS, register
from mlpcli.nn.losses import make_output
from mlpcli.nn.params import carve, flat_size

DIGIT = Path(__file__).resolve().parents[1] / "docs" / "seven.jpg"


class Linear(Network):
    """logits = A x + c: softmax regression with its own tensors' names, A and c."""

    kind = "linear"

    def __init__(self, n_input: int, n_classes: int, output: str, output_activation: str, dtype: type):
        self.sizes, self.dropout = [n_input, n_classes], 0.0
        self.activation, self.output = ACTIVATIONS["identity"], make_output(output, output_activation)
        layout = list(self.layout_of({"sizes": self.sizes}).values())
        self.params = np.zeros(flat_size(layout), dtype=dtype)
        self.grads = np.zeros_like(self.params)
        (self.A, self.c), (self.grad_A, self.grad_c) = carve(self.params, layout), carve(self.grads, layout)
        self.n_weights, self.buffers, self.hidden_outputs = self.A.size, {}, []

    @classmethod
    def spec_from_config(cls, m, image_shape: tuple[int, int], n_classes: int) -> Spec:
        if m.hidden or m.dropout:
            raise ConfigError("model.kind = linear has no hidden layer: set model.hidden=[] model.dropout=0")
        sizes = [image_shape[0] * image_shape[1], n_classes]
        return {
            "sizes": sizes,
            "activation": "identity",
            "output": m.output,
            "output_activation": m.output_activation,
        }

    @classmethod
    def layout_of(cls, spec: Spec) -> Layout:
        if len(spec["sizes"]) != 2:
            raise ValueError(f"a linear model's sizes are [inputs, outputs], not {spec['sizes']}")
        n_input, n_classes = spec["sizes"]
        return {"A": (n_classes, n_input), "c": (n_classes,)}

    @classmethod
    def from_spec(cls, spec: Spec, dropout: float = 0.0, dtype: type = np.float32) -> "Linear":
        return cls(*spec["sizes"], spec["output"], spec["output_activation"], dtype)

    def initialise(self, rng: np.random.Generator, m) -> None:
        self.A[...] = 0.01 * rng.standard_normal(self.A.shape)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.sizes[0],)

    @property
    def short_name(self) -> str:
        return f"linear {self.sizes[0]}-{self.sizes[1]} {self.output}"

    def hidden_outputs_shown(self):
        return [], [], None

    def tensors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {"A": (self.A, self.grad_A), "c": (self.c, self.grad_c)}

    def forward(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        self.X = X
        return X @ self.A.T + self.c  # z = A x + c, row-wise

    def backward(self, delta, weight_decay=0.0, input_grad=False, param_grads=True):
        if param_grads:
            np.matmul(delta.T, self.X, out=self.grad_A)  # ∂C/∂A = δ xᵀ
            np.sum(delta, axis=0, out=self.grad_c)  # ∂C/∂c = δ
            self.add_weight_decay(weight_decay)
        return delta @ self.A if input_grad else None  # ∂C/∂x = Aᵀ δ

    def __repr__(self) -> str:
        return f"Linear({self.sizes[0]} → {self.sizes[1]}, {self.output})"


@pytest.fixture
def linear_kind():
    register(Linear)
    yield
    del KINDS[Linear.kind]


KIND = ["--set", "model.kind=linear", "--set", "model.hidden=[]", "--set", "model.dropout=0"]


def test_a_kind_registered_in_nn_alone_goes_through_every_command(linear_kind, mnist_dir, tmp_path):
    run = tmp_path / "runs" / "toy"
    data = ["--set", "data.source=idx", "--set", f"data.dir={mnist_dir}", "--set", "data.augment.shift=0"]
    trained = mlp("train", *KIND, *data, "--set", "train.epochs=1", "--out", run)
    assert trained.exit_code == 0, trained.output
    assert "Linear(784 → 10, softmax_cross_entropy)" in trained.output
    resumed = mlp("train", "--resume", run, "--set", "train.epochs=2")
    assert resumed.exit_code == 0, resumed.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["test_accuracy"] > 0.85  # softmax regression: about 0.92

    evaluated = mlp("eval", run)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((run / "eval.json").read_text())["accuracy"] == metrics["test_accuracy"]
    predicted = mlp("predict", run, DIGIT, "--json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.output)[0]["predictions"][0]["class"] == 7
    listed = mlp("runs", run.parent)
    row = next(line for line in listed.output.splitlines() if line.startswith("toy"))
    assert listed.exit_code == 0 and "completed" in row and f"{metrics['test_accuracy']:.4f}" in row, (
        listed.output
    )

    checked = mlp("gradcheck", *KIND, "--json")
    assert checked.exit_code == 0, checked.output
    rows = json.loads(checked.output)["checks"]
    assert {row["tensor"] for row in rows} == {"A", "c", "input"}
    assert {row["check"] for row in rows} == {"linear 784-10 softmax_cross_entropy"}

    with Served(run.parent) as url:
        answer, shown, step = (
            posted(f"{url}/api/{path}")
            for path in (
                "predict?run=toy",
                "backprop?run=toy&label=1",
                "step?run=toy&label=1&session=new-kind",
            )
        )
    assert answer["predictions"][0]["class"] == 7 and answer["activations"] == [] and answer["states"] is None
    assert np.shape(answer["gradient"]) == (28, 28)
    # the backprop panel of a kind that keeps no deltas: its loss, ∂C/∂x, the check and a step
    assert shown["deltas"] == [] and shown["units"] == [] and np.shape(shown["input_gradient"]) == (28, 28)
    assert [row["tensor"] for row in shown["check"]] == ["A", "c"]
    assert all(row["relative_error"] < 1e-6 for row in shown["check"]), shown["check"]
    assert step["loss_before"] == pytest.approx(shown["loss"]) and step["loss_after"] < step["loss_before"]


def posted(url: str) -> dict:
    request = urllib.request.Request(url, DIGIT.read_bytes(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_a_kind_that_is_not_registered_is_a_config_error(tmp_path):
    result = mlp("train", *KIND, "--out", tmp_path / "run")
    assert result.exit_code == 1 and "model.kind = 'linear'" in result.output.replace('"', "'"), result.output
    assert not (tmp_path / "run").exists()


class Served:
    """mlp serve's app for `folder` on uvicorn in a thread of this process (where the kind is
    registered), at a URL on 127.0.0.1."""

    def __init__(self, folder: Path):
        import uvicorn

        from mlpcli.serve import make_app

        self.sock = socket.create_server(("127.0.0.1", 0))
        config = uvicorn.Config(make_app(folder, ["127.0.0.1"]), log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
