import numpy as np
import pytest

from mlpcli import evaluate as evaluation
from mlpcli.evaluate import Report, evaluate, format_report, per_class
from mlpcli.nn.mlp import MLP


def report_of(labels: list[int], predicted: list[int], confidence: list[float] | None = None) -> Report:
    """A Report whose top class is `predicted` (the next two: any others)."""
    ranked = np.array([[p, (p + 1) % 10, (p + 2) % 10] for p in predicted])
    confidence = np.array(confidence or [0.9] * len(labels))
    return Report(0.1, np.array(labels), ranked, confidence)


def test_confusion_precision_recall_f1():
    # class 0: 3 right, 1 taken for 1; class 1: 2 right; class 2: 2 taken for 1
    report = report_of([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1, 1, 1])
    figures = per_class(report.confusion)
    assert figures["precision"][:3].tolist() == [1.0, 0.4, 0.0]
    assert figures["recall"][:3].tolist() == [0.75, 1.0, 0.0]
    assert figures["f1"][:2] == pytest.approx([2 * 0.75 / 1.75, 2 * 0.4 / 1.4])
    assert figures["precision"][5] == 0 and figures["f1"][5] == 0  # no examples: 0, not a warning
    d = report.to_dict([str(k) for k in range(10)])
    assert d["confusion_matrix"][0][:2] == [3, 1] and d["per_class"][0] == {
        "class": "0",
        "precision": 1.0,
        "recall": 0.75,
        "f1": pytest.approx(6 / 7),
        "support": 4,
    }
    assert d["accuracy"] == 5 / 8 and d["macro_f1"] == pytest.approx(np.mean(figures["f1"]))
    assert d["weighted_f1"] == pytest.approx((4 * 6 / 7 + 2 * 4 / 7 + 0) / 8)


def test_top3_and_the_mistakes_most_confident_first():
    report = report_of([0, 3, 5, 7], [0, 2, 9, 6], confidence=[0.9, 0.5, 0.8, 0.6])
    assert report.top_accuracy == 0.75  # 5 is not among 9, 0, 1; the others are in their top three
    assert report.mistakes.tolist() == [2, 3, 1]


def test_evaluate_counts_predictions():
    model = MLP([2, 10], dtype=np.float64)
    model.layers[0].W[:2] = np.eye(2)  # class 0 ← x₀, class 1 ← x₁
    X = np.array([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    report = evaluate(model, X, np.array([0, 1, 1]), progress=False)
    assert report.accuracy == pytest.approx(2 / 3) and report.mistakes.tolist() == [2]
    assert report.confusion[1, 0] == 1 and report.confusion.sum() == 3
    assert report.confidence[0] == pytest.approx(np.exp(5) / (np.exp(5) + 9))


def test_format_report_is_a_table_naming_each_class_once():
    report = report_of(list(range(10)), list(range(10)))
    text = format_report(report, [str(k) for k in range(10)])
    assert "accuracy        1.0000" in text and "\n9  " in text and "9 9" not in text
    text = format_report(report, ["T-shirt/top", *[f"c{k}" for k in range(1, 10)]])
    assert "0 T-shirt/top" in text and text.splitlines()[-1].split()[-1] == "1"


def test_an_evaluation_in_chunks_is_the_evaluation_in_one(monkeypatch):
    """The loss is the mean over every example, whatever the chunks; the rankings the same."""
    model = MLP([6, 5, 4], dtype=np.float64)
    model.init(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    X, labels = rng.standard_normal((23, 6)), rng.integers(0, 4, 23)
    whole = evaluate(model, X, labels)
    monkeypatch.setattr(evaluation, "CHUNK", 5)  # 5 + 5 + 5 + 5 + 3
    chunked = evaluate(model, X, labels)
    assert chunked.loss == pytest.approx(whole.loss, rel=1e-12)
    np.testing.assert_array_equal(chunked.ranked, whole.ranked)
    np.testing.assert_allclose(chunked.confidence, whole.confidence)
    Z = model.forward(X)
    assert whole.loss == pytest.approx(model.output.loss(Z, np.eye(4)[labels]), rel=1e-12)


def test_the_confusion_matrix_by_row_divides_each_row_by_its_true_class():
    report = report_of([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1, 1, 1])
    by_row = np.array(report.to_dict([str(k) for k in range(10)])["confusion_matrix_by_row"])
    np.testing.assert_allclose(by_row[:3, :3], [[0.75, 0.25, 0], [0, 1, 0], [0, 1, 0]])
    assert (by_row[3:] == 0).all()  # no examples of those classes: 0, not a division by zero
