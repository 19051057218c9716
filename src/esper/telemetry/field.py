"""The types of the telemetry table (``telemetry/metrics.py``): what one field is,
where its value is made, how ranks combine it, when it may be absent, and the
health levels Sanctum colours it by. Apart from the table so consumers that only
need the vocabulary (the collectives' reductions, Sanctum's thresholds) read it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Source(StrEnum):
    """Where a value is made."""

    DEVICE = "device"  # a tensor on the training device, packed into the one host transfer
    HOST = "host"  # measured or counted on the host (clocks, memory, the schedule)


class Reduction(StrEnum):
    """How the value of several ranks combines into the job's value."""

    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    WEIGHTED = "mean weighted by episodes_finished"
    RATIO = "the ranks' totals summed, over their weights summed (a weighted mean)"
    BY_KIND = "each statistic by its kind: a count summed, a mean weighted (TaskStatistic.kind)"
    SAME = "identical on every rank"


class Absent(StrEnum):
    """When a field may be ``None``."""

    NEVER = "never"
    NO_EPISODE = "exactly when no episode finished in the batch"
    UNAVAILABLE = "when not measured on this platform"
    OUTSIDE_TRAINING = "in an evaluation by esper eval, or a record older than the field"
    NOTHING_TO_REPORT = "when the task had nothing to report this batch (NaN on the device)"
    LEARNED = "for a learned policy's evaluation, or a record older than the field"


@dataclass(frozen=True)
class Threshold:
    """Health levels of one metric; ``warn``/``critical`` None: only non-finite is bad."""

    label: str  # short name for Sanctum's status banner
    problem: str = ""  # what crossing a level means, for the event log
    warn: float | None = None
    critical: float | None = None
    high_is_bad: bool = True


@dataclass(frozen=True)
class Field:
    """One telemetry field: what it is, where it is made, and how it is shown."""

    id: str  # stable record id in docs/telemetry.md
    name: str
    title: str
    type: type  # int, float, str or dict
    unit: str
    description: str
    low: float | None = None  # enforced range (inclusive); None: unbounded
    high: float | None = None
    range_note: str = ""  # what the range means where the bounds alone do not say
    nan_allowed: bool = False  # a diverging update is recorded, not rejected
    absent: Absent = Absent.NEVER
    default: Any = None  # the payload's default; None with required=True: must be given
    required: bool = True
    source: Source = Source.HOST
    reduction: Reduction = Reduction.SAME
    tensorboard: str | None = None  # TensorBoard tag (CleanRL's name where CleanRL logs it)
    console: str | None = None  # str.format template of its part of the console line
    health: Threshold | None = None
    sanctum: str | None = None  # where the snapshot holds it, e.g. "ppo.approx_kl"

    @property
    def range_text(self) -> str:
        if self.type in (str, dict):
            return "non-empty" if self.type is str else "any"
        low = "(-∞" if self.low is None else f"[{self.low:g}"
        high = "∞)" if self.high is None else f"{self.high:g}]"
        text = f"{low}, {high}"
        if self.nan_allowed:
            text += ", or NaN/inf"
        return f"{text}; {self.range_note}" if self.range_note else text
