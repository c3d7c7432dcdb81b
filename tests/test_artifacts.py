import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import held_lock

from mlpcli.artifacts import Saved, load_weights, run_directory, save_weights, write_atomic, write_text
from mlpcli.data import Normalisation
from mlpcli.errors import RunDirError, WeightsError
from mlpcli.nn.mlp import MLP
from mlpcli.nn.rnn import RNN


@pytest.fixture
def saved(tmp_path):
    model = MLP([4, 3, 10], "tanh", "mse", "identity")
    model.init(np.random.default_rng(0))
    path = tmp_path / "weights.npz"
    save_weights(path, Saved(model, Normalisation(33.0, 77.0), "kmnist"))
    return model, path


def test_weights_round_trip_rebuilds_the_model(saved):
    model, path = saved
    saved = load_weights(path)
    loaded, norm = saved.model, saved.norm
    assert (norm.mean, norm.std) == (33.0, 77.0) and saved.dataset == "kmnist"
    assert loaded.sizes == [4, 3, 10] and repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.params, model.params)
    assert load_weights(path.parent).model.sizes == [4, 3, 10]  # a run directory works too


def test_rnn_weights_round_trip_and_say_their_kind(tmp_path):
    model = RNN(4, 3, 5, 10, "relu")
    model.init(np.random.default_rng(0), "xavier", "orthogonal")
    path = tmp_path / "weights.npz"
    save_weights(path, Saved(model, Normalisation(33.0, 77.0), "mnist", 2))
    loaded = load_weights(path).model
    assert isinstance(loaded, RNN) and (loaded.steps, loaded.n_input, loaded.sizes) == (4, 3, [12, 5, 10])
    assert repr(loaded) == repr(model) and loaded.activation.name == "relu"
    np.testing.assert_array_equal(loaded.params, model.params)


def test_a_weights_file_from_before_the_rnn_holds_an_mlp(saved):
    model, path = saved
    rewrite(path, lambda arrays: arrays.pop("kind"))
    loaded = load_weights(path).model
    assert isinstance(loaded, MLP) and repr(loaded) == repr(model)


def rewrite(path, change):
    with np.load(path) as npz:
        arrays = dict(npz)
    change(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("W2"), "W2 should be floats of shape (10, 3), found missing"),
        (lambda a: a.pop("sizes"), "missing sizes"),
        (
            lambda a: a.update(W1=np.zeros((3, 5), np.float32)),
            "W1 should be floats of shape (3, 4), found float32 (3, 5)",
        ),
        (lambda a: a.update(b1=np.zeros(3, np.int64)), "b1 should be floats"),
        (lambda a: a.update(sizes=np.array([4, 0, 10])), "is not a list of layer widths"),
        (lambda a: a.update(activation=np.array("swish")), "unknown activation, output or dataset"),
        (lambda a: a.update(dataset=np.array("cifar10")), "unknown activation, output or dataset"),
        (lambda a: a.update(W1=np.full((3, 4), np.nan, np.float32)), "holds non-finite values"),
        (lambda a: a.update(input_std=np.array(0.0)), "holds non-finite values"),
    ],
)
def test_bad_weights_files_fail_clearly(saved, change, message):
    _, path = saved
    rewrite(path, change)
    with pytest.raises(WeightsError) as error:
        load_weights(path)
    assert message in str(error.value)


def test_truncated_missing_and_pickled_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "none.npz")
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(WeightsError, match="not a readable weights file"):
        load_weights(truncated)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, W1=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightsError, match="not a readable weights file"):
        load_weights(pickled)
    assert zipfile.is_zipfile(pickled)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    write_text(path, json.dumps({"v": 1}))

    def fail(f: io.BufferedWriter):
        f.write(b"{half")
        raise OSError(28, "No space left on device")

    with pytest.raises(RunDirError, match="cannot write .*metrics.json: No space left on device"):
        write_atomic(path, fail)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def test_run_directory_is_new_or_empty_unless_overwritten(tmp_path):
    with run_directory(tmp_path / "a" / "b", "new") as path:
        assert (path / ".lock").read_text().strip() == str(os.getpid())
        (path / "weights.npz").write_text("keep me")
    assert not (path / ".lock").exists()
    with pytest.raises(
        RunDirError, match="already holds files: choose a new --out, or --overwrite or --resume"
    ):
        with run_directory(path, "new"):
            pass
    assert (path / "weights.npz").read_text() == "keep me"
    with run_directory(path, "overwrite"):
        pass
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="is a file, not a run directory"):
        with run_directory(tmp_path / "file", "new"):
            pass


def test_a_directory_created_for_a_run_that_fails_is_removed(tmp_path):
    with pytest.raises(RuntimeError), run_directory(tmp_path / "run", "new"):
        raise RuntimeError("the data did not load")
    assert not (tmp_path / "run").exists()


def test_a_live_run_holds_the_directory_and_a_crashed_one_does_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with (
        held_lock(run, pid=4242),
        pytest.raises(RunDirError, match="in use by another mlp train \\(process 4242\\)"),
    ):
        with run_directory(run, "overwrite"):
            pass
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    (run / ".lock").write_text(f"{dead.pid}\n")  # left by a run that crashed: nobody holds it
    with run_directory(run, "overwrite") as path:
        assert (path / ".lock").read_text().strip() == str(os.getpid())
    assert list(run.iterdir()) == []


def test_a_failed_run_removes_the_parent_directories_it_created(tmp_path):
    with pytest.raises(RuntimeError), run_directory(tmp_path / "runs" / "a" / "b", "new"):
        raise RuntimeError("the data did not load")
    assert list(tmp_path.iterdir()) == []
