"""`mlp export` proved with a real runtime: each run's ONNX model, run by onnxruntime on the
10,000 real MNIST test digits (all at once, and one at a time), predicts what mlpcli predicts,
with `mlp eval`'s accuracy exactly and scores within 1e-5 of mlpcli's forward pass; the model says
what it is; every bad input is one line, a non-zero exit and nothing written."""

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import MLP_COMMAND, TINY, mlp, write_idx_dir
from test_backprop import MLPS, runs_dir  # the runs: an MLP of each activation, an mse one, an RNN

from mlpcli import __version__, export
from mlpcli.artifacts import load_weights, save_weights
from mlpcli.data import DataConfig, load_split
from mlpcli.nn.base import Network
from mlpcli.nn.mlp import MLP

__all__ = ["runs_dir"]  # a fixture
RUNS = [*MLPS, "rnn"]
ONE_AT_A_TIME = 500  # test digits run at batch size 1 (each a session.run of its own)


@pytest.fixture(scope="module")
def test_split(mnist_dir):
    return load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test")


@pytest.fixture(scope="module")
def exported(runs_dir, tmp_path_factory):
    """Each run exported once, into a folder of its own (the runs stay as they are)."""
    folder = tmp_path_factory.mktemp("onnx")
    for name in RUNS:
        result = mlp("export", runs_dir / name, "--out", folder / f"{name}.onnx")
        assert result.exit_code == 0, result.output
        assert f"wrote {folder / name}.onnx" in result.output and "ONNX opset 17" in result.output
    return folder


