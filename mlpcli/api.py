"""mlpcli from Python (a notebook, a script): a trained run with its network, config, history and
figures; predictions with `mlp predict`'s preparation; training and evaluating from Python. The
commands call the same functions, so a run made here is a run like any other.

    import mlpcli
    run = mlpcli.load_run("runs/mnist")
    probabilities = run.predict(["seven.png"])
"""

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image

from mlpcli import artifacts, evaluate, runs, training
from mlpcli.config import load_config
from mlpcli.data import CLASS_NAMES, Normalisation
from mlpcli.images import FIELD, read_image, to_mnist
from mlpcli.nn.base import Network

Image = (
    str | os.PathLike | PIL.Image.Image | np.ndarray
)  # a file or picture to prepare, or an MNIST-form array


@dataclass
class Run:
    """A trained run: its `network` (forward, backward and what they keep: `hidden_outputs`,
    `deltas`, `grads`; nn/base.py says it all), the `normalisation` its inputs get, its
    `dataset` and `classes`, its `config` (config.yaml as a dict), `history` (history.csv's rows,
    numbers as floats; the validation figures nan in a run of data.validation 0), `metrics`
    (metrics.json) and `problems` (what of those could not be read). `weights` is the file the
    network was loaded from."""

    path: Path
    weights: Path
    network: Network
    normalisation: Normalisation
    dataset: str
    classes: list[str]
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def prepare(self, image: Image) -> np.ndarray:
        """The 28×28 image the network reads, grey levels 0–255 with the ink high: a file (a
        path, or a PIL image) brought to MNIST's form as `mlp predict` brings it (grey, inverted
        if the paper is light, cropped to the ink, scaled into 20×20, centred by its centre of
        mass); a 28×28 array taken as already in it (a ValueError if it is not one)."""
        if isinstance(image, np.ndarray):
            return _mnist_form(image[None])[0]
        if isinstance(image, (str, os.PathLike)):
            return to_mnist(read_image(image), str(image))
        if isinstance(image, PIL.Image.Image):  # read as its PNG file would be (transparency white)
            file = io.BytesIO()
            image.save(file, format="PNG")
            return to_mnist(read_image(file, "the image"), "the image")
        raise TypeError(
            f"an image is a file's path, a PIL image or a 28×28 array, not {type(image).__name__}"
        )

    def inputs(self, images: Image | Sequence[Image]) -> np.ndarray:
        """What the network's forward pass takes: the images prepared, normalised as in
        training, one row each, float32 (N, 784); an (N, 28, 28) array is N images."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            batch = _mnist_form(images)
        else:
            single = isinstance(images, (str, os.PathLike, np.ndarray, PIL.Image.Image))
            prepared = [self.prepare(image) for image in ([images] if single else images)]
            batch = np.stack(prepared) if prepared else np.zeros((0, FIELD, FIELD))
        return self.normalisation.apply(batch.reshape(len(batch), FIELD * FIELD))

    def predict(self, images: Image | Sequence[Image]) -> np.ndarray:
        """The scores of every class for each image, (N, classes): probabilities for a softmax
        run (an mse run's outputs, clipped at 0 and scaled to sum to 1). `run.classes[k]`
        names class k. Files are prepared as `mlp predict` prepares them (mlpcli.errors.ImageError
        says why one cannot be); 28×28 arrays, or an (N, 28, 28) batch, are read as they are:
        grey levels 0–255, ink high, as MNIST's (not scaled to 0–1)."""
        return self.network.scores(self.inputs(images))

    def evaluate(self, split: str = "test", progress: bool = False) -> dict:
        """`mlp eval` of these weights on `split` (test, validation or train), quietly: what
        eval.json holds (accuracy, loss, per-class figures, confusion matrix, mistakes), which
        it writes beside the weights with confusion.png and mistakes.png, as `mlp eval` does."""
        return evaluate.eval_run(self.weights, (), _quiet, split, progress)

    def __repr__(self) -> str:
        accuracy = self.metrics.get("test_accuracy")
        tested = f", test accuracy {accuracy:.4f}" if isinstance(accuracy, float) else ""
        return f"Run({str(self.path)!r}: {self.network.short_name}, {self.dataset}{tested})"


def _mnist_form(batch: np.ndarray) -> np.ndarray:
    """`batch` of (N, 28, 28) images as MNIST's: grey levels 0–255; a ValueError otherwise, and
    for images scaled to 0–1, which would be read as nearly black."""
    if batch.shape[1:] != (FIELD, FIELD):
        raise ValueError(f"an image array is {FIELD}×{FIELD} in MNIST's form, not {batch.shape[1:]}")
    if batch.size and (batch.min() < 0 or batch.max() > 255):
        raise ValueError("an image array holds grey levels from 0 to 255, as MNIST's")
    if batch.size and batch.dtype.kind == "f" and 0 < batch.max() <= 1:
        raise ValueError("these images look scaled to 0-1: mlpcli reads MNIST's 0-255 (multiply by 255)")
    return batch


def load_run(path: str | Path) -> Run:
    """The run directory `path` as `mlp train` writes it, or a weights.npz file (its run's
    config, history and metrics only when it is the run's own weights.npz). An MlpError
    (mlpcli.errors) says why it cannot be loaded."""
    weights = artifacts.weights_file(Path(path))
    saved = artifacts.load_weights(weights)
    own = weights.name == artifacts.WEIGHTS
    found = runs.read_run(weights.parent) if own else runs.Run(weights.parent)
    history = [{key: _number(value) for key, value in row.items()} for row in found.history]
    config = artifacts.read_config(weights.parent / artifacts.CONFIG) if found.config else {}
    classes = CLASS_NAMES[saved.dataset]
    return Run(
        weights.parent,
        weights,
        saved.model,
        saved.norm,
        saved.dataset,
        classes,
        config,
        history,
        found.metrics,
        found.problems,
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
    echo = _quiet if quiet else _printed
    training.train_run(settings, folder, echo, progress=False, overwrite=overwrite)
    return load_run(folder)


def _printed(text: str = "", **_: object) -> None:
    print(text)


def _quiet(text: str = "", **_: object) -> None:
    pass


def _number(value: str) -> int | float | str:
    try:
        return int(value) if value.isdigit() else float(value)
    except (TypeError, ValueError):
        return value
