"""In-process fan-out of telemetry events to subscribers.

The hub is passed into the trainer, never reached for as a global. Emission is
synchronous and happens once per batch, so subscribers are cheap to call; a
subscriber that raises is reported once on stderr, keeps receiving later events,
and the count of events it failed on is kept so nothing is dropped silently.
An error marked ``fails_the_run`` (a user's callback's) is raised instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO, runtime_checkable

from esper.telemetry.events import SinkFailedPayload, TelemetryEvent, TelemetryEventType


@runtime_checkable
class Sink(Protocol):
    """A subscriber with a lifecycle: ``handle`` per event, ``close`` at the end."""

    def handle(self, event: TelemetryEvent) -> None: ...

    def close(self) -> None: ...


Subscriber = Sink | Callable[[TelemetryEvent], None]


@dataclass
class SubscriberFailure:
    """What one subscriber failed on: the first error and how many events."""

    name: str
    first_error: str
    failed_events: int = 1


@dataclass
class TelemetryHub:
    errors: TextIO | None = None  # where failures are reported; stderr when None
    _subscribers: list[Subscriber] = field(default_factory=list)
    failures: dict[int, SubscriberFailure] = field(default_factory=dict)
    closed: bool = False

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        self._subscribers.append(subscriber)
        return subscriber

    def emit(self, event: TelemetryEvent) -> None:
        if self.closed:
            raise RuntimeError(f"emit({event.event_type}) after the hub was closed")
        for subscriber in list(self._subscribers):
            try:
                if isinstance(subscriber, Sink):
                    subscriber.handle(event)
                else:
                    subscriber(event)
            except Exception as exc:  # isolate: one sink never stops the others
                if getattr(exc, "fails_the_run", False):  # a user's callback: the run fails
                    raise
                self._record_failure(subscriber, exc, event)

    def close(self) -> None:
        """Close every sink (errors isolated too); report the failure summary."""
        if self.closed:
            return
        self.closed = True
        for subscriber in self._subscribers:
            if isinstance(subscriber, Sink):
                try:
                    subscriber.close()
                except Exception as exc:
                    self._record_failure(subscriber, exc, None)
        for failure in self.failures.values():
            if failure.failed_events > 1:
                self._report(
                    f"telemetry subscriber {failure.name} failed on "
                    f"{failure.failed_events} events in all"
                )

    @property
    def healthy(self) -> bool:
        return not self.failures

    def _record_failure(
        self, subscriber: Subscriber, exc: Exception, event: TelemetryEvent | None
    ) -> None:
        key = id(subscriber)
        if key in self.failures:
            self.failures[key].failed_events += 1
            return
        name = getattr(subscriber, "name", None) or type(subscriber).__name__
        what = f"on {event.event_type}" if event is not None else "on close"
        error = f"{type(exc).__name__}: {exc}"
        self.failures[key] = SubscriberFailure(name=name, first_error=error)
        self._report(f"telemetry subscriber {name} failed {what}: {error}")
        if event is not None and event.event_type is not TelemetryEventType.SINK_FAILED:
            # Put the failure on the record the other sinks keep (event log, JSONL).
            self.emit(
                TelemetryEvent(
                    TelemetryEventType.SINK_FAILED,
                    event.group_id,
                    SinkFailedPayload(sink=name, error=error, on_event=str(event.event_type)),
                    batch=event.batch,
                    message=f"telemetry sink {name} failed: {error}",
                )
            )

    def _report(self, line: str) -> None:
        stream = self.errors if self.errors is not None else sys.stderr
        print(f"esper: warning: {line}", file=stream, flush=True)
