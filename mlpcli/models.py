"""From a config's model section to a network: an MLP over an image's pixels, or an RNN over
its rows (model.kind). A model section whose keys contradict each other, or that makes a
network larger than this machine's memory can train, is a ConfigError before the network is
allocated."""

import os

import numpy as np

from mlpcli.config import ModelConfig
from mlpcli.errors import ConfigError
from mlpcli.nn.base import Network
from mlpcli.nn.network import MLP
from mlpcli.nn.params import flat_size
from mlpcli.nn.rnn import RNN

# what training holds per parameter: the weights, their gradients, the kept weights, the
# optimizer's two moments (Adam's; SGD's velocity is one), and the weights and gradients of the
# network the kept weights are saved from
TRAINING_COPIES = 7
GIB = 2**30
CHECKED_KEYS = ("model.kind", "model.hidden", "model.dropout")  # what check_model reads of a config
CGROUP_LIMIT = "/sys/fs/cgroup/memory.max"  # a Linux container's memory, when it has a limit


def build_model(
    m: ModelConfig,
    image_shape: tuple[int, int],
    n_classes: int,
    rng: np.random.Generator | None = None,
    dtype: type = np.float32,
) -> Network:
    """The network `m` describes, for images of `image_shape` (rows, columns) and `n_classes`
    classes. Initialised from `rng` when given (otherwise all zeros, for weights to be loaded
    into)."""
    check_model(m, image_shape, n_classes, dtype)
    outputs = m.activation, m.output, m.output_activation
    try:
        if m.kind == "rnn":
            model = RNN(*image_shape, m.hidden[0], n_classes, *outputs, m.dropout, dtype)
            if rng is not None:
                model.init(rng, m.init, m.recurrent_init)
        else:
            model = MLP(_mlp_sizes(m, image_shape, n_classes), *outputs, m.dropout, dtype)
            if rng is not None:
                model.init(rng, m.init)
    except MemoryError:  # where the machine's memory is not known beforehand (_memory)
        raise ConfigError(f"model.hidden = {m.hidden}: not enough memory for the network's weights") from None
    return model


def check_model(
    m: ModelConfig, image_shape: tuple[int, int], n_classes: int, dtype: type = np.float32
) -> None:
    """The ConfigError that building the network `m` describes would meet, found without
    building it: keys that contradict each other, or more parameters than this machine has
    memory to train."""
    if m.kind == "rnn":
        if len(m.hidden) != 1:
            raise ConfigError(
                f"model.kind = rnn has one recurrent layer, so model.hidden is its one width, such"
                f" as [128] (it is {m.hidden})"
            )
        parameters = flat_size(list(RNN.layout(image_shape[1], m.hidden[0], n_classes).values()))
    else:
        if m.dropout and not m.hidden:
            raise ConfigError(
                f"model.dropout = {m.dropout} drops hidden activations, and model.hidden = [] has none:"
                " set model.dropout=0 (configs/softmax_regression.yaml does)"
            )
        parameters = flat_size(MLP.layout(_mlp_sizes(m, image_shape, n_classes)))
    needed, memory = parameters * np.dtype(dtype).itemsize * TRAINING_COPIES, _memory()
    if memory is not None and needed > memory:
        raise ConfigError(
            f"model.hidden = {m.hidden} makes a network of {parameters:,} parameters: training it takes"
            f" about {needed / GIB:,.0f} GiB ({TRAINING_COPIES} copies of them: weights, gradients, the"
            f" kept weights, the optimizer's moments, the saved network), more than this machine's"
            f" {memory / GIB:,.0f} GiB"
        )


def _mlp_sizes(m: ModelConfig, image_shape: tuple[int, int], n_classes: int) -> list[int]:
    return [image_shape[0] * image_shape[1], *m.hidden, n_classes]


def _memory() -> int | None:
    """The memory this process may use, in bytes: the machine's, where the platform tells
    (POSIX's sysconf), or its container's limit when that is lower; None where neither is
    known (Windows): there an allocation too large fails as it is made."""
    sysconf = getattr(os, "sysconf", None)
    try:
        machine = sysconf("SC_PAGE_SIZE") * sysconf("SC_PHYS_PAGES") if sysconf else None
    except (ValueError, OSError):  # a name this system's sysconf does not know
        machine = None
    try:
        with open(CGROUP_LIMIT, encoding="ascii") as f:
            limit = int(f.read().strip())  # "max" when there is none: ValueError
    except (OSError, ValueError):
        return machine
    return limit if machine is None else min(machine, limit)
