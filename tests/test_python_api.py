"""The README's Python, run as pasted: the five lines of onnxruntime after `mlp export` print the
accuracy `mlp eval` reports, and "From Python" runs whole in a fresh interpreter, in a folder laid
out as the README's (runs/mnist, docs/seven.jpg, the clone's mlpcli/datasets). And the API's
promises the README leans on: predictions as mlp predict's, the deltas the backward pass keeps."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, mlp
from PIL import Image
from test_backprop import runs_dir  # the runs: an MLP of each activation, an mse one, an RNN

import mlpcli
from mlpcli.predict import predict_images

__all__ = ["runs_dir"]  # a fixture
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_block(section: str) -> str:
    """The first ```python block of the README's section `section` (its heading's text)."""
    text = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", text, re.S)[1]


@pytest.fixture(scope="module")
def readme_folder(runs_dir, tmp_path_factory):
    """A folder as the README's commands expect, the clone's: runs/mnist (here a small
    real-MNIST run), docs/seven.jpg and mlpcli/ (with the test set in mlpcli/datasets)."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(runs_dir / "relu", folder / "runs" / "mnist")
    (folder / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "seven.jpg", folder / "docs")
    (folder / "mlpcli").symlink_to(ROOT / "mlpcli")  # as in the clone: `import mlpcli` finds it
    return folder


def run_python(code: str, folder) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readmes_onnxruntime_lines_give_mlp_evals_accuracy(readme_folder):
    code = python_block("Take a trained network elsewhere: mlp export")
    assert len(code.strip().splitlines()) == 5
    assert mlp("export", readme_folder / "runs" / "mnist").exit_code == 0
    printed = run_python(code, readme_folder)
    evaluated = mlp("eval", readme_folder / "runs" / "mnist", "--json")
    assert float(printed.split()[-1]) == json.loads(evaluated.stdout)["accuracy"]


def test_from_python_runs_as_pasted(readme_folder):
    printed = run_python(python_block("From Python"), readme_folder).splitlines()
    metrics = json.loads((readme_folder / "runs" / "mnist" / "metrics.json").read_text())
    assert printed[0].startswith("Run('runs/mnist': 784-48-24-10 relu softmax_cross_entropy, mnist")
    assert printed[2] == "7"
    assert printed[3].startswith("C = ") and printed[3].endswith("[(1, 48), (1, 24), (1, 10)]")
    assert float(printed[4]) == metrics["test_accuracy"]  # run.evaluate(): mlp eval's accuracy
    trained = json.loads((readme_folder / "runs" / "from-python" / "metrics.json").read_text())
    assert float(printed[5]) == trained["test_accuracy"]


def test_predict_prepares_files_as_mlp_predict_does(runs_dir):
    run = mlpcli.load_run(runs_dir / "tanh")
    seven = ROOT / "docs" / "seven.jpg"
    (expected,) = predict_images([runs_dir / "tanh"], [seven], top=10)
    found = run.predict([seven, seven])
    assert found.shape == (2, 10) and np.array_equal(found[0], found[1])
    assert [k for k, _, _ in expected.top] == list(np.argsort(-found[0], kind="stable"))
    np.testing.assert_allclose(sorted(p for _, _, p in expected.top), sorted(found[0]), rtol=1e-5, atol=1e-7)


def test_arrays_are_read_as_mnist_images_and_a_wrong_shape_is_refused(runs_dir):
    run = mlpcli.load_run(runs_dir / "relu")
    digits = np.zeros((3, 28, 28), np.uint8)
    digits[:, 8:20, 13:15] = 255  # a stroke: a 1
    assert run.predict(digits).shape == (3, 10) and run.predict(digits)[:, 1].min() > 0.5
    np.testing.assert_allclose(run.predict(digits[0]), run.predict(digits)[:1], rtol=1e-5)
    for wrong in (np.zeros((32, 32)), np.zeros((28, 28, 3)), np.zeros((5, 32, 32)), [np.zeros((2, 28, 28))]):
        with pytest.raises(ValueError, match="28×28 in MNIST's form"):
            run.predict(wrong)
    with pytest.raises(ValueError, match="look scaled to 0-1: mlpcli reads MNIST's 0-255"):
        run.predict(digits / 255.0)
    with pytest.raises(ValueError, match="grey levels from 0 to 255"):
        run.predict(digits * 2.0)
    assert run.predict([]).shape == (0, 10)
    with pytest.raises(TypeError, match="a file's path, a PIL image or a 28×28 array, not int"):
        run.predict([1])  # not a file descriptor: stdout stays open
    drawn, photo = Image.open(ROOT / "docs" / "seven.jpg"), ROOT / "docs" / "seven.jpg"
    # a PIL image is read as its PNG would be (the JPEG file itself is decoded at a smaller scale)
    np.testing.assert_allclose(run.predict(drawn), run.predict(photo), atol=0.01)


def test_evaluate_reads_the_weights_it_loaded(runs_dir, tmp_path):
    """A weights file on its own, beside another run's weights.npz: its own network and figures."""
    folder = shutil.copytree(runs_dir / "rnn", tmp_path / "rnn")
    shutil.copy(runs_dir / "relu" / "weights.npz", folder / "relu-weights.npz")
    run = mlpcli.load_run(folder / "relu-weights.npz")
    assert run.network.kind == "mlp" and run.metrics == {} and run.history == []
    assert run.evaluate()["weights"] == str(folder / "relu-weights.npz")


def test_the_api_is_documented_and_small():
    assert sorted(mlpcli.__all__) == ["Run", "load_run", "train_run"]
    for name in mlpcli.__all__:
        assert getattr(mlpcli, name).__doc__, name
    assert set(mlpcli.__all__) <= set(dir(mlpcli))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        mlpcli.nothing  # noqa: B018
