"""What the command line offers and shows before any of the library is loaded: nothing here
imports NumPy, so that `mlp --help` and tab completion answer at once."""

from dataclasses import dataclass

SPLITS = ("test", "validation", "train")  # what mlp eval can evaluate


@dataclass
class GradcheckSettings:
    """How `mlp gradcheck` checks (equations.md §7); its options' defaults."""

    eps: float = 1e-5  # the central-difference step
    threshold: float = 1e-6  # the largest relative error that passes
    atol: float = 1e-9  # an absolute error this small passes too (the resolution of the step)
    samples: int | None = 300  # entries checked per tensor (a seeded sample); None: all
    seed: int = 0
    batch: int = 8
