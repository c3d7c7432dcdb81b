"""The kinds of network `mlp train` trains, by the name `model.kind` gives each."""

from mlpcli.nn.base import Network
from mlpcli.nn.network import MLP
from mlpcli.nn.rnn import RNN

KINDS: dict[str, type[Network]] = {MLP.kind: MLP, RNN.kind: RNN}
