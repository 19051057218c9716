"""esper.train(callbacks=[...]): every typed event reaches each callback, and one
that returns True stops the run at the next batch boundary, interrupted and
resumable."""

from __future__ import annotations

from pathlib import Path

import esper
from esper.runs.directory import RunDir
from esper.telemetry.events import TelemetryEvent, TelemetryEventType

TINY = {"n_envs": 4, "horizon": 8, "n_minibatches": 1, "device": "cpu", "progress": False}


def test_callbacks_receive_every_event(tmp_path: Path) -> None:
    seen: list[TelemetryEvent] = []
    outcome = esper.train(episodes=2, run_dir=str(tmp_path), callbacks=[seen.append], **TINY)
    assert outcome.status == "completed"
    kinds = [event.event_type for event in seen]
    assert kinds[0] is TelemetryEventType.TRAINING_STARTED
    assert kinds.count(TelemetryEventType.BATCH_COMPLETED) == 2
    assert kinds[-1] is TelemetryEventType.TRAINING_COMPLETED
    assert all(isinstance(event, TelemetryEvent) for event in seen)


def test_a_callback_returning_true_stops_at_the_next_batch_boundary(tmp_path: Path) -> None:
    def stop_after_two(event: TelemetryEvent) -> bool:
        return event.event_type is TelemetryEventType.BATCH_COMPLETED and event.batch == 2

    outcome = esper.train(episodes=10, run_dir=str(tmp_path), callbacks=[stop_after_two], **TINY)
    assert outcome.status == "interrupted"
    assert outcome.final_batch == 2
    assert "stop_after_two" in outcome.reason
    assert 2 in RunDir(tmp_path).checkpoints()  # saved where it stopped: resumable
    resumed = esper.train(episodes=1, run_dir=str(tmp_path), resume=True, **TINY)
    assert resumed.status == "completed" and resumed.final_batch == 3


def test_a_callback_that_raises_fails_the_run_naming_it(tmp_path: Path) -> None:
    """As in Stable-Baselines3: an error in the user's callback ends the run,
    TRAINING_FAILED names the callback, and no batch trains after it."""
    from esper.telemetry.jsonl import read_events

    def broken_logger(event: TelemetryEvent) -> None:
        if event.event_type is TelemetryEventType.BATCH_COMPLETED and event.batch == 2:
            raise ValueError("no such metric")

    outcome = esper.train(episodes=6, run_dir=str(tmp_path), callbacks=[broken_logger], **TINY)
    assert outcome.status == "failed"
    assert "callback broken_logger raised ValueError: no such metric" in outcome.reason
    events = list(read_events(tmp_path / "telemetry.jsonl"))
    assert events[-1].event_type is TelemetryEventType.TRAINING_FAILED
    batches = [e.batch for e in events if e.event_type is TelemetryEventType.BATCH_COMPLETED]
    assert batches == [1, 2]  # it failed where the callback raised
    assert "callback broken_logger raised ValueError" in events[-1].data.reason
    assert not outcome.telemetry_failures  # failed the run, not a sink that warns and goes on
    assert "ValueError: no such metric" in (tmp_path / "error.log").read_text()


def test_a_callback_that_raises_on_the_first_event_fails_the_run_too(tmp_path: Path) -> None:
    def refuses(event: TelemetryEvent) -> None:
        raise RuntimeError("not ready")

    outcome = esper.train(episodes=2, run_dir=str(tmp_path), callbacks=[refuses], **TINY)
    assert outcome.status == "failed" and "callback refuses raised RuntimeError" in outcome.reason
    kinds = [e.event_type for e in read_events_of(tmp_path)]
    assert kinds == [TelemetryEventType.TRAINING_STARTED, TelemetryEventType.TRAINING_FAILED]


def read_events_of(run_dir: Path):
    from esper.telemetry.jsonl import read_events

    return list(read_events(run_dir / "telemetry.jsonl"))
