"""The dashboard's arrangement: the widgets of one snapshot, top to bottom."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from esper.sanctum.schema import SanctumSnapshot
from esper.sanctum.widgets import (
    render_ending,
    render_event_log,
    render_metrics_panel,
    render_run_header,
    render_status_banner,
    render_throughput_panel,
)

# Columns at which no panel of a typical run wraps a line (a pipe gets at least these).
LAYOUT_WIDTH = 120


def render_dashboard(snapshot: SanctumSnapshot, footer: str | None = None) -> RenderableType:
    panels = Table.grid(expand=True)
    panels.add_column(ratio=3)
    panels.add_column(ratio=2)
    panels.add_row(render_metrics_panel(snapshot), render_throughput_panel(snapshot))
    parts: list[RenderableType] = [
        render_run_header(snapshot),
        render_status_banner(snapshot),
        panels,
        render_event_log(snapshot),
    ]
    ending = render_ending(snapshot)
    if ending is not None:  # last, so a command's next line (a resume command) follows it
        parts.append(ending)
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)
