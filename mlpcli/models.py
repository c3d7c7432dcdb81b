"""From a config's model section to a network: an MLP over an image's pixels, or an RNN over
its rows (model.kind)."""

import numpy as np

from mlpcli.config import ModelConfig
from mlpcli.errors import ConfigError
from mlpcli.nn.base import Network
from mlpcli.nn.network import MLP
from mlpcli.nn.rnn import RNN


def build_model(
    m: ModelConfig,
    image_shape: tuple[int, int],
    n_classes: int,
    rng: np.random.Generator | None = None,
    dtype: type = np.float32,
) -> Network:
    """The network `m` describes, for images of `image_shape` (rows, columns) and `n_classes`
    classes. Initialised from `rng` when given (otherwise all zeros, for weights to be loaded
    into). A model section whose keys contradict each other is a ConfigError."""
    outputs = m.activation, m.output, m.output_activation
    if m.kind == "rnn":
        if len(m.hidden) != 1:
            raise ConfigError(
                f"model.kind = rnn has one recurrent layer, so model.hidden is its one width, such"
                f" as [128] (it is {m.hidden})"
            )
        model = RNN(*image_shape, m.hidden[0], n_classes, *outputs, m.dropout, dtype)
        if rng is not None:
            model.init(rng, m.init, m.recurrent_init)
        return model
    if m.dropout and not m.hidden:
        raise ConfigError(
            f"model.dropout = {m.dropout} drops hidden activations, and model.hidden = [] has none:"
            " set model.dropout=0 (configs/softmax_regression.yaml does)"
        )
    model = MLP([image_shape[0] * image_shape[1], *m.hidden, n_classes], *outputs, m.dropout, dtype)
    if rng is not None:
        model.init(rng, m.init)
    return model
