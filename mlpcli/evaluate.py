"""Accuracy, loss, top-3 accuracy, per-class precision, recall and F1, the confusion matrix,
and the mistakes, most confident first."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mlpcli.data import N_CLASSES, one_hot
from mlpcli.nn.base import Network
from mlpcli.progress import bar

CHUNK = 10_000  # examples per forward pass of an evaluation
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
        probabilities = model.output.scores(Z)
        ranked[rows] = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        confidence[rows] = np.take_along_axis(probabilities, ranked[rows, :1], axis=1)[:, 0]
    return Report(loss_sum / n, labels, ranked, confidence)


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
