"""The backward pass of one example, as the page shows it (equations.md §8): the loss C of a
label the learner picks, every δ^l = ∂C/∂z^l as the network's own backward pass computed it
(and σ'(z^l) beside it), the first-layer units' gradients δ¹_j xᵀ beside their weights, ∂C/∂x,
an RNN's r^(t) = ∂C/∂z^(t) at every step, a live gradient check in float64, and one plain SGD
step on a copy of the network, θ ← θ − η ∇C(θ).

Copies live in `Copies`, files of a private temporary folder (every worker process of
`mlp serve` finds a session's copy there, and steps take its lock), at most COPIES of them;
the runs' own files are never written.
"""

import contextlib
import json
import os
import shutil
import tempfile
import threading
import weakref
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlpcli import locks
from mlpcli.data import Normalisation, one_hot
from mlpcli.errors import CopyError
from mlpcli.gradcheck import central_differences, errors, relu_pattern
from mlpcli.nn.base import Network
from mlpcli.settings import GradcheckSettings

SHOWN_UNITS = 4  # first-layer units drawn: those whose δ¹_j is largest in size
COPIES = 8  # networks the learners' steps change, the one that stepped longest ago dropped first
COPY_BYTES = 32 * 2**20  # of one copy's weights: 8 million float32 parameters (the long config's: 1.9)
CHECKED_PARAMETERS = 4_000_000  # the live check's float64 copy, weights and gradients: 64 MB
LR = 0.001  # η when none is given: a confident 7 takes a few steps to become a 1
MIN_LR = 1e-8  # the smallest η: below it, steps vanish in float32's rounding
MAX_LR = 10.0  # the largest η of a step: one example's C is already far overshot by then


def view(network: Network, norm: Normalisation, pixels: np.ndarray, label: int) -> dict:
    """The backward pass of the 28×28 `pixels` for `label`, by `network`'s own forward and
    backward passes (the caller holds the network's lock): C, the deltas as `backward` left
    them, the σ'(z^l) they were multiplied by, ∂C/∂pixel, the units that matter most and, for
    a kind with steps, r^(t) and ‖r^(t)‖. Arrays are copied out of the network's buffers."""
    x = norm.apply(pixels.reshape(1, -1))
    loss, delta = network.output.loss_and_delta(network.forward(x), _target(network, label, x.dtype))
    grad_x = network.backward(delta, input_grad=True)
    deltas = [d[0].copy() for d in network.deltas]
    activations, _, _ = network.hidden_outputs_shown()
    slopes = [network.activation.derivative(a) for a in activations[: max(len(deltas) - 1, 0)]]  # σ'(z^l)
    steps = None if network.step_deltas is None else network.step_deltas[:, 0].copy()
    return {
        "loss": loss,
        "deltas": deltas,
        "slopes": slopes,
        "input_gradient": (grad_x[0] / norm.std).reshape(pixels.shape),  # ∂C/∂pixel, x = (pixel - mean)/std
        "units": _units(network, deltas, pixels.shape),
        "step_deltas": steps,
        "step_norms": None if steps is None else np.linalg.norm(steps.astype(np.float64), axis=1),
    }


def _target(network: Network, label: int, dtype) -> np.ndarray:
    return one_hot(np.array([label]), network.sizes[-1], dtype)


def _units(network: Network, deltas: list[np.ndarray], shape: tuple[int, int]) -> list[dict]:
    """The SHOWN_UNITS units of the first layer whose δ¹_j is largest, each with its gradient
    ∂C/∂W¹_j = δ¹_j xᵀ (from the backward pass's own dW) and its weights W¹_j as pictures;
    none for a kind whose input weights' rows do not read the whole image (an RNN's U), or
    that keeps no deltas."""
    if network.INPUT_WEIGHTS is None or not deltas:
        return []
    weights, gradient = network.tensors()[network.INPUT_WEIGHTS]
    first_deltas = deltas[0]
    if weights.shape[1] != shape[0] * shape[1] or len(first_deltas) != len(weights):
        return []
    largest = np.argsort(-np.abs(first_deltas), kind="stable")[:SHOWN_UNITS]
    return [
        {
            "unit": int(j),
            "delta": float(first_deltas[j]),
            "gradient": gradient[j].reshape(shape).copy(),
            "weights": weights[j].reshape(shape).copy(),
        }
        for j in largest
    ]


def finite(seen: dict) -> bool:
    """Whether every number `view` gave is finite (a copy stepped too far overflows)."""
    arrays = [seen["loss"], seen["input_gradient"], *seen["deltas"], seen["step_deltas"]]
    return all(np.isfinite(a).all() for a in arrays if a is not None)


