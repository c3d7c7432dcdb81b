"""`mlp predict`: the user's own pictures, brought to MNIST's form (mlpcli/images.py), given the
saved model's input normalisation, and classified: the most probable classes of each."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpcli import artifacts
from mlpcli.committee import Committee, mean_scores
from mlpcli.data import CLASS_NAMES
from mlpcli.errors import ImageError, WeightsError
from mlpcli.images import FIELD, IMAGE_SUFFIXES, read_image, to_mnist
from mlpcli.progress import bar


@dataclass
class Prediction:
    """One image: its most probable classes as (class, name, score), most probable first, or
    an error. `score_name` says what the scores are: probabilities (softmax), or, for an mse
    network, its outputs scaled to sum to 1. `seen`: where the 28×28 input was saved."""

    image: str
    top: list[tuple[int, str, float]] | None = None
    error: str | None = None
    score_name: str = "probability"
    seen: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        ranked = [{"class": k, "name": name, self.score_name: p} for k, name, p in self.top]
        return {"image": self.image, "predictions": ranked} | ({"input": self.seen} if self.seen else {})

    def __str__(self) -> str:
        if self.error is not None:
            return self.error
        line = f"{self.image}: " + "   ".join(f"{name} {p:.4f}" for _, name, p in self.top)
        return line if self.score_name == "probability" else f"{line}   (mse scores, not probabilities)"


NOT_FINITE = (
    "the network's output is not finite (NaN or infinity): the run's weights or input normalisation"
    " are broken; train it again"
)


def image_files(paths: Sequence[Path]) -> list[Path]:
    """`paths`, each folder among them replaced by the image files in it (by name), so that a
    folder of drawings is classified as its files are; a folder with none stays, to be
    reported."""
    found = []
    for path in paths:
        inside = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else []
        )
        found += inside or [path]
    return found


def _unused_name(folder: Path, stem: str, used: set[str]) -> str:
    """STEM.28x28.png, or STEM-2.28x28.png, STEM-3… when an earlier image of this call had the
    same stem, or the file is already in `folder`."""
    name, n = f"{stem}.28x28.png", 1
    while name in used or (folder / name).exists():
        n += 1
        name = f"{stem}-{n}.28x28.png"
    used.add(name)
    return name


def load_model(target: Path) -> artifacts.Saved:
    """The weights at `target` (a run directory or weights.npz), for 28×28 images."""
    if target.suffix.lower() in IMAGE_SUFFIXES and not target.is_dir():
        raise WeightsError(
            f"{target} is an image, not a run: name the run directory (or its weights.npz) first,"
            f" then the images: mlp predict RUN_DIR {target} ..."
        )
    saved = artifacts.load_weights(artifacts.weights_file(target))
    model = saved.model
    if not model.reads((FIELD, FIELD)):
        raise WeightsError(f"{target}: the model takes {model.input_text()}, not {FIELD}×{FIELD} images")
    return saved


def is_run(path: Path) -> bool:
    """Whether `path` names a run rather than an image or a folder of images: a folder holding
    a run's files, a .npz weights file, or nothing at all that is not named as an image (a
    mistyped run, for which weights_file finds the name meant)."""
    if path.is_dir():
        return any((path / name).exists() for name in artifacts.RUN_FILES)
    suffix = path.suffix.lower()
    return suffix == ".npz" or (not path.exists() and suffix not in IMAGE_SUFFIXES)


def predict_images(
    targets: Sequence[Path],
    images: Sequence[Path],
    save_inputs: Path | None = None,
    progress: bool | None = None,
    top: int = 3,
) -> list[Prediction]:
    """Classify each image (a folder: the images in it) with the weights at `targets` (several:
    a committee, the mean of their probabilities), keeping the `top` most probable classes. An
    image that cannot be read or holds no digit gets its error; the others are classified. With
    `save_inputs`, the 28×28 image the network saw is saved there as NAME.28x28.png
    (NAME-2.28x28.png, … when the name is taken)."""
    committee = Committee.load(targets, load_model)
    names = CLASS_NAMES[committee.first.dataset]
    if save_inputs is not None:
        artifacts.make_directory(save_inputs)
    predictions, used = [], set()
    for path in bar(image_files(images), progress, desc="classifying", unit="image", delay=2):
        try:
            pixels = to_mnist(read_image(path), str(path))
        except ImageError as e:
            predictions.append(Prediction(str(path), error=str(e)))
            continue
        seen = None
        if save_inputs is not None:
            seen = save_inputs / _unused_name(save_inputs, Path(path).stem, used)
            artifacts.save_image(seen, pixels)
        with np.errstate(all="ignore"):  # broken weights overflow: said once, below
            member_scores = committee.member_scores(pixels.reshape(1, -1))
        for member, scores in zip(committee.members, member_scores):
            if not np.isfinite(scores).all():
                raise WeightsError(f"{member.path}: {NOT_FINITE}")
        scores = mean_scores(member_scores)[0]
        ranked = np.argsort(-scores, kind="stable")[:top]
        ranks = [(int(k), names[k], float(scores[k])) for k in ranked]
        predictions.append(
            Prediction(str(path), ranks, None, committee.first.model.output.score_name, seen and str(seen))
        )
    return predictions
