"""Optimizers over the network's flat parameter buffer, and learning-rate schedules.

Each optimizer's `step(params, grads, lr)` updates `params` in place from `grads`, the
gradient of the loss (weight decay is already part of that loss, see MLP.backward). Each is
a few in-place elementwise passes over the flat buffers; `grads` is used up as scratch (the
next backward pass overwrites it anyway). With `parallel`, both cores share the passes, part
by part (mlpcli.parallel): bitwise the same result.
"""

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from mlpcli.config import TrainConfig
from mlpcli.parallel import in_parts


def flush_denormals(buffer: np.ndarray) -> None:
    """Set the denormal entries of `buffer` (0 < |x| < the smallest normal number) to 0.

    A momentum whose gradient is exactly 0 (a dead relu unit's weights) decays by β every
    step into the denormal range and sticks there (β·x rounds back to x for the smallest
    denormals), where every arithmetic pass over it runs many times slower. Dropping such an
    entry changes the step it feeds by less than 1e-32: less than half a float32 step of any
    weight above 1e-24 in size. Weights go denormal too, where weight decay pulls a dead
    unit's weights towards 0; on some CPUs a matrix product with denormal entries runs many
    times slower (docs/speed.md measures it). Setting such a weight to 0 moves it by less than 1.2e-38."""
    np.copyto(buffer, 0, where=np.abs(buffer) < np.finfo(buffer.dtype).tiny)


