"""telemetry.jsonl is appended one complete line per event; readers skip a torn line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.telemetry.events import TelemetryEvent, TelemetryEventType, TrainingInterruptedPayload
from esper.telemetry.jsonl import JsonlSink, read_events


def event(batch: int) -> TelemetryEvent:
    return TelemetryEvent(
        TelemetryEventType.TRAINING_INTERRUPTED,
        "run",
        TrainingInterruptedPayload(resume_batch=batch, reason="test"),
        batch=batch,
    )


def test_appends_and_never_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    sink = JsonlSink(path)
    sink.handle(event(1))
    sink.close()
    sink = JsonlSink(path)
    sink.handle(event(2))
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["batch"] for line in lines] == [1, 2]


def test_lines_are_flushed_as_written(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    sink = JsonlSink(path)
    sink.handle(event(7))
    assert json.loads(path.read_text())["batch"] == 7  # visible before close
    sink.close()


def test_partial_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    sink = JsonlSink(path)
    sink.handle(event(1))
    sink.close()
    with path.open("a") as fh:
        fh.write('{"event_type": "TRAINING_INTERR')  # a killed writer
    with pytest.warns(UserWarning, match="skipped an unreadable telemetry line"):
        events = list(read_events(path))
    assert [e.batch for e in events] == [1]
    # The next writer starts on a fresh line, so its events stay readable.
    sink = JsonlSink(path)
    sink.handle(event(2))
    sink.close()
    with pytest.warns(UserWarning):
        assert [e.batch for e in read_events(path)] == [1, 2]
