"""The kinds of network `mlp train` trains, by the name `model.kind` gives each. A new kind is a
Network subclass (nn/base.py says what it fills in) registered here; the rest of mlpcli reads
this registry and the Network surface, never the kinds themselves."""

from mlpcli.nn.base import Network
from mlpcli.nn.mlp import MLP
from mlpcli.nn.rnn import RNN

KINDS: dict[str, type[Network]] = {kind.kind: kind for kind in (MLP, RNN)}


def register(kind: type[Network]) -> type[Network]:
    """Make `kind` buildable by its name (model.kind) and readable from weights files."""
    KINDS[kind.kind] = kind
    return kind
