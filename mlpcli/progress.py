"""Progress bars (tqdm) for work that can take more than a few seconds: on a terminal only,
unless asked for or against, and cleared when the work is done."""

import sys
from collections.abc import Iterable

from tqdm import tqdm

from mlpcli.output import columns

ECHO_ROOM = 3  # columns left free at the end of a bar: a terminal echoes ^C there, on the bar's line


def bar(items: Iterable, progress: bool | None, **options) -> tqdm:
    """`items`, with a bar when `progress` is True, or None and the output is a terminal."""
    disable = None if progress is None else not progress  # tqdm: None disables off a terminal
    return tqdm(items, disable=disable, leave=False, ncols=_width(), **options)


def _width() -> int | None:
    """The bar's width: the terminal's (standard error's), less ECHO_ROOM; None when unknown."""
    width = columns(sys.stderr)
    return None if width is None else max(width - ECHO_ROOM, 20)
