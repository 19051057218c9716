"""The one threshold table: what each level means for each metric."""

from __future__ import annotations

import math

import pytest

from esper.sanctum.health import Health, HealthWatch, assess, describe


@pytest.mark.parametrize(
    ("metric", "value", "level"),
    [
        ("approx_kl", 0.01, Health.OK),
        ("approx_kl", 0.03, Health.WARNING),
        ("approx_kl", 0.06, Health.CRITICAL),
        ("entropy", 0.6, Health.OK),
        ("entropy", 0.05, Health.WARNING),
        ("entropy", 0.005, Health.CRITICAL),
        ("explained_variance", 0.0, Health.OK),
        ("explained_variance", -0.1, Health.WARNING),
        ("explained_variance", -0.9, Health.CRITICAL),
        ("clip_fraction", 0.35, Health.WARNING),
        ("grad_norm", 1e6, Health.OK),  # no threshold: only non-finite is bad
        ("grad_norm", math.nan, Health.CRITICAL),
        ("value_loss", math.inf, Health.CRITICAL),
        ("learning_rate", math.nan, Health.CRITICAL),  # not in the table: NaN still bad
        ("approx_kl", None, Health.UNKNOWN),
    ],
)
def test_assess(metric, value, level):
    assert assess(metric, value) is level


def test_describe_names_the_problem_and_the_level_crossed():
    assert describe("entropy", 0.005) == "entropy collapsed: entropy 0.005 below 0.01"
    assert describe("explained_variance", -0.2) == (
        "explained variance negative: explained_variance -0.2 below 0"
    )
    assert describe("policy_loss", math.nan) == "policy_loss is nan"


def test_health_watch_announces_each_worsening_once():
    watch = HealthWatch(settle_batches=2)
    levels = [Health.OK, Health.WARNING, Health.CRITICAL, Health.WARNING, Health.CRITICAL]
    assert [watch.worsened("approx_kl", level) for level in levels] == [
        False,
        True,  # ok -> warning
        True,  # warning -> critical
        False,  # one better batch does not settle it
        False,  # still critical, as announced
    ]
    assert [watch.worsened("approx_kl", level) for level in [Health.OK] * 2] == [False, False]
    assert watch.worsened("approx_kl", Health.WARNING)  # settled at ok, then worse again
