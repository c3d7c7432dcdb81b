"""gradcheck passes on the real code and catches each planted bug, naming the tensor."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import mlp

from mlpcli.cli import main
from mlpcli.gradcheck import GradcheckSettings, check_tensors, compare, relu_pattern, worst_entries
from mlpcli.nn.activations import ReLU
from mlpcli.nn.layers import Dense
from mlpcli.nn.mlp import MLP
from mlpcli.nn.rnn import VanillaRNN

SQUARE = ["--set", "model.hidden=[16,16]", "--samples", "60"]  # W2 is square: a transpose can hide


def gradcheck(*args):
    return CliRunner().invoke(main, ["gradcheck", *args])


@pytest.mark.parametrize("args", [[], ["--all"], ["--jacobians"], ["--model", "rnn"]], ids=" ".join)
def test_every_check_passes_on_the_real_code(args):
    result = gradcheck(*args)
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and "pass" in result.output


def test_all_covers_every_activation_and_output():
    report = json.loads(gradcheck("--all", "--json").output)
    checks = {row["check"] for row in report["checks"]}
    for name in ("relu softmax_cross_entropy", "sigmoid mse(sigmoid)", "tanh mse(identity)"):
        assert any(name in check for check in checks)
    assert len(checks) == 10 and report["passed"]  # and softmax regression
    assert all(row["checked"] == np.prod(row["shape"]) for row in report["checks"])  # every entry


def test_jacobians_print_the_worked_example():
    output = gradcheck("--jacobians").output
    assert "z = W a + b = [1033.0, 1052.0]" in output
    for tensor in ("∂z/∂a = W", "∂z/∂b = I", "∂z/∂W", "diag(ŷ) - ŷŷᵀ", "∂C/∂ŷ = -y/ŷ", "ŷ - y"):
        assert tensor in output
    assert "2×2×3" in output  # ∂z/∂W is N_l × N_l × N_{l-1}


def test_same_command_same_numbers_and_json():
    first, second = gradcheck(*SQUARE, "--json"), gradcheck(*SQUARE, "--json")
    assert first.output == second.output
    report = json.loads(first.output)
    assert report["passed"] is True
    assert [row["tensor"] for row in report["checks"]] == ["W1", "b1", "W2", "b2", "W3", "b3", "input"]
    assert report["checks"][0]["checked"] == 60


def test_threshold_and_atol_decide():
    result = gradcheck(*SQUARE, "--threshold", "1e-15", "--atol", "0")
    assert result.exit_code == 1 and "FAILED" in result.output


def failed_tensors(result) -> set[str]:
    line = next(line for line in result.output.splitlines() if line.startswith("FAILED: "))
    return {item.rsplit(": ", 1)[1] for item in line.removeprefix("FAILED: ").split("; ")}


def test_catches_relu_derivative_of_one_everywhere(monkeypatch):
    monkeypatch.setattr(ReLU, "backward", lambda self, delta, a: None)  # σ' = 1 for every z
    result = gradcheck(*SQUARE)
    assert result.exit_code == 1
    assert {"W1", "b1", "W2", "b2", "input"} <= failed_tensors(result)


def test_catches_a_missing_transpose(monkeypatch):
    def backward(self, delta, input_grad=True, param_grads=True):
        np.matmul(delta.T, self.A_prev, out=self.grad_W)
        np.sum(delta, axis=0, out=self.grad_b)
        W = self.W.T if self.W.shape[0] == self.W.shape[1] else self.W  # Δ Wᵀ where shapes allow
        return delta @ W if input_grad else None

    monkeypatch.setattr(Dense, "backward", backward)
    result = gradcheck(*SQUARE)
    assert result.exit_code == 1
    assert failed_tensors(result) == {"W1", "b1", "input"}  # below the square W2 only


def test_catches_a_bias_gradient_not_summed_over_the_batch(monkeypatch):
    original = Dense.backward

    def backward(self, delta, input_grad=True, param_grads=True):
        result = original(self, delta, input_grad, param_grads)
        self.grad_b[...] = delta[0]  # the first example's delta only
        return result

    monkeypatch.setattr(Dense, "backward", backward)
    result = gradcheck(*SQUARE)
    assert result.exit_code == 1
    assert failed_tensors(result) == {"b1", "b2", "b3"}


def test_catches_an_rnn_recursion_without_the_recurrent_term(monkeypatch):
    monkeypatch.setattr(VanillaRNN, "delta_step", lambda self, error, r_next: self.V.T @ error)
    result = gradcheck("--model", "rnn")
    assert result.exit_code == 1
    assert failed_tensors(result) == {"U", "W", "b"}  # V and c do not go through the recursion


def test_a_step_across_a_relu_kink_is_reported_not_failed():
    model = MLP([1, 1, 2], "relu", dtype=np.float64)
    model.layers[0].W[...], model.layers[0].b[...] = 1.0, 0.0
    model.layers[1].W[...] = [[2.0], [-1.0]]
    X, Y = np.array([[3e-6]]), np.array([[1.0, 0.0]])  # z = 3e-6: a step of 1e-5 crosses 0
    model.loss_and_grad(X, Y)
    tensors = {"b1": (model.layers[0].b, model.layers[0].grad_b.copy())}

    def loss():
        return model.loss(X, Y)

    (kinked,) = check_tensors("kink", loss, tensors, GradcheckSettings(), relu_pattern(model))
    assert kinked.passed and kinked.kinks == 1 and kinked.verdict == "pass (1 at a kink)"
    (blind,) = check_tensors("kink", loss, tensors, GradcheckSettings())  # without the pattern it looks wrong
    assert not blind.passed


def test_bad_gradcheck_arguments():
    assert gradcheck("--samples", "0").exit_code == 2
    assert gradcheck("--eps", "0").exit_code == 2
    assert gradcheck("--model", "lstm").exit_code == 2
    result = gradcheck("--set", "model.activation=gelu")
    assert result.exit_code == 1 and "model.activation = 'gelu' is out of range" in result.output


def test_the_worst_entry_shown_is_a_failing_one_when_any_fails():
    analytic = np.array([1e-12, 1.0, 2.0])
    numeric = np.array([3e-12, 1.1, 2.0])  # entry 0: relative 0.5 but |a - n| tiny (passes by abs)
    row = compare("c", "t", analytic, numeric, GradcheckSettings())  # entry 1: relative 0.048, fails
    assert not row.passed and row.worst == (1,) and row.by_abs == 1
    assert "> 1e-06 and |a − n| > 1e-09: FAIL" in worst_entries([row], GradcheckSettings())


def test_gradcheck_of_a_config_that_cannot_train_says_so_first(tmp_path):
    """The same check of keys that fail together as mlp train and mlp sweep ask (check_config)."""
    config = tmp_path / "config.yaml"
    config.write_text("model: {hidden: [8]}\ntrain: {keep: last, patience: 3}\n")
    result = mlp("gradcheck", "--config", config)
    assert result.exit_code == 1, result.output
    assert "train.patience = 3 can never stop a run that keeps its last epoch" in result.output
