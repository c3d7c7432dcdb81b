import numpy as np
import pytest

from mlpcli.evaluate import Report, evaluate, format_report
from mlpcli.nn.network import MLP


def test_confusion_precision_recall():
    confusion = np.zeros((10, 10), dtype=np.int64)
    confusion[0, 0], confusion[0, 1], confusion[1, 1], confusion[2, 1] = 3, 1, 2, 2
    report = Report(0.625, 1.0, confusion)
    assert report.precision[:3].tolist() == [1.0, 0.4, 0.0]
    assert report.recall[:3].tolist() == [0.75, 1.0, 0.0]
    assert report.precision[5] == 0 and report.recall[5] == 0  # no examples: 0, not a warning
    d = report.to_dict([str(k) for k in range(10)])
    assert d["confusion_matrix"][0][:2] == [3, 1] and d["per_class"][0] == {
        "class": "0",
        "precision": 1.0,
        "recall": 0.75,
        "support": 4,
    }


def test_evaluate_counts_predictions():
    model = MLP([2, 10], dtype=np.float64)
    model.layers[0].W[:2] = np.eye(2)  # class 0 ← x₀, class 1 ← x₁
    X = np.array([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    report = evaluate(model, X, np.array([0, 1, 1]))
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.confusion[1, 0] == 1 and report.confusion.sum() == 3


def test_format_report_is_a_table():
    confusion = np.diag(np.arange(1, 11))
    text = format_report(Report(1.0, 0.1, confusion), [f"c{k}" for k in range(10)])
    assert "accuracy  1.0000" in text and "9 c9" in text
    assert text.splitlines()[-1].split()[-1] == "10"
