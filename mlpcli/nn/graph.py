"""What a network writes its forward pass into for `mlp export`: named nodes of ONNX operators
and named constants (mlpcli/export.py builds the ONNX model from them; nn/ never imports onnx).
Tensors are named by strings; every node's inputs are names an earlier node or constant gave."""

from typing import Any, Protocol

import numpy as np


class Graph(Protocol):
    def node(self, op: str, *inputs: str, skipped_outputs: int = 0, **attributes: Any) -> str:
        """Add a node of the ONNX operator `op` on `inputs` ("" for an optional one left out) with
        `attributes`; the name of its output (of its output after the first `skipped_outputs`,
        which are left out)."""
        ...

    def constant(self, name: str, value: np.ndarray) -> str:
        """Add `value` as a constant (an initializer), named after `name`; its name."""
        ...
