"""Task panel: the statistics a task declares, with their recent course.

Shown only for a task that reports statistics (``BatchedEnv.statistics``):
one row per statistic, its latest value and a sparkline of the recent
batches, and the task's start facts beneath. Narrow enough for 80 columns:
long names and facts are cut with an ellipsis, never wrapped.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from esper.sanctum import format as fmt
from esper.sanctum.schema import SanctumSnapshot
from esper.sanctum.sparkline import sparkline

NAME_WIDTH = 28  # a statistic's name, cut beyond this
SPARK_WIDTH = 30  # batches in a sparkline
FACTS_WIDTH = 72  # the facts line, cut beyond this (inside an 80-column panel)


def render_task_panel(snapshot: SanctumSnapshot) -> RenderableType | None:
    """The panel, or None when the task reports no statistics."""
    task = snapshot.task_stats
    if not task.statistics:
        return None
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, max_width=NAME_WIDTH, overflow="ellipsis")
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True)
    for name, value in task.statistics.items():
        trend = sparkline(task.history.get(name, ()), SPARK_WIDTH)
        table.add_row(name, Text(fmt.number(value), style="bold"), Text(trend, style="cyan"))
    parts: list[RenderableType] = [table]
    if task.facts:
        facts = "  ".join(f"{key} {_fact(value)}" for key, value in task.facts.items())
        parts.append(Text(facts, style="dim", no_wrap=True, overflow="ellipsis"))
    title = f"Task: {snapshot.task}" if snapshot.task else "Task"
    return Panel(Group(*parts), title=title, title_align="left")


def _fact(value: object) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return fmt.number(value)
    return str(value)
