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
