"""Optimizers over the network's flat parameter buffer, and learning-rate schedules.

Each optimizer's `step(params, grads, lr)` updates `params` in place from `grads`, the
gradient of the loss (weight decay is already part of that loss, see MLP.backward). Each is
a few in-place elementwise passes over the flat buffers, with one preallocated scratch array.
"""

import math

import numpy as np

from mlpcli.config import TrainConfig


class SGD:
    """θ ← θ - lr·v with v ← μv + g (momentum μ); Nesterov: θ ← θ - lr·(g + μv)."""

    def __init__(self, n: int, dtype, momentum: float = 0.0, nesterov: bool = False):
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = np.zeros(n, dtype=dtype) if momentum else None
        self.scratch = np.zeros(n, dtype=dtype)

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        s = self.scratch
        if self.velocity is None:
            np.multiply(grads, lr, out=s)
            params -= s  # θ ← θ - lr·g
            return
        self.velocity *= self.momentum
        self.velocity += grads  # v ← μv + g
        if self.nesterov:
            np.multiply(self.velocity, self.momentum, out=s)
            s += grads  # g + μv
        else:
            s[...] = self.velocity
        s *= lr
        params -= s


class Adam:
    """m ← β₁m + (1-β₁)g, v ← β₂v + (1-β₂)g², θ ← θ - lr·m̂/(√v̂ + ε), with m̂ = m/(1-β₁ᵗ) and
    v̂ = v/(1-β₂ᵗ) the bias-corrected moments (Kingma & Ba 2015, Algorithm 1).

    Stored scaled, u = m/(1-β₁) and w = v/(1-β₂), the moments update in two and three
    passes (u ← β₁u + g, w ← β₂w + g²), and every constant folds into one step size and
    one ε: θ ← θ - lr'·u/(√w + ε') with lr' = lr·(1-β₁)/(1-β₁ᵗ)·√((1-β₂ᵗ)/(1-β₂)) and
    ε' = ε·√((1-β₂ᵗ)/(1-β₂)). Ten passes over the parameters a step instead of twelve.
    """

    def __init__(self, n: int, dtype, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.u = np.zeros(n, dtype=dtype)  # m / (1 - β₁)
        self.w = np.zeros(n, dtype=dtype)  # v / (1 - β₂)
        self.scratch = np.zeros(n, dtype=dtype)
        self.t = 0

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.t += 1
        b1, b2, u, w, s = self.beta1, self.beta2, self.u, self.w, self.scratch
        root = math.sqrt((1 - b2**self.t) / (1 - b2))
        lr_step = lr * (1 - b1) / (1 - b1**self.t) * root
        u *= b1
        u += grads  # u ← β₁u + g
        np.multiply(grads, grads, out=s)
        w *= b2
        w += s  # w ← β₂w + g²
        np.sqrt(w, out=s)
        s += self.eps * root
        np.divide(u, s, out=s)
        s *= lr_step
        params -= s  # θ ← θ - lr'·u/(√w + ε')


def make_optimizer(config: TrainConfig, n: int, dtype) -> SGD | Adam:
    if config.optimizer == "sgd":
        return SGD(n, dtype, config.momentum, config.nesterov)
    return Adam(n, dtype, config.beta1, config.beta2, config.eps)


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of `epoch` (0-based) under the configured schedule."""
    if config.schedule == "step":
        return config.lr * config.gamma ** (epoch // config.step_size)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    return config.lr
