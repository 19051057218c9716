"""Sanctum: the terminal dashboard that shows a run's telemetry as it happens.

Events go into a ``SanctumAggregator``; it hands out immutable
``SanctumSnapshot`` values; widgets are pure functions of a snapshot; the
dashboard (``SanctumDashboard``) redraws them from its own thread.
"""

from esper.sanctum.aggregator import SanctumAggregator
from esper.sanctum.app import SanctumDashboard
from esper.sanctum.layout import render_dashboard
from esper.sanctum.schema import NotableEvent, NotableKind, RunStatus, SanctumSnapshot

__all__ = [
    "NotableEvent",
    "NotableKind",
    "RunStatus",
    "SanctumAggregator",
    "SanctumDashboard",
    "SanctumSnapshot",
    "render_dashboard",
]
