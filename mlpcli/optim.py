"""Optimizers over the network's flat parameter buffer, and learning-rate schedules.

Each optimizer's `step(params, grads, lr)` updates `params` in place from `grads`, the
gradient of the loss (weight decay is already part of that loss, see MLP.backward).
"""

import math

import numpy as np

from mlpcli.config import TrainConfig


class SGD:
    """θ ← θ - lr·v with v ← μv + g (momentum μ); Nesterov: θ ← θ - lr·(g + μv)."""

    def __init__(self, n: int, dtype, momentum: float = 0.0, nesterov: bool = False):
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = np.zeros(n, dtype=dtype) if momentum else None

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        if self.velocity is None:
            params -= lr * grads
            return
        self.velocity *= self.momentum
        self.velocity += grads  # v ← μv + g
        update = grads + self.momentum * self.velocity if self.nesterov else self.velocity
        params -= lr * update


class Adam:
    """m ← β₁m + (1-β₁)g, v ← β₂v + (1-β₂)g², θ ← θ - lr·m̂/(√v̂ + ε), with m̂, v̂ the
    bias-corrected moments (Kingma & Ba 2015, Algorithm 1)."""

    def __init__(self, n: int, dtype, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = np.zeros(n, dtype=dtype)
        self.v = np.zeros(n, dtype=dtype)
        self.scratch = np.zeros(n, dtype=dtype)
        self.t = 0

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.t += 1
        b1, b2, s = self.beta1, self.beta2, self.scratch
        self.m *= b1
        self.m += (1 - b1) * grads  # m ← β₁m + (1-β₁)g
        np.multiply(grads, grads, out=s)
        s *= 1 - b2
        self.v *= b2
        self.v += s  # v ← β₂v + (1-β₂)g²
        # θ ← θ - lr_t·m/(√v + ε_t): the bias corrections folded into lr_t and ε_t
        lr_t = lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        np.sqrt(self.v, out=s)
        s += self.eps * math.sqrt(1 - b2**self.t)
        np.divide(self.m, s, out=s)
        s *= lr_t
        params -= s


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
