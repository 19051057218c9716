"""The hub fans out to every subscriber and isolates one that raises."""

from __future__ import annotations

import io

from esper.telemetry.events import TelemetryEvent, TelemetryEventType, TrainingInterruptedPayload
from esper.telemetry.hub import TelemetryHub


def event(batch: int) -> TelemetryEvent:
    return TelemetryEvent(
        TelemetryEventType.TRAINING_INTERRUPTED,
        "run",
        TrainingInterruptedPayload(resume_batch=batch, reason="test"),
        batch=batch,
    )


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[int | None] = []
        self.kinds: list[str] = []
        self.closed = False

    def handle(self, e: TelemetryEvent) -> None:
        self.kinds.append(str(e.event_type))
        if e.event_type is not TelemetryEventType.SINK_FAILED:
            self.seen.append(e.batch)

    def close(self) -> None:
        self.closed = True


def test_fan_out_reaches_every_subscriber_in_order() -> None:
    hub = TelemetryHub()
    first, second = Recorder(), Recorder()
    plain: list[TelemetryEvent] = []
    hub.subscribe(first)
    hub.subscribe(second)
    hub.subscribe(plain.append)
    for b in range(3):
        hub.emit(event(b))
    hub.close()
    assert first.seen == second.seen == [0, 1, 2]
    assert [e.batch for e in plain] == [0, 1, 2]
    assert first.closed and second.closed


def test_raising_subscriber_is_reported_once_and_isolated() -> None:
    errors = io.StringIO()
    hub = TelemetryHub(errors=errors)

    def broken(_: TelemetryEvent) -> None:
        raise OSError("disk full")

    before, after = Recorder(), Recorder()
    hub.subscribe(before)
    hub.subscribe(broken)
    hub.subscribe(after)
    for b in range(4):
        hub.emit(event(b))
    hub.close()
    assert before.seen == after.seen == [0, 1, 2, 3]
    # The failure is on the record the other sinks keep, once.
    assert before.kinds.count("SINK_FAILED") == after.kinds.count("SINK_FAILED") == 1
    report = errors.getvalue()
    assert report.count("failed on TRAINING_INTERRUPTED: OSError: disk full") == 1
    assert "failed on 5 events in all" in report  # nothing dropped silently (4 + its notice)
    assert not hub.healthy


def test_failing_close_does_not_stop_other_sinks_closing() -> None:
    class BadClose(Recorder):
        def close(self) -> None:
            raise RuntimeError("boom")

    errors = io.StringIO()
    hub = TelemetryHub(errors=errors)
    hub.subscribe(BadClose())
    good = hub.subscribe(Recorder())
    hub.close()
    assert good.closed
    assert "on close: RuntimeError: boom" in errors.getvalue()
