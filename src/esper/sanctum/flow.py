"""Items laid out in lines that break only between items, for narrow terminals.

Rich wraps a ``Text`` at any space, so ``SPS 76,612`` can lose its number to
the next line, or be cut with an ellipsis. A ``Flow`` keeps each item whole: at
80 columns the dashboard's lines break between fields, never inside one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text


class Flow:
    """``items`` joined by ``gap`` spaces, starting a new line where the next
    item would not fit in the width the console offers."""

    def __init__(self, items: Iterable[Text], gap: int = 3) -> None:
        self.items = [item for item in items if item.cell_len]
        self.gap = gap

    def lines(self, width: int) -> Iterator[Text]:
        line = Text()
        for item in self.items:
            if line.cell_len and line.cell_len + self.gap + item.cell_len > width:
                yield line
                line = Text()
            if line.cell_len:
                line.append(" " * self.gap)
            line.append_text(item)
        yield line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n").join(self.lines(options.max_width))
