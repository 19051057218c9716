"""Hosts panel: a growth run's hosts at a glance, from the task's statistics.

Shown in place of the generic task panel when the task reports the growth
statistics (``grow-mlp``): the hosts' final validation accuracy with its
course, parameters against the budget as a bar, seeds per stage at episode
end as one compact row (``T0.2 B0.1 H0.0 F2.1 P0.3``, per host), the batch's
germinations, fossilizations and prunes, and the seeds' contribution.
Fits 80 columns.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from esper.sanctum import format as fmt
from esper.sanctum.schema import SanctumSnapshot
from esper.sanctum.sparkline import sparkline

# The statistics a growth task reports (esper.envs.growth.env.STATISTICS).
NEEDED = ("final_val_accuracy", "params_vs_budget", "germinations")
STAGE_ROW = (
    ("T", "seeds_training"),
    ("B", "seeds_blending"),
    ("H", "seeds_holding"),
    ("F", "seeds_fossilized"),
    ("P", "seeds_embargoed"),
)
BAR_WIDTH = 30
SPARK_WIDTH = 30


def render_hosts_panel(snapshot: SanctumSnapshot) -> RenderableType | None:
    """The panel, or None for a task that is not a growth task."""
    task = snapshot.task_stats
    stats = task.statistics
    if not all(name in stats for name in NEEDED):
        return None
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    accuracy = sparkline(task.history.get("final_val_accuracy", ()), SPARK_WIDTH)
    table.add_row(
        "accuracy",
        Text.assemble(
            (fmt.number(stats["final_val_accuracy"], ".3f"), "bold"), "  ", (accuracy, "cyan")
        ),
    )
    table.add_row("params", _bar(stats["params_vs_budget"], task.facts.get("param_budget")))
    stages = " ".join(f"{letter}{_count(stats.get(name))}" for letter, name in STAGE_ROW)
    table.add_row("seeds", Text(stages + "  (per host, at episode end)"))
    moves = (
        f"germinated {_count(stats.get('germinations'), '.0f')}  "
        f"fossilized {_count(stats.get('fossilizations'), '.0f')}  "
        f"pruned {_count(stats.get('prunes'), '.0f')}"
    )
    table.add_row("this batch", Text(moves))
    table.add_row("contribution", Text(fmt.number(stats.get("seed_contribution"), "+.3f")))
    facts = task.facts
    line = (
        f"bare host {facts.get('host_params', '?')} params, "
        f"slots {','.join(map(str, facts.get('slot_ids', []) or []))}, "
        f"reward {facts.get('reward_mode', '?')}"
    )
    parts = Group(table, Text(line, style="dim", no_wrap=True, overflow="ellipsis"))
    return Panel(parts, title="Hosts", title_align="left")


def _bar(fraction: float | None, budget: object) -> Text:
    if fraction is None:
        return Text(fmt.MISSING)
    filled = round(max(0.0, min(1.0, fraction)) * BAR_WIDTH)
    of = f" of {budget}" if budget is not None else ""
    return Text.assemble(
        ("█" * filled, "green"), ("░" * (BAR_WIDTH - filled), "dim"), f" {fraction:.0%}{of}"
    )


def _count(value: float | None, spec: str = ".1f") -> str:
    return fmt.number(value, spec)
