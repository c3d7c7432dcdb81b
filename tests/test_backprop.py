"""The page's backward pass (`/api/backprop`, `/api/step`, `/api/reset`) against the real server
(`mlp serve` in a child process, two workers): every δ it answers is the central difference of
the served network's loss (∂C/∂b^l = δ^l; an RNN's r^(t) by nudging z^(t) in a forward pass
written here), a step is the same step taken outside the server and two compose, whichever
worker answers; the run as trained is what everyone else sees and its files never change; bad
values are 4xx; copies stay within their cap and go with the server."""

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, mlp, start_serve
from numerical import numerical_gradient
from PIL import Image
from test_predict import as_drawn

from mlpcli import backprop
from mlpcli.artifacts import load_weights, save_weights
from mlpcli.data import DataConfig, load_split
from mlpcli.nn.mlp import MLP

NO_AUGMENT = ["data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0", "train.epochs=1"]
MLPS = {  # run name → its model, trained an epoch on the real MNIST
    "relu": ["model.hidden=[48,24]", "model.activation=relu"],
    "sigmoid": ["model.hidden=[48,24]", "model.activation=sigmoid"],
    "tanh": ["model.hidden=[48,24]", "model.activation=tanh"],
    "mse": ["model.hidden=[48]", "model.output=mse", "model.output_activation=sigmoid"],
}
RNN = ["model.kind=rnn", "model.hidden=[24]", "model.activation=tanh", "model.init=xavier", "model.dropout=0"]


