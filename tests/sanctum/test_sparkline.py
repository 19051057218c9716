"""The sparkline helper."""

from __future__ import annotations

import math

from esper.sanctum.sparkline import sparkline


def test_scales_between_min_and_max():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"


def test_keeps_only_the_last_width_values():
    assert sparkline([100, 1, 2], width=2) == "▁█"


def test_flat_series_and_empty_series():
    assert sparkline([3, 3, 3]) == "▄▄▄"
    assert sparkline([]) == ""


def test_non_finite_values_are_gaps():
    assert sparkline([1, math.nan, 2]) == "▁ █"
    assert sparkline([math.nan]) == " "
