"""The dashboard's arrangement: the widgets of one snapshot, top to bottom."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from esper.sanctum.schema import SanctumSnapshot
from esper.sanctum.widgets import (
    render_ending,
    render_event_log,
    render_hosts_panel,
    render_metrics_panel,
    render_run_header,
    render_status_banner,
    render_task_panel,
    render_throughput_panel,
)

# Columns at which no panel of a typical run wraps a line (a pipe gets at least these).
LAYOUT_WIDTH = 120


# Below this many columns the metrics and throughput panels stack instead of
# sharing a row, where their numbers would be cut (an 80-column terminal).
SIDE_BY_SIDE_WIDTH = 100


class _SideBySide:
    """Two panels in one row when the console is wide enough, else one above the other."""

    def __init__(self, left: RenderableType, right: RenderableType) -> None:
        self.left, self.right = left, right

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width < SIDE_BY_SIDE_WIDTH:
            yield Group(self.left, self.right)
            return
        row = Table.grid(expand=True)
        row.add_column(ratio=3)
        row.add_column(ratio=2)
        row.add_row(self.left, self.right)
        yield row


def render_dashboard(snapshot: SanctumSnapshot, footer: str | None = None) -> RenderableType:
    panels = _SideBySide(render_metrics_panel(snapshot), render_throughput_panel(snapshot))
    parts: list[RenderableType] = [
        render_run_header(snapshot),
        render_status_banner(snapshot),
        panels,
    ]
    # A growth task's hosts panel, else the generic panel of any task with statistics.
    task = render_hosts_panel(snapshot) or render_task_panel(snapshot)
    if task is not None:
        parts.append(task)
    parts.append(render_event_log(snapshot))
    ending = render_ending(snapshot)
    if ending is not None:  # last, so a command's next line (a resume command) follows it
        parts.append(ending)
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)
