"""A one-line chart of recent values, in block characters."""

from __future__ import annotations

import math
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int | None = None) -> str:
    """The last ``width`` values scaled between their own min and max.

    A flat series sits mid-height; a non-finite value is a gap (' '), so a NaN
    stays visible instead of being drawn as a low value.
    """
    recent = list(values if width is None else values[-width:] if width > 0 else [])
    finite = [v for v in recent if math.isfinite(v)]
    if not finite:
        return " " * len(recent)
    low, high = min(finite), max(finite)
    span = high - low
    top = len(BLOCKS) - 1
    chars = []
    for value in recent:
        if not math.isfinite(value):
            chars.append(" ")
        elif span == 0:
            chars.append(BLOCKS[top // 2])
        else:
            chars.append(BLOCKS[round((value - low) / span * top)])
    return "".join(chars)
