"""Dashboard widgets: each a pure function ``render_x(snapshot) -> rich renderable``."""

from esper.sanctum.widgets.event_log import render_event_log
from esper.sanctum.widgets.hosts_panel import render_hosts_panel
from esper.sanctum.widgets.metrics_panel import render_metrics_panel
from esper.sanctum.widgets.run_header import render_batch_progress, render_run_header
from esper.sanctum.widgets.status_banner import render_ending, render_status_banner
from esper.sanctum.widgets.task_panel import render_task_panel
from esper.sanctum.widgets.throughput_panel import render_throughput_panel

__all__ = [
    "render_batch_progress",
    "render_ending",
    "render_event_log",
    "render_hosts_panel",
    "render_metrics_panel",
    "render_run_header",
    "render_status_banner",
    "render_task_panel",
    "render_throughput_panel",
]
