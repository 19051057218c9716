"""StatusBanner: the run's state in one glance, a health colour per PPO metric,
and why it ended."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from esper.sanctum import format as fmt
from esper.sanctum.flow import Flow
from esper.sanctum.health import HEALTH_STYLE, THRESHOLDS, assess
from esper.sanctum.schema import RunStatus, SanctumSnapshot

STATUS_STYLE: dict[RunStatus, str] = {
    RunStatus.WAITING: "bold black on grey70",
    RunStatus.RUNNING: "bold black on green",
    RunStatus.COMPLETED: "bold white on blue",
    RunStatus.INTERRUPTED: "bold black on yellow",
    RunStatus.FAILED: "bold white on red",
}
REASON_STYLE: dict[RunStatus, str] = {RunStatus.INTERRUPTED: "yellow", RunStatus.FAILED: "bold red"}


def render_status_banner(snapshot: SanctumSnapshot) -> Flow:
    """One item per field, so a narrow terminal breaks the line between fields,
    never between a label and its value (``KL`` on one line, ``0.0084`` on the next)."""
    s = snapshot
    items = [Text(f" {s.status.value.upper()} ", style=STATUS_STYLE[s.status])]
    batch = f"{s.current_batch}/{s.max_batches}" if s.max_batches > 0 else f"{s.current_batch}"
    items.append(Text(f"Batch:{batch}", style="dim"))
    if all(getattr(s.ppo, metric) is None for metric in THRESHOLDS):
        items.append(Text("metrics: waiting for the first batch", style="dim"))
    else:
        for metric, threshold in THRESHOLDS.items():
            value = getattr(s.ppo, metric)
            style = HEALTH_STYLE[assess(metric, value)]
            items.append(Text.assemble(f"{threshold.label} ", (fmt.number(value, ".3g"), style)))
    return Flow(items, gap=2)


def render_ending(snapshot: SanctumSnapshot) -> RenderableType | None:
    """Why the run ended (``interrupted: SIGINT received; ...``), for the dashboard's
    last line, just above what the command prints next; None while nothing ended."""
    if not snapshot.reason:
        return None
    status = snapshot.status
    return Text(f"{status.value}: {snapshot.reason}", style=REASON_STYLE.get(status, ""))
