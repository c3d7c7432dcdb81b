"""Accuracy, loss, per-class precision and recall, and the confusion matrix."""

from dataclasses import dataclass

import numpy as np

from mlpcli.data import N_CLASSES, one_hot
from mlpcli.nn.network import MLP


@dataclass
class Report:
    accuracy: float
    loss: float
    confusion: np.ndarray  # (classes, classes): rows the true class, columns the prediction

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def precision(self) -> np.ndarray:
        """Of the examples predicted as class k, the share that are k (0 when none are)."""
        predicted = self.confusion.sum(axis=0)
        return np.divide(
            np.diag(self.confusion), predicted, out=np.zeros(len(predicted)), where=predicted > 0
        )

    @property
    def recall(self) -> np.ndarray:
        """Of the examples of class k, the share predicted as k (0 when there are none)."""
        support = self.support
        return np.divide(np.diag(self.confusion), support, out=np.zeros(len(support)), where=support > 0)

    def to_dict(self, class_names: list[str]) -> dict:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "confusion_matrix": self.confusion.tolist(),
            "per_class": [
                {"class": name, "precision": float(p), "recall": float(r), "support": int(s)}
                for name, p, r, s in zip(class_names, self.precision, self.recall, self.support)
            ],
        }


def loss_and_accuracy(model: MLP, X: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and predicted classes of `model` (no dropout) on (X, labels)."""
    Z = model.forward(X)
    predicted = Z.argmax(axis=1)
    loss = model.output.loss(Z, one_hot(labels, Z.shape[1], Z.dtype))
    return loss, float(np.mean(predicted == labels)), predicted


def evaluate(model: MLP, X: np.ndarray, labels: np.ndarray) -> Report:
    loss, accuracy, predicted = loss_and_accuracy(model, X, labels)
    confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return Report(accuracy, loss, confusion)


def format_report(report: Report, class_names: list[str]) -> str:
    """The report as text tables a person reads: totals, per-class figures, confusion."""
    class_names = [f"{k} {name}" for k, name in enumerate(class_names)]
    width = max(len(n) for n in class_names)
    lines = [f"accuracy  {report.accuracy:.4f}", f"loss      {report.loss:.4f}", ""]
    lines.append(f"{'class':<{width}}  precision  recall  support")
    for name, p, r, s in zip(class_names, report.precision, report.recall, report.support):
        lines.append(f"{name:<{width}}  {p:9.4f}  {r:6.4f}  {s:7d}")
    cell = max(5, len(str(report.confusion.max())) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    lines.append(" " * width + "".join(f"{k:>{cell}}" for k in range(len(class_names))))
    for name, row in zip(class_names, report.confusion):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)