@pytest.fixture(scope="module")
def runs_dir(mnist_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backprop") / "runs"
    for name, sets in [*MLPS.items(), ("rnn", RNN)]:
        sets = ["data.source=idx", f"data.dir={mnist_dir}", *NO_AUGMENT, "model.dropout=0", *sets]
        result = mlp("train", "--out", folder / name, *[a for s in sets for a in ("--set", s)])
        assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def temp_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")  # the server's TMPDIR: where its copies go


@pytest.fixture(scope="module")
def server(runs_dir, temp_dir):
    child, url = start_serve(runs_dir, env=os.environ | {"TMPDIR": str(temp_dir)})
    yield url
    child.terminate()
    child.wait(timeout=30)


@pytest.fixture(scope="module")
def digits(mnist_dir) -> list[bytes]:
    """Three real test digits, drawn large on a page as a person would (PNG)."""
    test = load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test")
    bodies = []
    for i in range(3):
        buffer = io.BytesIO()
        as_drawn(test.images[i].reshape(28, 28), seed=i).save(buffer, format="PNG")
        bodies.append(buffer.getvalue())
    return bodies


def call(
    url: str, endpoint: str, query: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, dict]:
    """POST to /api/ENDPOINT?QUERY on a connection of its own; the status and the JSON."""
    request = urllib.request.Request(
        f"{url}/api/{endpoint}?{query}", data=body, method="POST", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def answered(url: str, endpoint: str, query: str, body: bytes = b"") -> dict:
    status, found = call(url, endpoint, query, body)
    assert status == 200, found
    return found


def float64_twin(run_dir: Path):
    """The served network in float64, its normalisation, and its class count."""
    saved = load_weights(run_dir / "weights.npz")
    net = saved.model
    twin = type(net).from_spec(net.spec(), 0.0, np.float64)
    twin.params[...] = net.params
    return twin, saved.norm


def close_to(analytic, numeric, share: float = 2e-3) -> None:
    """float32 values beside float64 central differences: within `share` of the largest."""
    numeric = np.asarray(numeric, dtype=np.float64)
    np.testing.assert_allclose(analytic, numeric, rtol=share, atol=share * np.abs(numeric).max() + 1e-7)


@pytest.mark.parametrize("name", list(MLPS))
def test_mlp_deltas_are_the_biases_central_differences(server, runs_dir, digits, name):
    found = answered(server, "backprop", f"run={name}&label=3", digits[0])
    twin, norm = float64_twin(runs_dir / name)
    x = norm.apply(np.array(found["input"]).reshape(1, -1), np.float64)
    Y = np.eye(10)[[3]]
    assert found["label"] == 3 and found["steps"] == 0
    assert found["loss"] == pytest.approx(twin.loss(x, Y), rel=1e-4)
    layers = len(twin.sizes) - 1
    assert [len(d) for d in found["deltas"]] == twin.sizes[1:]
    for l in range(1, layers + 1):
        bias = twin.tensors()[f"b{l}"][0]
        close_to(found["deltas"][l - 1], numerical_gradient(lambda: twin.loss(x, Y), bias, eps=1e-6))
    twin.forward(x)
    for a, slope in zip(twin.hidden_outputs, found["slopes"], strict=True):  # σ'(z^l) from a^l
        np.testing.assert_allclose(slope, twin.activation.derivative(a[0]), rtol=1e-4, atol=1e-6)
    assert all(row["relative_error"] < 1e-6 or row["kink"] for row in found["check"]), found["check"]
    assert [row["tensor"] for row in found["check"]] == list(twin.tensors())


def test_softmax_output_delta_is_y_hat_minus_y(server, digits):
    found = answered(server, "backprop", "run=relu&label=5&top=10", digits[1])
    y_hat = {p["class"]: p["probability"] for p in found["predictions"]}
    expected = [y_hat[k] - (k == 5) for k in range(10)]
    np.testing.assert_allclose(found["deltas"][-1], expected, atol=1e-6)
    assert found["loss"] == pytest.approx(-np.log(y_hat[5]), rel=1e-4)


def test_first_layer_units_are_delta_times_input(server, runs_dir, digits):
    found = answered(server, "backprop", "run=relu&label=1", digits[2])
    twin, norm = float64_twin(runs_dir / "relu")
    x = norm.apply(np.array(found["input"]), np.float64)
    first = np.abs(found["deltas"][0])
    assert [u["unit"] for u in found["units"]] == list(
        np.argsort(-first, kind="stable")[: backprop.SHOWN_UNITS]
    )
    for unit in found["units"]:
        j = unit["unit"]
        assert unit["delta"] == pytest.approx(found["deltas"][0][j])
        close_to(unit["gradient"], unit["delta"] * x)  # ∂C/∂W¹_j = δ¹_j xᵀ
        close_to(unit["weights"], twin.tensors()["W1"][0][j].reshape(28, 28))
    pixels = np.array(found["input"], np.float64)  # ∂C/∂pixel, by central differences of the pixels
    Y = np.eye(10)[[1]]
    numeric = numerical_gradient(lambda: twin.loss(norm.apply(pixels.reshape(1, -1), np.float64), Y), pixels)
    close_to(found["input_gradient"], numeric)


def rnn_loss(tensors: dict, rows: np.ndarray, label: int, nudged: np.ndarray, step: int) -> np.ndarray:
    """C of the many-to-one tanh RNN for each row of `nudged`, added to z^(step) (§6b, written
    here from the equations, in float64): one loss per nudge."""
    U, W, b, V, c = (tensors[name][0] for name in ("U", "W", "b", "V", "c"))
    h = np.zeros((len(nudged), len(b)))
    for t in range(len(rows)):
        z = rows[t] @ U.T + h @ W.T + b + (nudged if t == step else 0)
        h = np.tanh(z)
    o = h @ V.T + c
    o -= o.max(axis=1, keepdims=True)
    return np.log(np.exp(o).sum(axis=1)) - o[:, label]


def test_rnn_step_deltas_are_central_differences_of_each_z(server, runs_dir, digits):
    found = answered(server, "backprop", "run=rnn&label=2&top=10", digits[0])
    twin, norm = float64_twin(runs_dir / "rnn")
    rows = norm.apply(np.array(found["input"]), np.float64)
    T, H, eps = 28, twin.sizes[1], 1e-6
    assert np.shape(found["step_deltas"]) == (T, H) and found["units"] == [] and found["slopes"] == []
    numeric = np.array(
        [
            (
                rnn_loss(twin.tensors(), rows, 2, eps * np.eye(H), t)
                - rnn_loss(twin.tensors(), rows, 2, -eps * np.eye(H), t)
            )
            / (2 * eps)
            for t in range(T)
        ]
    )  # r^(t)_i = ∂C/∂z^(t)_i
    close_to(found["step_deltas"], numeric)
    np.testing.assert_allclose(found["step_norms"], np.linalg.norm(numeric, axis=1), rtol=2e-3, atol=1e-7)
    y_hat = {p["class"]: p["probability"] for p in found["predictions"]}
    np.testing.assert_allclose(found["deltas"], [[y_hat[k] - (k == 2) for k in range(10)]], atol=1e-6)
    assert all(row["relative_error"] < 1e-6 for row in found["check"]), found["check"]


def snapshot(folder: Path) -> dict:
    """Every file under `folder`: its size, modification time and SHA-256."""
    return {
        str(path.relative_to(folder)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_steps_are_taken_outside_too_compose_and_touch_nothing_else(server, runs_dir, digits):
    before = snapshot(runs_dir)
    trained = answered(server, "backprop", "run=tanh&label=4&top=10", digits[1])
    saved = load_weights(runs_dir / "tanh" / "weights.npz")
    net, lr, Y = saved.model, 0.01, np.eye(10, dtype=np.float32)[[4]]
    x = saved.norm.apply(np.array(trained["input"]).reshape(1, -1))
    for n in (1, 2):  # each on a connection of its own: either worker may answer
        taken = answered(server, "step", f"run=tanh&label=4&lr={lr}&session=learner-one&top=10", digits[1])
        loss, _ = net.loss_and_grad(x, Y)  # the same step, outside: θ ← θ − η ∇C(θ)
        net.params -= lr * net.grads
        assert (taken["steps"], taken["fresh"], taken["lr"]) == (n, n == 1, lr)
        assert taken["loss_before"] == pytest.approx(loss, rel=1e-5)
        after = net.output.scores(net.forward(x))[0]
        assert taken["loss_after"] == pytest.approx(net.loss(x, Y), rel=1e-5)
        np.testing.assert_allclose(
            [p["probability"] for p in sorted(taken["predictions"], key=lambda p: p["class"])],
            after,
            atol=1e-6,
        )
    assert taken["loss_after"] < trained["loss"]
    on_copy = answered(server, "backprop", "run=tanh&label=4&top=10&session=learner-one", digits[1])
    assert on_copy["steps"] == 2 and on_copy["loss"] == pytest.approx(taken["loss_after"], rel=1e-5)
    for query in ("run=tanh&label=4&top=10", "run=tanh&label=4&top=10&session=learner-two"):
        again = answered(server, "backprop", query, digits[1])
        assert (again["steps"], again["loss"], again["predictions"]) == (
            0,
            trained["loss"],
            trained["predictions"],
        )
    status, predicted = call(server, "predict", "run=tanh&top=10", digits[1])
    assert status == 200 and predicted["predictions"] == trained["predictions"]
    assert snapshot(runs_dir) == before


def test_reset_returns_to_the_run_as_trained(server, digits):
    taken = answered(server, "step", "run=relu&label=7&lr=0.1&session=resetting", digits[0])
    assert taken["steps"] == 1
    assert answered(server, "reset", "session=resetting") == {"session": "resetting", "reset": True}
    assert answered(server, "backprop", "run=relu&session=resetting", digits[0])["steps"] == 0
    assert answered(server, "reset", "session=resetting")["reset"] is False
    assert answered(server, "step", "run=relu&label=7&lr=0.1&session=resetting", digits[0])["fresh"] is True


def test_a_step_on_another_run_starts_from_that_run(server, digits):
    answered(server, "step", "run=relu&label=7&session=switching", digits[0])
    taken = answered(server, "step", "run=sigmoid&label=7&session=switching", digits[0])
    assert (taken["steps"], taken["fresh"]) == (1, True)


BAD = [
    ("backprop", "run=relu&label=10", 400, "not a class of run 'relu': 0 to 9"),
    ("backprop", "run=relu&label=-1", 400, "label must be a class's number"),
    ("backprop", "run=relu&label=seven", 400, "label must be a class's number"),
    ("backprop", "run=relu&session=short", 400, "session must be 8 to 64"),
    ("backprop", "run=nowhere", 404, "no run 'nowhere' here"),
    ("step", "run=relu&lr=0.1", 400, "session must be"),
    ("step", "run=relu&session=../../../etc", 400, "session must be"),
    ("step", f"run=relu&session={'x' * 65}", 400, "session must be"),
    ("step", "run=relu&lr=0&session=learner-bad", 400, "lr (the step's η) must be a number from"),
    ("step", "run=relu&lr=-1&session=learner-bad", 400, "from 1e-08 to 10, such as 0.001"),
    ("step", "run=relu&lr=11&session=learner-bad", 400, "to 10, such as"),
    ("step", "run=relu&lr=nan&session=learner-bad", 400, "to 10, such as"),
    ("step", "run=relu&lr=inf&session=learner-bad", 400, "to 10, such as"),
    ("step", "run=relu&lr=fast&session=learner-bad", 400, "to 10, such as"),
    ("step", "run=relu&lr=1_0&session=learner-bad", 400, "to 10, such as"),
    ("step", "run=relu&lr=%EF%BC%91&session=learner-bad", 400, "to 10, such as"),  # a full-width 1
    ("step", "run=relu&lr=%200.1&session=learner-bad", 400, "to 10, such as"),
    ("step", "run=relu&lr=1e-46&session=learner-bad", 400, "from 1e-08 to 10"),
    ("step", "run=relu&label=11&session=learner-bad", 400, "not a class of run"),
    ("step", "run=nowhere&session=learner-bad", 404, "no run 'nowhere' here"),
    ("reset", "", 400, "session must be"),
    ("reset", "session=a%2Fb%2Fc%2Fd%2Fe", 400, "session must be"),
]


@pytest.mark.parametrize("endpoint, query, status, said", BAD, ids=[f"{e}?{q}" for e, q, _, _ in BAD])
def test_bad_values_are_refused(server, digits, endpoint, query, status, said):
    found = call(server, endpoint, query, digits[0])
    assert found[0] == status and said in found[1]["error"], found
    assert (
        answered(server, "backprop", "run=relu&session=learner-bad", digits[0])["steps"] == 0
    )  # no copy made


@pytest.mark.parametrize("endpoint", ["backprop", "step"])
def test_no_digit_is_refused(server, endpoint):
    assert call(server, endpoint, "run=relu&session=learner-bad")[0] == 400
    blank = io.BytesIO()
    Image.new("L", (280, 280), 255).save(blank, format="PNG")
    status, found = call(server, endpoint, "run=relu&session=learner-bad", blank.getvalue())
    assert status == 422 and "digit" in found["error"], found


def test_a_step_too_large_leaves_the_copy_as_it_was(server, runs_dir, digits):
    """η = 10 on an mse run: refused when the output stops being finite, else a number."""
    status, found = call(server, "step", "run=mse&label=1&lr=10&session=overshoot", digits[0])
    assert status == 200 or (status == 409 and "smaller η" in found["error"]), found


def copies_in(temp_dir: Path) -> list[Path]:
    return list(temp_dir.glob("mlpcli-copies-*/*.npz"))


def test_a_flood_of_sessions_keeps_at_most_the_cap(server, temp_dir, digits):
    for n in range(3 * backprop.COPIES):
        answered(server, "step", f"run=relu&label=2&session=flood-{n:03d}", digits[0])
    kept = copies_in(temp_dir)
    assert 0 < len(kept) <= backprop.COPIES
    assert {path.stem for path in kept} <= {
        f"flood-{n:03d}" for n in range(2 * backprop.COPIES, 3 * backprop.COPIES)
    }
    assert answered(server, "step", "run=relu&label=2&session=flood-000", digits[0])["fresh"] is True


def test_the_copies_go_with_the_server(runs_dir, tmp_path, digits):
    child, url = start_serve(runs_dir, env=os.environ | {"TMPDIR": str(tmp_path)})
    try:
        answered(url, "step", "run=relu&label=2&session=leaving-soon", digits[0])
        assert len(copies_in(tmp_path)) == 1
    finally:
        child.terminate()
        child.wait(timeout=30)
    assert list(tmp_path.iterdir()) == []


def test_one_session_stepping_from_many_connections_loses_no_step(server, digits):
    """Steps of one session sent at once, each on a connection of its own (either worker): each
    is taken on the copy the one before left, none lost."""
    with ThreadPoolExecutor(8) as pool:
        taken = list(
            pool.map(
                lambda _: answered(server, "step", "run=relu&label=6&lr=1e-5&session=crowded-one", digits[2]),
                range(24),
            )
        )
    assert sorted(step["steps"] for step in taken) == list(range(1, 25))
    assert answered(server, "backprop", "run=relu&session=crowded-one", digits[2])["steps"] == 24


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://elsewhere.example"},
    ],
    ids=["cross-site", "same-site", "another-origin"],
)
@pytest.mark.parametrize("endpoint", ["step", "reset"])
def test_another_site_cannot_step_or_reset(server, digits, endpoint, headers):
    answered(server, "reset", "session=learner-own")
    answered(server, "step", "run=relu&label=2&session=learner-own", digits[0])
    status, found = call(server, endpoint, "run=relu&label=2&session=learner-own", digits[0], headers)
    assert status == 403 and "mlp serve's own page" in found["error"], found
    assert answered(server, "backprop", "run=relu&session=learner-own", digits[0])["steps"] == 1
    answered(server, "reset", "session=learner-own")
    own = {"Sec-Fetch-Site": "same-origin", "Origin": server}
    assert call(server, "step", "run=relu&session=learner-own", digits[0], own)[0] == 200


def test_a_damaged_or_lost_copy_starts_again(server, temp_dir, digits):
    answered(server, "step", "run=relu&label=2&session=damaged-copy", digits[0])
    (copy,) = temp_dir.glob("mlpcli-copies-*/damaged-copy.npz")
    copy.write_bytes(b"PK\x03\x04 not a whole archive")
    assert answered(server, "step", "run=relu&label=2&session=damaged-copy", digits[0])["fresh"] is True
    shutil.rmtree(copy.parent)  # as a cleaner of temporary files might
    assert answered(server, "step", "run=relu&label=2&session=damaged-copy", digits[0])["fresh"] is True
    assert (copy.parent.stat().st_mode & 0o777) == 0o700 and not list(copy.parent.glob("*.partial"))


def test_a_backward_pass_that_overflows_is_a_409(server, runs_dir, digits):
    """An mse network with no output activation whose outputs are finite and huge: its deltas
    overflow float32 (a copy stepped too far does the same)."""
    saved = load_weights(runs_dir / "mse" / "weights.npz")
    loud = MLP(saved.model.sizes, "relu", "mse", "identity")
    loud.params[...] = saved.model.params
    loud.tensors()["W2"][0][...] *= 1e33
    shutil.copytree(runs_dir / "mse", runs_dir / "overflowing")
    save_weights(runs_dir / "overflowing" / "weights.npz", dataclasses.replace(saved, model=loud))
    status, found = call(server, "backprop", "run=overflowing&label=1", digits[0])
    assert status == 409 and "overflowed" in found["error"], found
    assert call(server, "predict", "run=overflowing", digits[0])[0] == 200  # its forward pass is finite


def test_steps_wait_for_each_other_as_on_windows(runs_dir, tmp_path, digits):
    """Where there is no fcntl, msvcrt's lock keeps one session's steps whole across workers
    (tests/as_windows.py)."""
    command = [sys.executable, str(ROOT / "tests" / "as_windows.py"), "serve", str(runs_dir), "--port", "0"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = child.stdout.readline().split(" at ")[1].split()[0].rstrip("/")
        with ThreadPoolExecutor(4) as pool:
            query = "run=relu&label=6&lr=1e-5&session=windows-one"
            taken = list(pool.map(lambda _: answered(url, "step", query, digits[2]), range(12)))
        assert sorted(step["steps"] for step in taken) == list(range(1, 13))
        assert answered(url, "reset", "session=windows-one")["reset"] is True
    finally:
        child.terminate()
        child.wait(timeout=30)
