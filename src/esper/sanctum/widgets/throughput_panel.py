"""Throughput panel: speed, where a batch's time goes, and memory."""

from __future__ import annotations

from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from esper.sanctum import format as fmt
from esper.sanctum.schema import SanctumSnapshot

SHARE_BAR_WIDTH = 12
# (label, Throughput field, colour): the phases of a batch.
SHARES = (
    ("rollout", "rollout_share", "cyan"),
    ("update", "update_share", "magenta"),
    ("other", "other_share", "grey50"),
)


def render_throughput_panel(snapshot: SanctumSnapshot) -> RenderableType:
    t = snapshot.throughput
    table = Table.grid(padding=(0, 2))
    for _ in range(3):
        table.add_column(no_wrap=True)
    table.add_row("SPS", Text(fmt.number(t.sps, ",.0f"), style="bold"))
    for label, field, style in SHARES:
        fraction = getattr(t, field)
        bar = "" if fraction is None else "█" * round(fraction * SHARE_BAR_WIDTH)
        table.add_row(label, fmt.share(fraction), Text(bar, style=style))
    table.add_row("process mem", fmt.memory(t.process_memory_mb))
    if t.cuda_memory_mb is not None:
        table.add_row("CUDA mem", fmt.memory(t.cuda_memory_mb))
    return Panel(table, title="Throughput", title_align="left")