@pytest.mark.parametrize("name", RUNS)
def test_onnxruntime_answers_as_mlpcli_does(runs_dir, exported, test_split, name):
    session = onnxruntime.InferenceSession(str(exported / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    saved = load_weights(runs_dir / name / "weights.npz")
    expected = saved.model.output.scores(saved.model.forward(saved.norm.apply(test_split.images)))
    scores = "scores" if name == "mse" else "probabilities"
    assert [output.name for output in session.get_outputs()] == ["logits", scores]
    pixels = test_split.images.reshape(-1, 28, 28).astype(np.float32)
    logits, found = session.run(None, {"pixels": pixels})
    assert found.shape == (10_000, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(found, expected, atol=1e-5)
    assert np.array_equal(found.argmax(axis=1), expected.argmax(axis=1))
    evaluated = mlp("eval", runs_dir / name, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    accuracy = json.loads(evaluated.stdout)["accuracy"]
    assert float(np.mean(found.argmax(axis=1) == test_split.labels)) == accuracy
    one_by_one = np.concatenate(
        [session.run([scores], {"pixels": pixels[i : i + 1]})[0] for i in range(ONE_AT_A_TIME)]
    )
    np.testing.assert_allclose(one_by_one, expected[:ONE_AT_A_TIME], atol=1e-5)


@pytest.mark.parametrize("shift", [0.0, -100.0], ids=["some-outputs-negative", "every-output-negative"])
def test_mse_scores_without_an_output_activation_are_clipped_as_mlpcli_clips_them(
    runs_dir, tmp_path, test_split, shift
):
    """mse after the identity: outputs below 0 count as 0, and a digit whose outputs are all
    below 0 scores 1/10 everywhere."""
    saved = load_weights(runs_dir / "mse" / "weights.npz")
    plain = MLP(saved.model.sizes, "relu", "mse", "identity")
    plain.params[...] = saved.model.params
    plain.tensors()["b2"][0][...] += shift
    run = shutil.copytree(runs_dir / "mse", tmp_path / "mse-identity")
    save_weights(run / "weights.npz", dataclasses.replace(saved, model=plain))
    assert mlp("export", run).exit_code == 0
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    (found,) = session.run(
        ["scores"], {"pixels": test_split.images[:2000].reshape(-1, 28, 28).astype(np.float32)}
    )
    expected = plain.output.scores(plain.forward(saved.norm.apply(test_split.images[:2000])))
    assert (expected == 0).any() if shift == 0 else np.all(expected == 0.1)
    np.testing.assert_allclose(found, expected, atol=1e-5)


def test_the_model_says_what_it_is(runs_dir, exported):
    model = onnx.load(exported / "relu.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == export.IR_VERSION and [o.version for o in model.opset_import] == [export.OPSET]
    said = {prop.key: prop.value for prop in model.metadata_props}
    metrics = json.loads((runs_dir / "relu" / "metrics.json").read_text())
    assert json.loads(said["classes"]) == [str(d) for d in range(10)] and said["dataset"] == "mnist"
    assert said["run"] == "relu" and said["mlpcli_version"] == __version__
    assert said["test_accuracy"] == f"{metrics['test_accuracy']:.4f}" and said["epoch"] == "1"
    assert "does not find, crop or centre a digit" in model.doc_string
    (pixels,) = model.graph.input
    assert [d.dim_param or d.dim_value for d in pixels.type.tensor_type.shape.dim] == ["N", 28, 28]
    tensors = {t.name for t in model.graph.initializer}
    assert {"W1", "b1", "W3", "b3", "mean", "inverse_std"} <= tensors  # the normalisation is inside


def test_by_default_the_model_goes_in_the_run_and_is_not_overwritten(runs_dir, tmp_path):
    run = shutil.copytree(runs_dir / "tanh", tmp_path / "tanh")
    assert mlp("export", run).exit_code == 0
    model = run / "model.onnx"
    before = model.read_bytes()
    again = mlp("export", run)
    assert again.exit_code == 1 and "model.onnx exists already: add --overwrite to replace it" in again.output
    assert model.read_bytes() == before
    (run / "model.onnx").write_bytes(b"an older model")
    assert mlp("export", run, "--overwrite").exit_code == 0 and model.read_bytes() == before


def test_an_interrupted_run_is_exported_saying_which_weights(runs_dir, tmp_path):
    run = shutil.copytree(runs_dir / "sigmoid", tmp_path / "sigmoid")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps(metrics | {"status": "interrupted", "epochs": 2}))
    result = mlp("export", run)
    assert (
        result.exit_code == 0
        and "the weights of epoch 1 of a run interrupted after 2 epochs" in result.output
    )


def bad_runs(runs_dir, tmp_path, idx_dir):
    no_weights = shutil.copytree(runs_dir / "relu", tmp_path / "no-weights")
    (no_weights / "weights.npz").unlink()
    tiny = tmp_path / "tiny"
    assert mlp("train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", tiny).exit_code == 0
    return {
        "nowhere": (tmp_path / "nowhere", "no such run directory or weights file"),
        "no weights": (no_weights, "weights"),
        "8×8 weights": (tiny, "not 28×28 images"),
        "an image": (tmp_path / "seven.png", "no such run directory or weights file"),
    }


def test_bad_runs_are_one_line_and_write_nothing(runs_dir, tmp_path):
    cases = bad_runs(runs_dir, tmp_path, write_idx_dir(tmp_path / "idx"))
    for what, (target, said) in cases.items():
        out = tmp_path / f"{what}.onnx"
        result = mlp("export", target, "--out", out)
        assert result.exit_code == 1 and said in result.output, (what, result.output)
        assert len(result.output.strip().splitlines()) == 1 and not out.exists(), what
    result = mlp("export", runs_dir / "relu", "--out", runs_dir / "relu" / "weights.npz", "--overwrite")
    assert result.exit_code == 1 and "an ONNX model's file name ends in .onnx" in result.output
    result = mlp("export", runs_dir / "relu", "--out", tmp_path / "no-such-folder" / "model.onnx")
    assert result.exit_code == 1 and "cannot write" in result.output
    assert not list(tmp_path.glob("**/*.onnx")) and not list(tmp_path.glob("**/.*.tmp"))


def test_without_onnx_it_says_how_to_install_it(runs_dir, tmp_path):
    """onnx hidden from the import system, as where the export extra is not installed."""
    hide = f"import sys; sys.modules['onnx'] = None; {MLP_COMMAND[-1]}"
    run = shutil.copytree(runs_dir / "relu", tmp_path / "relu")
    command = [sys.executable, "-c", hide, "export", str(run)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "mlp export needs onnx, of its extra: pip install" in result.stderr
    assert "[export]" in result.stderr and not (run / "model.onnx").exists()


def test_a_kind_that_cannot_write_its_forward_pass_is_told_so(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(MLP, "onnx_forward", Network.onnx_forward)
    result = mlp("export", runs_dir / "relu", "--out", tmp_path / "model.onnx")
    assert result.exit_code == 1 and "a network of kind 'mlp' cannot be exported yet" in result.output
    assert not (tmp_path / "model.onnx").exists()
