"""`mlp export`: a run's network as an ONNX model (the export extra: the `onnx` package), so that
it runs where mlpcli does not: onnxruntime in Python, C#, Java, C++ or a browser.

The model takes `pixels`, float32 [N, 28, 28], MNIST's grey levels 0–255 (ink high), any N, and
holds the whole forward pass: the run's normalisation x = (pixel − mean) · (1/std), as
data.Normalisation computes it, then the network's own layers (each kind writes them,
Network.onnx_forward). It answers `logits` [N, classes] and the output layer's scores:
`probabilities` for softmax cross-entropy, `scores` for mse (its outputs clipped at 0 and
scaled to sum to 1, as `mlp predict` gives them). Float32 throughout; the operator set and
file format are pinned to what onnxruntime and onnxruntime-web run.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlpcli import __version__, artifacts
from mlpcli.data import CLASS_NAMES
from mlpcli.errors import RunDirError, WeightsError
from mlpcli.images import FIELD

OPSET = 17  # ONNX's operator set: onnxruntime since 1.13, and onnxruntime-web (wasm), run all of it
IR_VERSION = 8  # the file format of opset 17
MODEL_FILE = "model.onnx"  # RUN/model.onnx, unless --out says otherwise
SCORES = {"probability": "probabilities", "score": "scores"}  # an output layer's scores, by their name
DOC = (
    "Classifies 28x28 images in MNIST's form: pixels, float32 [N, 28, 28], grey levels 0-255 with"
    " the ink high (white on black), the digit centred by its centre of mass as MNIST's are. It"
    " does not find, crop or centre a digit in a photo or a drawing: mlp predict does that before"
    " its network sees an image, and so must the caller of this model."
)


@dataclass
class Exported:
    """What `export` wrote: the file, its size in bytes, the network, which weights
    (artifacts.which_weights: ", the weights of epoch 12 of a run interrupted after 14") and the
    model's outputs."""

    path: Path
    size: int
    network: str
    which: str
    outputs: list[str]


def export(target: Path, out: Path | None = None, overwrite: bool = False) -> Exported:
    """Write the network of the run (or weights file) `target` as an ONNX model to `out`
    (default RUN/model.onnx), replacing an existing file only when `overwrite`. The model is
    checked (onnx.checker) before it is written, and written whole or not at all."""
    weights = artifacts.weights_file(target)
    out = weights.parent / MODEL_FILE if out is None else out
    if out.suffix.lower() != ".onnx":  # never a run's own file (weights.npz) by a slip
        raise RunDirError(f"{out}: an ONNX model's file name ends in .onnx")
    if out.exists() and not overwrite:
        raise RunDirError(f"{out} exists already: add --overwrite to replace it")
    saved = artifacts.load_weights(weights)
    if not saved.model.reads((FIELD, FIELD)):
        raise WeightsError(
            f"{target}: the model takes {saved.model.input_text()}, not {FIELD}×{FIELD} images"
        )
    model = build(saved, described(weights.parent, saved))
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    artifacts.write_atomic(out, lambda f: f.write(data))
    which = artifacts.which_weights(saved, weights.parent)
    return Exported(
        out, len(data), saved.model.short_name, which, [output.name for output in model.graph.output]
    )


def described(run: Path, saved: artifacts.Saved) -> dict[str, str]:
    """What the model says of itself (its metadata): its classes, dataset, network, run, test
    accuracy, epoch, the normalisation inside it, and mlpcli's version."""
    accuracy = artifacts.read_metrics(run).get("test_accuracy")  # {} when unreadable
    return {
        "classes": json.dumps(CLASS_NAMES[saved.dataset]),
        "dataset": saved.dataset,
        "network": saved.model.short_name,
        "run": run.name,
        "test_accuracy": f"{accuracy:.4f}" if isinstance(accuracy, float) and math.isfinite(accuracy) else "",
        "epoch": "" if saved.epoch is None else str(saved.epoch),
        "input_mean": repr(saved.norm.mean),
        "input_std": repr(saved.norm.std),
        "mlpcli_version": __version__,
    }


def build(saved: artifacts.Saved, metadata: dict[str, str]) -> onnx.ModelProto:
    """The ONNX model of `saved`'s forward pass, from raw pixels to logits and scores."""
    network, graph = saved.model, OnnxGraph()
    shape = graph.constant("input_shape", np.array([-1, *network.input_shape], dtype=np.int64))
    rows = graph.node("Reshape", "pixels", shape)  # [N, 784] for an MLP, [N, 28, 28] for an RNN
    x = graph.node("Sub", rows, graph.constant("mean", np.float32(saved.norm.mean)))
    x = graph.node("Mul", x, graph.constant("inverse_std", np.float32(1.0 / saved.norm.std)))
    try:
        z = network.onnx_forward(graph, x)
    except NotImplementedError:  # a kind of network whose onnx_forward is not written yet
        raise WeightsError(
            f"a network of kind {network.kind!r} cannot be exported yet (its Network.onnx_forward"
            " is not written: docs/new-kind.md)"
        ) from None
    classes = network.sizes[-1]
    graph.name_output(z, "logits")
    graph.name_output(network.output.onnx_scores(graph, z, classes), SCORES[network.output.score_name])
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", FIELD, FIELD])
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", classes]) for name in graph.outputs
    ]
    model = helper.make_model(
        helper.make_graph(graph.nodes, "mlpcli", [pixels], outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mlpcli",
        producer_version=__version__,
        doc_string=DOC,
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, metadata)
    return model


class OnnxGraph:
    """nn.graph.Graph for ONNX: nodes and initializers, each output named after its node."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.outputs: list[str] = []

    def node(self, op: str, *inputs: str, skipped_outputs: int = 0, **attributes: Any) -> str:
        name = f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(
            helper.make_node(op, list(inputs), [""] * skipped_outputs + [name], name, **attributes)
        )
        return name

    def constant(self, name: str, value: np.ndarray) -> str:
        value = np.asarray(value)
        value = value.astype(np.float32) if value.dtype.kind == "f" else value
        unique = (
            name if all(t.name != name for t in self.initializers) else f"{name}_{len(self.initializers)}"
        )
        self.initializers.append(numpy_helper.from_array(value, unique))
        return unique

    def name_output(self, tensor: str, name: str) -> None:
        """Make the tensor `tensor` an output of the graph, called `name`."""
        self.nodes.append(helper.make_node("Identity", [tensor], [name], f"output_{name}"))
        self.outputs.append(name)
