"""From a config's model section to a network of the kind model.kind names (nn/kinds.py). A
model section whose keys contradict each other, or that makes a network larger than this
machine's memory can train, is a ConfigError before the network is allocated; so is any
config whose keys cannot work together (check_config: mlp train and its --resume, mlp sweep
before any trial and mlp gradcheck --config all ask it)."""

import os
from dataclasses import fields

import numpy as np

from mlpcli import augment, train
from mlpcli.config import AugmentConfig, Config, ModelConfig
from mlpcli.errors import ConfigError
from mlpcli.nn.base import Network
from mlpcli.nn.kinds import KINDS

# what training holds per parameter: the weights, their gradients, the kept weights, the
# optimizer's two moments (Adam's; SGD's velocity is one), and the weights and gradients of the
# network the kept weights are saved from
TRAINING_COPIES = 7
GIB = 2**30
CHECKED_KEYS = (  # the keys check_config reads that can contradict each other (a kind may read any model key)
    *(f"model.{key.name}" for key in fields(ModelConfig)),
    "train.keep",
    "data.validation",
    "train.patience",
    *(f"data.augment.{key.name}" for key in fields(AugmentConfig)),
)
CGROUP_LIMIT = "/sys/fs/cgroup/memory.max"  # a Linux container's memory, when it has a limit


def check_config(
    config: Config, image_shape: tuple[int, int], n_classes: int, n_train: int | None = None
) -> None:
    """The ConfigError of keys that cannot work together, for images of `image_shape` and
    `n_classes` classes (and, given their count `n_train`, that many training examples):
    the model's (check_model), training's with the validation split's (train.check) and
    augmentation's (augment.check).
    CHECKED_KEYS are the keys it reads, but for train.batch_size (with the count)."""
    check_model(config.model, image_shape, n_classes)
    train.check(config.train, n_train, config.data.validation)
    augment.check(config.data.augment, image_shape)


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
    spec = check_model(m, image_shape, n_classes, dtype)
    try:
        model = KINDS[m.kind].from_spec(spec, m.dropout, dtype)
        if rng is not None:
            model.initialise(rng, m)
    except MemoryError:  # where the machine's memory is not known beforehand (_memory)
        raise ConfigError(f"model.hidden = {m.hidden}: not enough memory for the network's weights") from None
    return model


def check_model(
    m: ModelConfig, image_shape: tuple[int, int], n_classes: int, dtype: type = np.float32
) -> dict:
    """The spec of the network `m` describes (Network.spec), or the ConfigError that building
    it would meet, found without building it: keys that contradict each other, or more
    parameters than this machine has memory to train."""
    kind = KINDS[m.kind]
    spec = kind.spec_from_config(m, image_shape, n_classes)
    parameters = kind.parameter_count(spec)
    needed, memory = parameters * np.dtype(dtype).itemsize * TRAINING_COPIES, _memory()
    if memory is not None and needed > memory:
        raise ConfigError(
            f"model.hidden = {m.hidden} makes a network of {parameters:,} parameters: training it takes"
            f" about {needed / GIB:,.0f} GiB ({TRAINING_COPIES} copies of them: weights, gradients, the"
            f" kept weights, the optimizer's moments, the saved network), more than this machine's"
            f" {memory / GIB:,.0f} GiB"
        )
    return spec


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
