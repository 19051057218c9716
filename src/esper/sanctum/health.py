"""The one table of health thresholds for PPO statistics, and how to read it.

Every widget that colours a metric, and the aggregator that logs a warning when
one turns bad, asks ``assess`` here, so a threshold is changed in one place.
The thresholds suit the built-in tasks' PPO defaults; a NaN or infinite value
is critical for every metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum


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


@dataclass(frozen=True)
class Threshold:
    """Levels for one metric; ``warn``/``critical`` None means only non-finite is bad."""

    label: str  # short name for the status banner
    problem: str = ""  # what crossing a level means, for the event log
    warn: float | None = None
    critical: float | None = None
    high_is_bad: bool = True


# Keyed by the BatchCompletedPayload / PPOStats field name, in banner order.
THRESHOLDS: dict[str, Threshold] = {
    "approx_kl": Threshold("KL", "KL too high", warn=0.02, critical=0.05),
    "entropy": Threshold(
        "Entropy", "entropy collapsed", warn=0.1, critical=0.01, high_is_bad=False
    ),
    "explained_variance": Threshold(
        "EV", "explained variance negative", warn=0.0, critical=-0.5, high_is_bad=False
    ),
    "clip_fraction": Threshold("Clip", "clip fraction high", warn=0.3, critical=0.5),
    "policy_loss": Threshold("PLoss"),
    "value_loss": Threshold("VLoss"),
    "grad_norm": Threshold("Grad"),
}


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
