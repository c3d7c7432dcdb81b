"""The kinds of network `mlp train` trains, by the name `model.kind` gives each."""

from mlpcli.nn.network import MLP
from mlpcli.nn.rnn import RNN

Network = MLP | RNN
KINDS = {MLP.kind: MLP, RNN.kind: RNN}