class SGD:
    """θ ← θ - lr·v with v ← μv + g (momentum μ); Nesterov: θ ← θ - lr·(g + μv)."""

    def __init__(self, n: int, dtype, momentum: float = 0.0, nesterov: bool = False, parallel: bool = False):
        self.momentum, self.nesterov, self.parallel = momentum, nesterov, parallel
        self.velocity = np.zeros(n, dtype=dtype) if momentum else None

    def state(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps of the optimizer."""
        return {} if self.velocity is None else {"velocity": self.velocity}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        if self.velocity is not None:
            np.copyto(self.velocity, state["velocity"])

    def flush_denormals(self, params: np.ndarray) -> None:
        """Set the denormal entries of `params` and of the velocity to 0."""
        for buffer in (params, *self.state().values()):
            in_parts(flush_denormals, buffer, parallel=self.parallel)

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        """Update `params`; `grads` is used up (it serves as scratch)."""
        if self.velocity is None:
            in_parts(partial(_sgd, lr), params, grads, parallel=self.parallel)
        else:
            update = partial(_momentum, lr, self.momentum, self.nesterov)
            in_parts(update, params, grads, self.velocity, parallel=self.parallel)


def _sgd(lr: float, params: np.ndarray, grads: np.ndarray) -> None:
    grads *= lr
    params -= grads  # θ ← θ - lr·g


def _momentum(lr: float, mu: float, nesterov: bool, params, grads, velocity) -> None:
    velocity *= mu
    velocity += grads  # v ← μv + g
    if nesterov:
        grads *= lr
        params -= grads  # θ ← θ - lr·g …
        np.multiply(velocity, lr * mu, out=grads)
    else:
        np.multiply(velocity, lr, out=grads)
    params -= grads  # … - lr·μv (Nesterov); θ ← θ - lr·v (momentum)


class Adam:
    """m ← β₁m + (1-β₁)g, v ← β₂v + (1-β₂)g², θ ← θ - lr·m̂/(√v̂ + ε), with m̂ = m/(1-β₁ᵗ) and
    v̂ = v/(1-β₂ᵗ) the bias-corrected moments (Kingma & Ba 2015, Algorithm 1).

    Stored scaled, u = m/(1-β₁) and w = v/(1-β₂), the moments update in two and three
    passes (u ← β₁u + g, w ← β₂w + g²), and every constant folds into one step size and
    one ε: θ ← θ - lr'·u/(√w + ε') with lr' = lr·(1-β₁)/(1-β₁ᵗ)·√((1-β₂ᵗ)/(1-β₂)) and
    ε' = ε·√((1-β₂ᵗ)/(1-β₂)). Ten passes over the parameters a step instead of twelve, and
    no scratch array: once g has gone into u and w, its buffer holds the update.
    """

    def __init__(
        self,
        n: int,
        dtype,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        parallel: bool = False,
    ):
        self.beta1, self.beta2, self.eps, self.parallel = beta1, beta2, eps, parallel
        self.u = np.zeros(n, dtype=dtype)  # m / (1 - β₁)
        self.w = np.zeros(n, dtype=dtype)  # v / (1 - β₂)
        self.t = 0

    def state(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps of the optimizer."""
        return {"u": self.u, "w": self.w, "t": np.array(self.t)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        np.copyto(self.u, state["u"])
        np.copyto(self.w, state["w"])
        self.t = int(state["t"])

    def flush_denormals(self, params: np.ndarray) -> None:
        """Set the denormal entries of `params` and of both moments to 0."""
        for buffer in (params, self.u, self.w):
            in_parts(flush_denormals, buffer, parallel=self.parallel)

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        """Update `params`; `grads` is used up (it serves as scratch)."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        root = math.sqrt((1 - b2**self.t) / (1 - b2))
        lr_step = lr * (1 - b1) / (1 - b1**self.t) * root
        update = partial(_adam, b1, b2, self.eps * root, lr_step)
        in_parts(update, params, grads, self.u, self.w, parallel=self.parallel)


def _adam(b1: float, b2: float, eps_step: float, lr_step: float, params, grads, u, w) -> None:
    u *= b1
    u += grads  # u ← β₁u + g
    np.multiply(grads, grads, out=grads)
    w *= b2
    w += grads  # w ← β₂w + g²
    np.sqrt(w, out=grads)
    grads += eps_step
    np.divide(u, grads, out=grads)
    grads *= lr_step
    params -= grads  # θ ← θ - lr'·u/(√w + ε')


def make_optimizer(config: TrainConfig, n: int, dtype, parallel: bool = False) -> SGD | Adam:
    if config.optimizer == "sgd":
        return SGD(n, dtype, config.momentum, config.nesterov, parallel)
    return Adam(n, dtype, config.beta1, config.beta2, config.eps, parallel)


@dataclass(frozen=True)
class Schedule:
    """Where a cosine schedule's curve starts: at epoch `start` (0-based), at the fraction
    `peak` of train.lr, from where it comes down to 0 at train.epochs. A new run's curve starts
    at (0, 1). A run resumed with another train.epochs gets a curve of its own (`rescheduled`)."""

    start: int = 0
    peak: float = 1.0


UNCHANGED = Schedule()  # the curve of a run as it was configured


def learning_rate(config: TrainConfig, epoch: int, schedule: Schedule = UNCHANGED) -> float:
    """The learning rate of `epoch` (0-based) under the configured schedule."""
    if config.schedule == "step":
        return config.lr * config.gamma ** (epoch // config.step_size)
    if config.schedule == "cosine":
        start, peak = schedule.start, schedule.peak
        return config.lr * peak * 0.5 * (1 + math.cos(math.pi * (epoch - start) / (config.epochs - start)))
    return config.lr


def rescheduled(
    schedule: Schedule, before: TrainConfig, after: TrainConfig, epoch: int
) -> tuple[Schedule, str]:
    """The schedule of a run resumed after `epoch` finished epochs with the train config
    `after` instead of `before`, and what to tell the user ("" when the rates stay as they were).

    A cosine schedule whose train.epochs changed goes on smoothly: from the rate the run has
    reached, down to 0 at the new last epoch. A run that had finished has come down to 0: its
    curve starts again at train.lr (a warm restart). Any other change of train.lr, the schedule
    or its keys takes effect from the next epoch, and is said."""
    if after.schedule == "cosine" and before.epochs != after.epochs and epoch < after.epochs:
        reached = learning_rate(before, epoch, schedule) / before.lr
        what = f"train.epochs {before.epochs} → {after.epochs}: the cosine schedule"
        if reached > 0:
            new = Schedule(epoch, reached)
            how = f"{what} goes on from where it stands, down to 0 at epoch {after.epochs}"
        else:
            new = Schedule(epoch, 1.0)
            how = f"{what} had come down to 0; it starts again at train.lr, down to 0 at epoch {after.epochs}"
        return new, f"{how}: epoch {epoch + 1} trains at {learning_rate(after, epoch, new):.3g}"
    was, now = learning_rate(before, epoch, schedule), learning_rate(after, epoch, schedule)
    if was == now:
        return schedule, ""
    return schedule, f"the learning rate of epoch {epoch + 1} is now {now:.3g} (it was to be {was:.3g})"
