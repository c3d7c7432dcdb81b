"""`mlp eval`: a network's accuracy, loss, top-3 accuracy, per-class precision, recall and
F1, the confusion matrix and the mistakes, most confident first (the Report), and the command
that reports them for a run's weights on a split and writes eval.json, confusion.png and
mistakes.png beside them."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from mlpcli import artifacts
from mlpcli.committee import Committee, Member, mean_scores
from mlpcli.config import Config, parse_override, with_overrides
from mlpcli.data import (
    CLASS_NAMES,
    N_CLASSES,
    Dataset,
    Normalisation,
    Source,
    load_splits,
    locate,
    one_hot,
    recognise,
)
from mlpcli.errors import ConfigError, DataError, RunDirError, WeightsError
from mlpcli.nn.base import CHUNK, Network
from mlpcli.output import Echo
from mlpcli.progress import bar

TOP = 3  # top-k accuracy: the true class among the k most probable


@dataclass
class Report:
    """Per-example results of a model on a labelled set, and every figure derived from them."""

    loss: float
    labels: np.ndarray  # (N,) the true classes
    ranked: np.ndarray  # (N, TOP) the most probable classes, most probable first
    confidence: np.ndarray  # (N,) the probability of the predicted class

    @property
    def predicted(self) -> np.ndarray:
        return self.ranked[:, 0]

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predicted == self.labels))

    @property
    def top_accuracy(self) -> float:
        """The share of examples whose true class is among the TOP most probable."""
        return float(np.mean((self.ranked == self.labels[:, None]).any(axis=1)))

    @cached_property
    def confusion(self) -> np.ndarray:
        """(classes, classes) counts: rows the true class, columns the prediction."""
        confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
        np.add.at(confusion, (self.labels, self.predicted), 1)
        return confusion

    @cached_property
    def mistakes(self) -> np.ndarray:
        """Indices of the wrongly classified examples, the most confidently wrong first."""
        wrong = np.flatnonzero(self.predicted != self.labels)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")]

    def to_dict(self, class_names: list[str]) -> dict:
        figures = per_class(self.confusion)
        support = figures["support"]
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            f"top{TOP}_accuracy": self.top_accuracy,
            "macro_f1": float(figures["f1"].mean()),
            "weighted_f1": float(figures["f1"] @ support / support.sum()),
            "confusion_matrix": self.confusion.tolist(),
            "confusion_matrix_by_row": _share(self.confusion, self.confusion.sum(axis=1)[:, None]).tolist(),
            "per_class": [
                {"class": name, **{key: values[k].item() for key, values in figures.items()}}
                for k, name in enumerate(class_names)
            ],
            "mistakes": self.mistakes.tolist(),
        }


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision (of the examples predicted k, the share that are k), recall (of the examples
    of k, the share predicted k), F1 = 2PR/(P + R), and support, per class; 0 where undefined."""
    right, predicted, support = np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1)
    precision = _share(right, predicted)
    recall = _share(right, support)
    f1 = _share(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole, 0 where whole is 0."""
    shape = np.broadcast_shapes(part.shape, whole.shape)
    return np.divide(part, whole, out=np.zeros(shape), where=whole > 0)


def loss_and_accuracy(model: Network, X: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and predicted classes of `model` (no dropout) on (X, labels)."""
    Z = model.forward(X)
    predicted = Z.argmax(axis=1)
    loss = model.output.loss(Z, one_hot(labels, Z.shape[1], Z.dtype))
    return loss, float(np.mean(predicted == labels)), predicted


def evaluate(model: Network, X: np.ndarray, labels: np.ndarray, progress: bool | None = None) -> Report:
    """The model (no dropout) on (X, labels), CHUNK examples per forward pass; a progress bar
    on a terminal when it takes more than two seconds (`progress` False: never)."""
    n, k = len(labels), min(TOP, model.sizes[-1])
    loss_sum, ranked, confidence = 0.0, np.empty((n, k), dtype=np.intp), np.empty(n)
    starts = range(0, n, CHUNK)
    for start in bar(starts, progress, desc="evaluating", unit="chunk", delay=2):
        rows = slice(start, start + CHUNK)
        Z = model.forward(X[rows])
        loss_sum += model.output.loss(Z, one_hot(labels[rows], Z.shape[1], Z.dtype)) * len(Z)
        ranked[rows], confidence[rows] = _ranked(model.output.scores(Z), k)
    return Report(loss_sum / n, labels, ranked, confidence)


def evaluate_committee(
    committee: Committee, pixels: np.ndarray, labels: np.ndarray
) -> tuple[Report, list[float]]:
    """The committee on (pixels, labels): the report of p̄, its loss the cross-entropy
    -mean log p̄_y (a member's own, for softmax members), and each member's accuracy alone."""
    member_scores = committee.member_scores(pixels)
    scores = mean_scores(member_scores)
    of_label = np.take_along_axis(scores, labels[:, None], axis=1)[:, 0]
    loss = float(-np.mean(np.log(np.maximum(of_label, np.finfo(scores.dtype).tiny))))
    ranked, confidence = _ranked(scores, min(TOP, scores.shape[1]))
    accuracies = [float(np.mean(s.argmax(axis=1) == labels)) for s in member_scores]
    return Report(loss, labels, ranked, confidence), accuracies


def _ranked(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k classes of highest score in each row, highest first, and the highest score."""
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ranked, np.take_along_axis(scores, ranked[:, :1], axis=1)[:, 0]


def format_report(report: Report, class_names: list[str]) -> str:
    """The report as text tables a person reads: totals, per-class figures, confusion."""
    figures, confusion = per_class(report.confusion), report.confusion
    class_names = [name if name == str(k) else f"{k} {name}" for k, name in enumerate(class_names)]
    width = max(len("class"), *map(len, class_names))
    lines = [
        f"accuracy        {report.accuracy:.4f}",
        f"top-{TOP} accuracy  {report.top_accuracy:.4f}",
        f"loss            {report.loss:.4f}",
        "",
        f"{'class':<{width}}  precision  recall      f1  support",
    ]
    for k, name in enumerate(class_names):
        p, r, f1, support = (figures[key][k] for key in ("precision", "recall", "f1", "support"))
        lines.append(f"{name:<{width}}  {p:9.4f}  {r:6.4f}  {f1:6.4f}  {support:7d}")
    cell = max(5, len(str(confusion.max())) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    lines.append(" " * width + "".join(f"{k:>{cell}}" for k in range(len(class_names))))
    for name, row in zip(class_names, confusion):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def eval_run(
    target: Path, data_overrides: Sequence[str], echo: Echo, split: str = "test", progress: bool | None = None
) -> dict:
    """Evaluate saved weights on the test split (or the run's own validation or training
    split); print the report; write eval.json, confusion.png and mistakes.png beside the weights.
    Returns what eval.json holds."""
    weights = artifacts.weights_file(target)
    saved = artifacts.load_weights(weights)
    config, dataset, data_report = _data(saved, weights, data_overrides, echo, split)
    report = evaluate(saved.model, saved.norm.apply(dataset.images), dataset.labels, progress)
    which = artifacts.which_weights(saved, weights.parent)
    echo(f"{saved.model}{which} on the {config.data.name} {split} split ({len(dataset)} examples)\n")
    result = {"weights": str(weights), "dataset": config.data.name, "split": split, "data": data_report}
    return _report_and_write(report, result, dataset, weights.parent, echo, f"{config.data.name} {split}")


COMMITTEE_FILES = artifacts.evaluation_files("test")  # what a committee's --out folder may hold


def eval_committee(
    targets: Sequence[Path], data_overrides: Sequence[str], echo: Echo, out: Path | None = None
) -> dict:
    """Evaluate a committee of runs on the test split: print the report of p̄ and each
    member's accuracy; write eval.json (naming the members), confusion.png and mistakes.png
    into `out` (default: committees/DATASET-DATE-TIME), a new folder or an earlier committee's.
    Returns what eval.json holds."""
    files = [artifacts.weights_file(target) for target in targets]
    committee = Committee([Member(Path(t), artifacts.load_weights(f)) for t, f in zip(targets, files)])
    config, dataset, data_report = _data(committee.first, files[0], data_overrides, echo, "test")
    for member, weights in zip(committee.members[1:], files[1:]):
        _check_fits(member.saved, dataset, weights, f"the {config.data.name} test images")
    name = config.data.name
    out = out or _claimed(Path("committees") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}")
    _check_committee_folder(out)
    report, accuracies = evaluate_committee(committee, dataset.images, dataset.labels)
    n = len(committee)
    echo(f"a committee of {n} on the {name} test split ({len(dataset)} examples):")
    width = max(len(str(m.path)) for m in committee.members)
    for member, accuracy in zip(committee.members, accuracies):
        echo(f"  {str(member.path):<{width}}  accuracy {accuracy:.4f} alone")
    echo("answering the mean of their probabilities:\n")
    members = [
        {"run": str(m.path), "weights": str(f.resolve()), "network": str(m.saved.model), "accuracy": accuracy}
        for m, f, accuracy in zip(committee.members, files, accuracies)
    ]
    result = {"committee": members, "dataset": name, "split": "test", "data": data_report}
    return _report_and_write(report, result, dataset, out, echo, f"committee of {n}, {name} test")


def _data(
    saved: artifacts.Saved, weights: Path, data_overrides: Sequence[str], echo: Echo, split: str
) -> tuple[Config, Dataset, dict]:
    """The config, the split to evaluate and eval.json's data report, for the weights file
    `weights` (holding `saved`), its run's config naming the data."""
    if split != "test" and any(parse_override(item)[0] == "data.validation" for item in data_overrides):
        raise ConfigError(
            f"data.validation cannot be --set for the {split} split: the run's own config drew which"
            " of its images it held out"
        )
    run_config = weights.parent / artifacts.CONFIG
    config = _run_config(saved.dataset, run_config, data_overrides)
    dataset, test, source = _evaluated_split(config, split, run_config.exists(), weights)
    if source.note:
        echo(source.note)
    _check_fits(saved, dataset, weights, f"the {config.data.name} {split} images")
    data_report = _data_report(saved, dataset, test, source, weights, data_overrides, run_config.exists())
    return config, dataset, data_report


def _report_and_write(
    report: Report, result: dict, dataset: Dataset, folder: Path, echo: Echo, what: str
) -> dict:
    """Print the report and its warnings; write eval.json (`result` and the report's figures),
    confusion.png and mistakes.png into `folder`. Returns what eval.json holds."""
    names = CLASS_NAMES[result["dataset"]]
    for warning in result["data"]["warnings"]:
        echo(f"warning: {warning}\n")
    echo(format_report(report, names))
    result |= report.to_dict(names)
    artifacts.make_directory(folder)
    report_file, confusion_file, mistakes_file = (
        folder / name for name in artifacts.evaluation_files(result["split"])
    )
    artifacts.write_json(report_file, result)
    _draw_evaluation(report, dataset, names, what, confusion_file, mistakes_file)
    echo(f"\nwrote {report_file}, {confusion_file.name}, {mistakes_file.name}")
    return result


def _claimed(folder: Path) -> Path:
    """`folder`, or FOLDER-2, FOLDER-3, … when it is taken: the first that did not exist, made
    now, so that two committees evaluated in the same second never share one."""
    n, found = 1, folder
    while True:
        try:
            found.mkdir(parents=True)
            return found
        except FileExistsError:
            n += 1
            found = folder.with_name(f"{folder.name}-{n}")


def _check_committee_folder(folder: Path) -> None:
    """A committee writes only into a new or empty folder, or one an earlier committee wrote
    (its files replaced): never over a run's own evaluation."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise RunDirError(f"{folder} is a file, not a folder for the committee's evaluation")
    held = {p.name for p in folder.iterdir()}
    earlier = artifacts.read_json_or_empty(folder / COMMITTEE_FILES[0]) if held else {}
    if held and not (held <= set(COMMITTEE_FILES) and "committee" in earlier):
        raise RunDirError(
            f"{folder} holds files that are not a committee's evaluation: choose a new or empty --out"
        )


def _evaluated_split(
    config: Config, split: str, has_config: bool, weights: Path
) -> tuple[Dataset, Dataset, Source]:
    """The split to evaluate, the test split (by which the data is recognised), and where they
    came from. The validation and training splits are the run's own: its seed drew them."""
    if split == "test":
        source = locate(config.data, ("test",))
        test = source.read("test")
        return test, test, source
    if not has_config:
        raise WeightsError(
            f"{weights}: a weights file alone has no {split} split (its run's config and seed draw it);"
            " evaluate its run directory"
        )
    if split == "validation" and not config.data.validation:
        raise RunDirError(
            f"{weights.parent} held no examples out for validation (data.validation = 0): it has no"
            " validation split to evaluate; --split test or train"
        )
    splits = load_splits(config.data, config.train.seed)
    return getattr(splits, split), splits.test, splits.source


def _check_fits(saved: artifacts.Saved, dataset: Dataset, weights: Path, what: str) -> None:
    """The model's inputs and outputs fit the data."""
    model = saved.model
    if model.sizes[-1] != N_CLASSES:
        raise WeightsError(
            f"{weights}: the model has {model.sizes[-1]} outputs, the data {N_CLASSES} classes"
        )
    if not model.reads(dataset.image_shape):
        rows, columns = dataset.image_shape
        raise WeightsError(
            f"{weights}: the model takes {model.input_text()} but {what} have {rows * columns} pixels"
            f" in {rows} rows"
        )


NORMALISATION_TOLERANCE = 0.25  # of the training std: how far the data's mean and std may stray


def _data_report(
    saved: artifacts.Saved,
    dataset: Dataset,
    test: Dataset,
    source: Source,
    weights: Path,
    overrides: Sequence[str],
    has_config: bool,
) -> dict:
    """What the evaluated data is, for eval.json: a well-known dataset (recognised by its test
    split `test`) other than the one the weights learnt, or than data.name, stops the
    evaluation; unknown data whose pixels look unlike the training images' (the normalisation
    saved with the weights) is warned about, as is data other than the run's config names."""
    found = recognise(test)
    if found is not None and found != saved.dataset:
        raise DataError(
            f"the weights {weights} learnt {saved.dataset}, but the data in {source.where}"
            f" is {found} (recognised by its test set): point data.dir at {saved.dataset}'s files"
        )
    if found is not None and found != source.name:
        raise DataError(
            f"data.name is {source.name}, but the data in {source.where} is {found}: drop --set data.name"
        )
    warnings = []
    if found is None:
        seen, norm = Normalisation.of(dataset.images), saved.norm
        if max(abs(seen.mean - norm.mean), abs(seen.std - norm.std)) > NORMALISATION_TOLERANCE * norm.std:
            warnings.append(
                f"these images are unlike the ones the weights learnt from: pixel mean {seen.mean:.1f}"
                f" and std {seen.std:.1f}, where training saw {norm.mean:.1f} and {norm.std:.1f}"
            )
    if overrides and has_config:
        warnings.append(f"evaluated on other data than the run's own config names ({', '.join(overrides)})")
    return source.to_dict() | {"recognised": found, "warnings": warnings}


SHOWN_MISTAKES = 24  # the most confident mistakes drawn in mistakes.png


def _draw_evaluation(
    report: Report, dataset: Dataset, names: list[str], what: str, confusion_file: Path, mistakes_file: Path
) -> None:
    from mlpcli import plots

    title = f"{what}: accuracy {report.accuracy:.4f}"
    artifacts.save_figure(confusion_file, plots.confusion(report.confusion, names, title))
    shown = report.mistakes[:SHOWN_MISTAKES]
    images = dataset.images[shown].reshape(-1, *dataset.image_shape)
    mistakes_title = f"{what}: the {len(shown)} most confident of {len(report.mistakes)} mistakes"
    figure = plots.mistakes(
        images,
        shown,
        report.labels[shown],
        report.predicted[shown],
        report.confidence[shown],
        names,
        mistakes_title,
    )
    artifacts.save_figure(mistakes_file, figure)


def _run_config(dataset: str, saved_config: Path, overrides: Sequence[str]) -> Config:
    """The run's config.yaml (when the weights sit in a run directory; else the defaults) with
    the weights' dataset as its data.name unless the file names one, then `overrides`. A run
    that read the copy of MNIST shipped with mlpcli because tfds could not be reached reads
    it again (the same files), without trying the network first."""
    try:
        raw = artifacts.read_config(saved_config)
    except FileNotFoundError:  # weights alone, or a run that has lost its config
        raw = {}
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{saved_config}: its data section must be a mapping, not {type(data).__name__}")
    data = {"name": dataset, **data}
    read_from = artifacts.read_metrics(saved_config.parent).get("data")
    if (
        data.get("source", "tfds") == "tfds"
        and isinstance(read_from, dict)
        and read_from.get("source") == "shipped"
    ):
        data |= {"source": "shipped", "dir": None}
    return with_overrides(raw | {"data": data}, overrides)
