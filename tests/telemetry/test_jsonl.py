"""telemetry.jsonl is appended one complete line per event; readers skip a torn line."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from esper.telemetry.events import (
    BatchCompletedPayload,
    CheckpointSavedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingInterruptedPayload,
    TrainingStartedPayload,
)
from esper.telemetry.jsonl import JsonlSink, effective_history, read_events

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "reading-telemetry.md"


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


def started(start_batch: int) -> TelemetryEvent:
    data = TrainingStartedPayload(
        n_envs=8,
        max_epochs=16,
        max_batches=6,
        start_batch=start_batch,
        task="cartpole",
        device="cpu",
        seed=1,
        policy_params=100,
    )
    return TelemetryEvent(TelemetryEventType.TRAINING_STARTED, "run", data, batch=start_batch)


def completed(batch: int, invocation: str) -> TelemetryEvent:
    values = dict.fromkeys(f.name for f in dataclasses.fields(BatchCompletedPayload))
    numbers = {k: 1.0 for k, v in values.items() if k != "env_steps"}
    numbers.update(env_steps=128 * batch, episodes_finished=1, learning_rate=0.0)
    numbers.update(process_memory_mb=None, cuda_memory_mb=None, task_statistics={})
    data = BatchCompletedPayload(**numbers)
    return TelemetryEvent(
        TelemetryEventType.BATCH_COMPLETED, "run", data, batch=batch, message=invocation
    )


def saved(batch: int) -> TelemetryEvent:
    data = CheckpointSavedPayload(path=f"b{batch}.pt", batch=batch, env_steps=128 * batch, bytes=1)
    return TelemetryEvent(TelemetryEventType.CHECKPOINT_SAVED, "run", data, batch=batch)


def test_the_effective_history_has_each_batch_once(tmp_path: Path) -> None:
    # To batch 5 (checkpoints 3 and 5), a crash, a resume from 3 to 6, an evaluation.
    written = [started(0), *(completed(b, "first") for b in range(1, 6)), saved(3), saved(5)]
    written += [started(3), *(completed(b, "resumed") for b in (4, 5, 6)), event(6)]
    sink = JsonlSink(tmp_path / "telemetry.jsonl")
    for e in written:
        sink.handle(e)
    sink.close()
    raw = list(read_events(tmp_path / "telemetry.jsonl"))
    assert len(raw) == len(written)  # the record itself stays append-only
    effective = effective_history(raw)
    runs = [
        (e.batch, e.message)
        for e in effective
        if e.event_type is TelemetryEventType.BATCH_COMPLETED
    ]
    assert runs == [(1, "first"), (2, "first"), (3, "first")] + [(b, "resumed") for b in (4, 5, 6)]
    saves = [e.batch for e in effective if e.event_type is TelemetryEventType.CHECKPOINT_SAVED]
    assert saves == [3]  # checkpoint 5 of the first invocation was superseded
    assert effective[-1].event_type is TelemetryEventType.TRAINING_INTERRUPTED


def test_a_resume_at_the_last_batch_supersedes_nothing() -> None:
    history = [started(0), *(completed(b, "first") for b in (1, 2, 3)), event(3), started(3)]
    assert effective_history(history) == history


def test_the_guide_s_reading_example_runs_and_prints_each_batch_once(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    [example] = [
        block
        for block in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
        if "effective_history" in block
    ]
    sink = JsonlSink(tmp_path / "runs/cartpole/telemetry.jsonl")
    # Batches 1-4, a crash, a resume from batch 2's checkpoint to batch 5.
    history = [started(0), *(completed(b, "first") for b in (1, 2, 3, 4))]
    history += [started(2), *(completed(b, "resumed") for b in (3, 4, 5))]
    for logged in history:
        sink.handle(logged)
    sink.close()
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(GUIDE), "exec"), {})
    printed = [int(line.split()[0]) for line in capsys.readouterr().out.splitlines()]
    assert printed == [1, 2, 3, 4, 5]
