"""Event log: the latest notable events (checkpoints, warnings, anomalies...), newest first."""

from __future__ import annotations

from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from esper.sanctum import format as fmt
from esper.sanctum.schema import NotableKind, SanctumSnapshot

KIND_STYLE: dict[NotableKind, str] = {
    NotableKind.STARTED: "green",
    NotableKind.RESUMED: "cyan",
    NotableKind.CHECKPOINT: "blue",
    NotableKind.WARNING: "yellow",
    NotableKind.ANOMALY: "magenta",
    NotableKind.COMPLETED: "bold green",
    NotableKind.INTERRUPTED: "bold yellow",
    NotableKind.FAILED: "bold red",
    NotableKind.EVALUATION: "bold cyan",
    NotableKind.VIDEO: "blue",
}


def render_event_log(snapshot: SanctumSnapshot) -> RenderableType:
    if not snapshot.events:
        body: RenderableType = Text("no notable events yet", style="dim")
    else:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column(justify="right")
        table.add_column()
        table.add_column(overflow="fold")
        for event in snapshot.events:
            table.add_row(
                fmt.clock_time(event.timestamp),
                "-" if event.batch is None else f"B{event.batch}",
                Text(event.kind.value, style=KIND_STYLE[event.kind]),
                event.message,
            )
        body = table
    return Panel(body, title="Events", title_align="left")
