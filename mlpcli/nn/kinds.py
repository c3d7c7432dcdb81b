"""The kinds of network `mlp train` trains, by the name `model.kind` gives each."""

from mlpcli.nn.network import MLP
from mlpcli.nn.rnn import RNN

KINDS = (MLP.kind, RNN.kind)
