"""Committees (Cireşan et al. 2010, 2012): several trained networks answering as one, by the
mean of their probabilities, p̄(x) = (1/N) Σ_m p_m(x), each member reading the pixels through
its own input normalisation (docs/equations.md §9b). Members of a committee of several must
answer probabilities (softmax), have learnt the same dataset, answer the same classes and
read images of the same size; a member that does not is named."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpcli import artifacts
from mlpcli.errors import WeightsError


@dataclass
class Member:
    """A trained network of a committee: where it came from, as the user named it, and what
    its weights file holds."""

    path: Path
    saved: artifacts.Saved

    @property
    def pixels(self) -> int:
        """How many pixels an image it reads has (784 for MNIST, as 784 inputs or 28 rows)."""
        return int(np.prod(self.saved.model.input_shape))


class Committee:
    """One or more members that answer as one: a committee of one answers as its member."""

    def __init__(self, members: Sequence[Member]):
        if not members:
            raise ValueError("a committee needs at least one member")
        _check_probabilities(members)
        _check_distinct(members)
        _check_alike(members)
        self.members = list(members)

    @classmethod
    def load(cls, targets: Sequence[Path], load: Callable[[Path], artifacts.Saved]) -> "Committee":
        """The committee of the runs (or weights files) `targets`, each loaded by `load`."""
        return cls([Member(Path(target), load(Path(target))) for target in targets])

    @property
    def first(self) -> artifacts.Saved:
        """What the first member's weights file holds (the dataset all the members learnt)."""
        return self.members[0].saved

    def __len__(self) -> int:
        return len(self.members)

    def member_scores(self, pixels: np.ndarray) -> list[np.ndarray]:
        """Each member's probabilities for the images of `pixels`, (n, pixels) as read."""
        return [m.saved.model.scores(m.saved.norm.apply(pixels)) for m in self.members]


def mean_scores(member_scores: Sequence[np.ndarray]) -> np.ndarray:
    """p̄ = (1/N) Σ_m p_m, summed in float64 (so N identical members answer exactly their
    member's float32 probabilities)."""
    total = np.zeros(member_scores[0].shape)
    for scores in member_scores:
        total += scores
    return total / len(member_scores)


def _check_probabilities(members: Sequence[Member]) -> None:
    """The WeightsError naming the first member of a committee of several that answers no
    probabilities (one member alone answers as it answers, probabilities or scores)."""
    for member in members if len(members) > 1 else ():
        if member.saved.model.output.score_name != "probability":
            raise WeightsError(
                f"{member.path} answers mse scores, not probabilities: a committee averages its"
                " members' probabilities (runs of model.output softmax_cross_entropy)"
            )


def _check_distinct(members: Sequence[Member]) -> None:
    """The WeightsError naming the first member that is a run named before."""
    named: dict[Path, Path] = {}  # each member's resolved path: the name it was first given
    for member in members:
        resolved = member.path.resolve()
        if resolved in named:
            also = "" if named[resolved] == member.path else f" (also as {named[resolved]})"
            raise WeightsError(
                f"{member.path} is named twice{also}: a committee's members are different runs, e.g."
                " the same config trained with other seeds (--set train.seed=1)"
            )
        named[resolved] = member.path


def _check_alike(members: Sequence[Member]) -> None:
    """The WeightsError naming the first member that differs from the first member in what it
    learnt, answers or reads."""
    first = members[0]
    for member in members[1:]:
        for (verb, theirs), (_, ours) in zip(_described(member), _described(first)):
            if theirs != ours:
                raise WeightsError(
                    f"{member.path} {verb} {theirs}, but {first.path} {verb} {ours}: the members of a"
                    " committee must have learnt the same dataset, answer the same classes and read"
                    " images of the same size"
                )


def _described(member: Member) -> list[tuple[str, str]]:
    """What must be alike in every member, as (verb, what) of a sentence."""
    return [
        ("learnt", member.saved.dataset),
        ("answers", f"{member.saved.model.sizes[-1]} classes"),
        ("reads images of", f"{member.pixels} pixels"),
    ]
