"""SanctumDashboard: draws while the block runs, leaves the final state, then lets go."""

from __future__ import annotations

import io
import os
import termios
import threading
import time

import pytest
from rich.console import Console

from esper.sanctum import SanctumAggregator, SanctumDashboard


def recording_console(terminal: bool) -> Console:
    return Console(record=True, width=100, file=io.StringIO(), force_terminal=terminal)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_final_state_is_left_on_screen_and_the_thread_stops(events):
    console = recording_console(terminal=False)
    aggregator = SanctumAggregator()
    with SanctumDashboard(aggregator, console=console):
        aggregator.feed([*events.run(3, 3), events.completed(3)])
    text = console.export_text()
    assert "COMPLETED" in text and "Batch:3/3" in text and "B:████████ 3/3" in text
    assert not any(t.name == "sanctum-dashboard" for t in threading.enumerate())


def test_redraws_when_events_arrive(events):
    console = recording_console(terminal=True)
    aggregator = SanctumAggregator()
    with SanctumDashboard(aggregator, console=console, refresh_per_second=50):
        aggregator.feed(events.run(3, 1))
        assert wait_for(lambda: "B:██░░░░░░ 1/3" in console.export_text(clear=False))
        aggregator.handle(events.batch(2))
        assert wait_for(lambda: "B:█████░░░ 2/3" in console.export_text(clear=False))


def test_failure_shows_the_reason_and_the_exception_goes_on(events):
    console = recording_console(terminal=False)
    aggregator = SanctumAggregator()
    with pytest.raises(KeyboardInterrupt), SanctumDashboard(aggregator, console=console):
        aggregator.feed(events.run(10, 2))
        aggregator.handle(events.failed(2, "stopped at once by a second Ctrl-C"))
        raise KeyboardInterrupt
    text = console.export_text()
    assert "FAILED" in text and "stopped at once by a second Ctrl-C" in text


def test_nothing_is_left_behind_when_no_event_arrived():
    console = recording_console(terminal=False)
    with pytest.raises(ValueError), SanctumDashboard(SanctumAggregator(), console=console):
        raise ValueError("the run dir was refused before training started")
    assert console.export_text().strip() == ""


def test_the_terminal_echoes_nothing_while_the_dashboard_shows(events):
    """An echoed ^C would push the redrawn frames down a line, leaving a border behind."""
    controller, terminal = os.openpty()
    keys = os.fdopen(terminal, "r")
    try:
        before = termios.tcgetattr(terminal)[3]
        assert before & termios.ECHO and before & termios.ECHOCTL
        with SanctumDashboard(SanctumAggregator(), console=recording_console(False), keys=keys):
            during = termios.tcgetattr(terminal)[3]
        assert not during & termios.ECHO and not during & termios.ECHOCTL
        assert termios.tcgetattr(terminal)[3] == before  # given back as it was
    finally:
        keys.close()
        os.close(controller)
