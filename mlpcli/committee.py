"""Committees (Cireşan et al. 2010): several trained networks answering as one, by the mean
of their probabilities, p̄(x) = (1/N) Σ_m p_m(x), each member reading the pixels through its
own input normalisation. Members must have learnt the same dataset, answer the same classes
in the same way (probabilities, or mse scores) and read images of the same size; a member that
does not is named."""

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
        _check_alike(members)
        self.members = list(members)

    @classmethod
    def load(cls, targets: Sequence[Path], load: Callable[[Path], artifacts.Saved]) -> "Committee":
        """The committee of the runs (or weights files) `targets`, each loaded by `load`."""
        return cls([Member(Path(target), load(Path(target))) for target in targets])

    @property
    def first(self) -> artifacts.Saved:
        return self.members[0].saved

    @property
    def score_name(self) -> str:
        """What its scores are: "probability", or "score" for mse networks."""
        return self.first.model.output.score_name

    def __len__(self) -> int:
        return len(self.members)

    def member_scores(self, pixels: np.ndarray) -> list[np.ndarray]:
        """Each member's scores (rows: the images of `pixels`, (n, pixels) as read)."""
        return [m.saved.model.scores(m.saved.norm.apply(pixels)) for m in self.members]


def mean_scores(member_scores: Sequence[np.ndarray]) -> np.ndarray:
    """p̄ = (1/N) Σ_m p_m, summed in float64."""
    total = np.zeros(member_scores[0].shape)
    for scores in member_scores:
        total += scores
    return total / len(member_scores)


def _check_alike(members: Sequence[Member]) -> None:
    """The WeightsError naming the first member that differs from the first one in what it
    learnt, what it answers or what it reads."""
    first = members[0]
    for member in members[1:]:
        for (verb, theirs), (_, ours) in zip(_described(member), _described(first)):
            if theirs != ours:
                raise WeightsError(
                    f"{member.path} {verb} {theirs}, but {first.path} {verb} {ours}: the members of a"
                    " committee must have learnt the same dataset, answer the same classes with"
                    " probabilities alike and read the same images"
                )


def _described(member: Member) -> list[tuple[str, str]]:
    """What must be alike in every member, as (verb, what) of a sentence."""
    model = member.saved.model
    return [
        ("learnt", member.saved.dataset),
        ("answers", f"{model.sizes[-1]} classes"),
        ("reads images of", f"{member.pixels} pixels"),
        ("answers", scores_in_words(model.output.score_name)),
    ]


def scores_in_words(score_name: str) -> str:
    return "probabilities" if score_name == "probability" else "mse scores"
