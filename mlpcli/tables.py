"""The text tables mlp prints: `mlp runs`, `mlp gradcheck`, `mlp sweep`."""

from collections.abc import Sequence

GAP = "  "  # between columns


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> list[str]:
    """The lines of a table: the header, a rule, a line per row; each column as wide as its
    widest cell, two spaces between columns. A table wider than `width` (a terminal's) is cut
    into blocks of columns one under the other, each beginning with the first column (what
    names the row), a blank line between them."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines: list[str] = []
    for block in _blocks(widths, width):
        lines += [""] if lines else []
        for row in [header, *rows]:
            lines.append(GAP.join(row[i].ljust(widths[i]) for i in block).rstrip())
        lines.insert(len(lines) - len(rows), GAP.join("-" * widths[i] for i in block))
    return lines


def _blocks(widths: list[int], width: int | None) -> list[list[int]]:
    """The columns of each block: the first column, then as many of the rest, in order, as fit
    in `width` (one at least)."""
    blocks = [[0]]
    for i in range(1, len(widths)):
        used = sum(widths[j] for j in blocks[-1]) + len(GAP) * len(blocks[-1])
        if width is not None and len(blocks[-1]) > 1 and used + widths[i] > width:
            blocks.append([0])
        blocks[-1].append(i)
    return blocks
