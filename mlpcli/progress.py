"""Progress bars (tqdm) for work that can take more than a few seconds: on a terminal only,
unless asked for or against, and cleared when the work is done."""

from collections.abc import Iterable

from tqdm import tqdm


def bar(items: Iterable, progress: bool | None, **options) -> tqdm:
    """`items`, with a bar when `progress` is True, or None and the output is a terminal."""
    disable = None if progress is None else not progress  # tqdm: None disables off a terminal
    return tqdm(items, disable=disable, leave=False, **options)
