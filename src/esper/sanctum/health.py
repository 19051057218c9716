"""How to read the health thresholds of the metrics table (``telemetry/metrics.py``).

Every widget that colours a metric, and the aggregator that logs a warning when
one changes health, asks ``assess`` here; the thresholds themselves are rows
of the one metrics table, so a threshold is changed in one place.
The thresholds suit the built-in tasks' PPO defaults; a NaN or infinite value
is critical for every metric.
"""

from __future__ import annotations

import math
from collections import deque
from enum import IntEnum

from esper.telemetry.field import Threshold
from esper.telemetry.metrics import HEALTH_THRESHOLDS


class Health(IntEnum):
    UNKNOWN = -1  # no value yet
    OK = 0
    WARNING = 1
    CRITICAL = 2


HEALTH_STYLE: dict[Health, str] = {
    Health.UNKNOWN: "dim",
    Health.OK: "green",
    Health.WARNING: "yellow",
    Health.CRITICAL: "bold red",
}


# Keyed by BATCH_COMPLETED / PPOStats field name, in the metrics table's order.
THRESHOLDS: dict[str, Threshold] = HEALTH_THRESHOLDS


def assess(metric: str, value: float | None) -> Health:
    """The health of ``value`` for ``metric`` (a metric not in the table: NaN check only)."""
    if value is None:
        return Health.UNKNOWN
    if not math.isfinite(value):
        return Health.CRITICAL
    threshold = THRESHOLDS.get(metric)
    if threshold is None:
        return Health.OK
    if _beyond(value, threshold.critical, threshold.high_is_bad):
        return Health.CRITICAL
    if _beyond(value, threshold.warn, threshold.high_is_bad):
        return Health.WARNING
    return Health.OK


def describe(metric: str, value: float) -> str:
    """One line saying why ``value`` is unhealthy, for the event log."""
    if not math.isfinite(value):
        return f"{metric} is {value}"
    threshold = THRESHOLDS[metric]
    level = threshold.critical if assess(metric, value) is Health.CRITICAL else threshold.warn
    side = "above" if threshold.high_is_bad else "below"
    return f"{threshold.problem}: {metric} {value:.4g} {side} {level:g}"


def _beyond(value: float, level: float | None, high_is_bad: bool) -> bool:
    if level is None:
        return False
    return value > level if high_is_bad else value < level


class HealthWatch:
    """Each metric's announced health, so a warning is logged when it changes, not per batch.

    A metric worse than announced is announced at once. It counts as better
    again only once it has stayed better for ``settle_batches`` batches, so a
    value hovering about a threshold (explained variance near 0 once CartPole
    is solved) is announced once, not every other batch.
    """

    def __init__(self, settle_batches: int = 5) -> None:
        self._settle_batches = settle_batches
        self._announced: dict[str, Health] = {}
        self._recent: dict[str, deque[Health]] = {}

    def worsened(self, metric: str, level: Health) -> bool:
        """Record this batch's ``level``; True when it is worse than announced (announce it)."""
        recent = self._recent.setdefault(metric, deque(maxlen=self._settle_batches))
        recent.append(level)
        announced = self._announced.get(metric, Health.OK)
        if level > announced:
            self._announced[metric] = level
            return True
        if len(recent) == self._settle_batches and max(recent) < announced:
            self._announced[metric] = max(recent)  # settled at a better level
        return False
