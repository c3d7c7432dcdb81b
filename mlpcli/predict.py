"""`mlp predict`: the user's own pictures, brought to MNIST's form (mlpcli/images.py), given the
saved model's input normalisation, and classified: the three most probable classes of each."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpcli import artifacts
from mlpcli.data import CLASS_NAMES
from mlpcli.errors import ImageError, WeightsError
from mlpcli.evaluate import TOP
from mlpcli.images import FIELD, read_image, to_mnist
from mlpcli.progress import bar


@dataclass
class Prediction:
    """One image: its three most probable classes as (class, name, probability), or an error."""

    image: str
    top: list[tuple[int, str, float]] | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        ranked = [{"class": k, "name": name, "probability": p} for k, name, p in self.top]
        return {"image": self.image, "predictions": ranked}

    def __str__(self) -> str:
        if self.error is not None:
            return self.error
        return f"{self.image}: " + "   ".join(f"{name} {p:.4f}" for _, name, p in self.top)


def _unused_name(folder: Path, stem: str, used: set[str]) -> str:
    """STEM.28x28.png, or STEM-2.28x28.png, STEM-3… when an earlier image of this call had the
    same stem, or the file is already in `folder`."""
    name, n = f"{stem}.28x28.png", 1
    while name in used or (folder / name).exists():
        n += 1
        name = f"{stem}-{n}.28x28.png"
    used.add(name)
    return name


def predict_images(
    target: Path, images: Sequence[Path], save_inputs: Path | None = None, progress: bool | None = None
) -> list[Prediction]:
    """Classify each image with the weights at `target` (a run directory or weights.npz). An
    image that cannot be read or holds no digit gets its error; the others are classified.
    With `save_inputs`, the 28×28 image the network saw is saved there as NAME.28x28.png
    (NAME-2.28x28.png, … when the name is taken)."""
    saved = artifacts.load_weights(artifacts.weights_file(target))
    model, names = saved.model, CLASS_NAMES[saved.dataset]
    if model.sizes[0] != FIELD * FIELD:
        raise WeightsError(f"{target}: the model takes {model.sizes[0]} inputs, not {FIELD}×{FIELD} images")
    if save_inputs is not None:
        artifacts.make_directory(save_inputs)
    predictions, used = [], set()
    for path in bar(images, progress, desc="classifying", unit="image", delay=2):
        try:
            pixels = to_mnist(read_image(path), str(path))
        except ImageError as e:
            predictions.append(Prediction(str(path), error=str(e)))
            continue
        if save_inputs is not None:
            artifacts.save_image(save_inputs / _unused_name(save_inputs, Path(path).stem, used), pixels)
        X = saved.norm.apply(pixels.reshape(1, -1))
        probabilities = model.output.probabilities(model.forward(X))[0]
        ranked = np.argsort(-probabilities, kind="stable")[:TOP]
        top = [(int(k), names[k], float(probabilities[k])) for k in ranked]
        predictions.append(Prediction(str(path), top))
    return predictions
