"""What a run's telemetry hub is attached to besides the trainer: the display
(Sanctum, a progress bar, console lines or nothing), the JSONL record and the
user's callbacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Literal

from esper.runs.directory import RunDir
from esper.sanctum import SanctumAggregator, SanctumDashboard
from esper.telemetry.events import TelemetryEvent
from esper.telemetry.hub import TelemetryHub
from esper.telemetry.jsonl import JsonlSink
from esper.training.interrupt import StopRequest

Display = Literal["sanctum", "progress", "lines", "none"]
# Gets every event of the run; returning True asks the run to stop after this batch.
Callback = Callable[[TelemetryEvent], object]


def choose_display(sanctum: bool | None) -> Display:
    """The dashboard in a terminal unless --no-sanctum (then a progress bar);
    plain lines whenever stdout is not a terminal."""
    if not sys.stdout.isatty():
        return "lines"
    return "progress" if sanctum is False else "sanctum"


def live_dashboard(hub: TelemetryHub) -> AbstractContextManager[object]:
    """The live dashboard, drawn from an aggregator the hub feeds."""
    aggregator = SanctumAggregator()
    hub.subscribe(aggregator)
    return SanctumDashboard(aggregator)


class CallbackError(Exception):
    """A user's callback raised: the run fails (TRAINING_FAILED names the callback),
    as Stable-Baselines3's does, instead of a warning and training on."""

    fails_the_run = True  # the hub lets it through instead of isolating it


class StoppingCallback:
    """A user's callback on the hub: a ``True`` return requests a stop, which the
    trainer reads at the next batch boundary; an exception fails the run."""

    def __init__(self, callback: Callback, stop: StopRequest) -> None:
        self._callback, self._stop = callback, stop
        self.name = f"callback {getattr(callback, '__name__', type(callback).__name__)}"
        self.failed = False  # after its error it sees no more events (the failure's own)

    def __call__(self, event: TelemetryEvent) -> None:
        if self.failed:
            return
        try:
            asked = self._callback(event)
        except Exception as exc:
            self.failed = True
            raise CallbackError(
                f"{self.name} raised {type(exc).__name__}: {exc} (on {event.event_type})"
            ) from exc
        if asked is True and not self._stop.requested:
            self._stop.request(f"a stop request from {self.name}")


class LazyJsonl:
    """Opens RUN_DIR/telemetry.jsonl at the first event, after the run dir checks."""

    name = "jsonl"

    def __init__(self, run_dir: RunDir) -> None:
        self._run_dir = run_dir
        self._sink: JsonlSink | None = None

    def handle(self, event) -> None:
        if self._sink is None:
            self._sink = JsonlSink(self._run_dir.telemetry_path)
        self._sink.handle(event)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
