"""How the dashboard writes numbers, durations and sizes.

One helper per kind of value, shared by every widget, so that a missing value
reads the same everywhere ('-') and is never replaced by a plausible default.
"""

from __future__ import annotations

import math

from esper.sanctum.clock import parse_timestamp

MISSING = "-"


def number(value: float | None, spec: str = ".4g") -> str:
    if value is None:
        return MISSING
    if not math.isfinite(value):
        return str(value)  # 'nan', 'inf': a diverged run must look diverged
    return format(value, spec)


def duration(seconds: float | None) -> str:
    """``H:MM:SS``; days are shown as hours."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def share(fraction: float | None) -> str:
    return MISSING if fraction is None else f"{fraction * 100:.0f}%"


def memory(megabytes: float | None) -> str:
    if megabytes is None or not math.isfinite(megabytes):
        return MISSING
    if megabytes >= 1024:
        return f"{megabytes / 1024:.2f} GB"
    return f"{megabytes:.0f} MB"


def clock_time(timestamp: str | None) -> str:
    """The local wall-clock time of an ISO-8601 timestamp, ``HH:MM:SS``."""
    parsed = parse_timestamp(timestamp)
    return MISSING if parsed is None else parsed.astimezone().strftime("%H:%M:%S")
