"""Time for the dashboard: "now", and when an event happened (its ISO-8601 stamp).

Elapsed time and ETA come from event timestamps, so a dashboard attached to a
file reports the run's own timing, not the time it took to read the file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(timestamp: str | None) -> datetime | None:
    """The moment ``timestamp`` names (naive stamps read as UTC); None if unreadable."""
    if not timestamp:
        return None
    try:
        parsed = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