def check(network: Network, norm: Normalisation, pixels: np.ndarray, label: int) -> list[dict] | None:
    """A live gradient check (equations.md §7): in a float64 copy of `network`, for the entry
    of each tensor whose ∂C/∂θ is largest, the backward pass's value beside the central
    difference (C(θ + ε) - C(θ - ε)) / 2ε and their relative error; `kink`: a ReLU changed
    sides between θ ± ε, where the difference means nothing. Reads `network`'s weights only.
    None for a network of more than CHECKED_PARAMETERS."""
    if network.params.size > CHECKED_PARAMETERS:
        return None
    twin = type(network).from_spec(network.spec(), 0.0, np.float64)
    np.copyto(twin.params, network.params)
    x = norm.apply(pixels.reshape(1, -1), np.float64)
    Y = _target(twin, label, np.float64)
    twin.loss_and_grad(x, Y)
    relu = twin.activation.name == "relu" and len(twin.sizes) > 2
    pattern = relu_pattern(twin) if relu else None
    rows = []
    for name, (tensor, gradient) in twin.tensors().items():
        index = int(np.argmax(np.abs(gradient)))
        analytic = float(gradient.flat[index])
        numeric, kinked = central_differences(
            lambda: twin.loss(x, Y), tensor, np.array([index]), GradcheckSettings.eps, pattern
        )
        _, relative = errors(analytic, float(numeric[0]))
        rows.append(
            {
                "tensor": name,
                "index": [int(i) for i in np.unravel_index(index, tensor.shape)],
                "analytic": analytic,
                "numeric": float(numeric[0]),
                "relative_error": float(relative),
                "kink": bool(kinked[0]),
            }
        )
    return rows


def step(network: Network, norm: Normalisation, pixels: np.ndarray, label: int, lr: float) -> dict:
    """One plain SGD step on the one example: θ ← θ − η ∇C(θ), no weight decay, no dropout,
    applied to `network` (a copy: the caller's own); C for `label` before and after, and the
    scores after."""
    x = norm.apply(pixels.reshape(1, -1))
    Y = _target(network, label, x.dtype)
    before, delta = network.output.loss_and_delta(network.forward(x), Y)
    network.backward(delta)
    network.grads *= network.grads.dtype.type(lr)  # η ∇C: the gradient buffer is scratch after a step
    network.params -= network.grads  # θ ← θ − η ∇C(θ)
    logits = network.forward(x)
    return {
        "loss_before": before,
        "loss_after": network.output.loss(logits, Y),
        "scores": network.output.scores(logits)[0],
    }


class Copies:
    """The page's own copies of networks, one per session, that steps change: files of the
    folder `folder` (by default a temporary one of its own, removed with it), each holding the
    weights, the run they were copied from and the steps taken. At most COPIES; saving one
    more drops the one saved longest ago. A step (load, change, save) and a reset are made
    under `held()`, one at a time across the processes that share the folder."""

    def __init__(self, folder: Path | None = None):
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="mlpcli-copies-"))
            weakref.finalize(self, shutil.rmtree, folder, True)
        self.folder = folder
        self.lock = threading.Lock()  # this process's threads; the file lock, the other processes

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self.lock, locks.waited(self._existing() / ".lock"):
            yield

    def load(self, session: str, run: object) -> tuple[np.ndarray, int] | None:
        """The weights of `session`'s copy and its steps, if it has one of `run` (the run's
        name and its weights file's identity: a run trained again starts a fresh copy)."""
        try:
            with np.load(self._path(session), allow_pickle=False) as kept:
                if str(kept["run"]) != json.dumps(run):
                    return None
                return kept["params"], int(kept["steps"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # none, or damaged
            return None

    def save(self, session: str, run: object, params: np.ndarray, steps: int) -> None:
        """Keep `params` as `session`'s copy of `run`, written whole before it replaces the old
        (another process reads either); then drop the oldest beyond COPIES."""
        self._existing()
        path = self._path(session)
        partial = path.with_name(f"{session}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            with open(partial, "wb") as file:
                np.savez(file, params=params, run=np.array(json.dumps(run)), steps=np.array(steps))
            os.replace(partial, path)
        except OSError as e:  # no room left, or the folder removed by a cleaner of temporary files
            partial.unlink(missing_ok=True)
            raise CopyError(f"the network's copy for steps cannot be kept ({e.strerror or e})") from None
        kept = sorted(self.folder.glob("*.npz"), key=_mtime, reverse=True)
        for old in kept[COPIES:]:
            old.unlink(missing_ok=True)

    def drop(self, session: str) -> bool:
        """Forget `session`'s copy; whether it had one."""
        try:
            self._path(session).unlink()
        except FileNotFoundError:
            return False
        return True

    def _path(self, session: str) -> Path:
        return self.folder / f"{session}.npz"  # the caller has checked the name's characters

    def _existing(self) -> Path:
        """The folder, made again if a cleaner of temporary files removed it."""
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
        except OSError as e:
            raise CopyError(f"no folder for the network's copies ({e.strerror or e})") from None
        return self.folder


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:  # dropped meanwhile by another process
        return 0
