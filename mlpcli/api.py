"""mlpcli from Python (a notebook, a script): a trained run with its network, config, history and
figures; predictions with `mlp predict`'s preparation; training and evaluating from Python. The
commands call the same functions, so a run made here is a run like any other.

    import mlpcli
    run = mlpcli.load_run("runs/mnist")
    probabilities = run.predict(["seven.png"])
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlpcli import artifacts, evaluate, runs, training
from mlpcli.config import load_config
from mlpcli.data import CLASS_NAMES, Normalisation
from mlpcli.images import FIELD, read_image, to_mnist
from mlpcli.nn.base import Network

Image = str | Path | np.ndarray  # a file to prepare as mlp predict does, or a 28×28 MNIST-form array


@dataclass
class Run:
    """A trained run: its `network` (forward, backward and what they keep: `hidden_outputs`,
    `deltas`, `grads`; nn/base.py says it all), the `normalisation` its inputs get, its
    `dataset` and `classes`, its `config` (config.yaml as a dict), `history` (history.csv's rows,
    numbers as floats) and `metrics` (metrics.json)."""

    path: Path
    network: Network
    normalisation: Normalisation
    dataset: str
    classes: list[str]
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    def prepare(self, image: Image) -> np.ndarray:
        """The 28×28 uint8 image the network reads: a file brought to MNIST's form as
        `mlp predict` brings it (grey, inverted if the paper is light, cropped to the ink,
        scaled into 20×20, centred by its centre of mass); an array taken as already in it."""
        if isinstance(image, np.ndarray):
            if image.shape[-2:] != (FIELD, FIELD):
                raise ValueError(f"an image array is {FIELD}×{FIELD} in MNIST's form, not {image.shape}")
            return image
        return to_mnist(read_image(image), str(image))

    def inputs(self, images: Image | Sequence[Image]) -> np.ndarray:
        """What the network's forward pass takes: the images prepared, normalised as in
        training, one row each, float32 (N, 784)."""
        batch = images if isinstance(images, np.ndarray) and images.ndim == 3 else None
        if batch is None:
            single = isinstance(images, (str, Path, np.ndarray))
            batch = np.stack([self.prepare(image) for image in ([images] if single else images)])
        return self.normalisation.apply(batch.reshape(len(batch), -1))

    def predict(self, images: Image | Sequence[Image]) -> np.ndarray:
        """The scores of every class for each image, (N, classes): probabilities for a softmax
        run (an mse run's outputs, clipped at 0 and scaled to sum to 1). `run.classes[k]`
        names class k. Files are prepared as `mlp predict` prepares them (an ImageError says
        why one cannot be); 28×28 arrays, or an (N, 28, 28) batch, are read as they are."""
        return self.network.output.scores(self.network.forward(self.inputs(images))).copy()

    def evaluate(self, split: str = "test", progress: bool = False) -> dict:
        """`mlp eval` of this run on `split` (test, validation or train), quietly: what
        eval.json holds (accuracy, loss, per-class figures, confusion matrix, mistakes), which
        it writes beside the weights with confusion.png and mistakes.png, as `mlp eval` does."""
        return evaluate.eval_run(self.path, (), lambda *args, **kwargs: None, split, progress)

    def __repr__(self) -> str:
        accuracy = self.metrics.get("test_accuracy")
        tested = f", test accuracy {accuracy:.4f}" if isinstance(accuracy, float) else ""
        return f"Run({str(self.path)!r}: {self.network.short_name}, {self.dataset}{tested})"


def load_run(path: str | Path) -> Run:
    """The run directory `path` (or a weights.npz: its network alone) as written by `mlp train`."""
    weights = artifacts.weights_file(Path(path))
    saved = artifacts.load_weights(weights)
    found = runs.read_run(weights.parent)
    history = [{key: _number(value) for key, value in row.items()} for row in found.history]
    config = artifacts.read_config(weights.parent / artifacts.CONFIG) if found.config else {}
    classes = CLASS_NAMES[saved.dataset]
    return Run(
        weights.parent, saved.model, saved.norm, saved.dataset, classes, config, history, found.metrics
    )


def train_run(
    config: str | Path | None = None,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    overwrite: bool = False,
    quiet: bool = False,
) -> Run:
    """`mlp train` from Python: the config file `config` (None: the defaults) with `overrides`
    ("train.epochs=3", as --set takes them), written to the run directory `out` (None: runs/
    DATASET-TIME); each epoch's line printed unless `quiet`. The trained run, loaded."""
    settings = load_config(config, overrides)
    folder = training.default_run_dir(settings) if out is None else Path(out)
    echo = (lambda *args, **kwargs: None) if quiet else _printed
    training.train_run(settings, folder, echo, progress=False, overwrite=overwrite)
    return load_run(folder)


def _printed(text: str = "", **_: object) -> None:
    print(text)


def _number(value: str) -> float | str:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
