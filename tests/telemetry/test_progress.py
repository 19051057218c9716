"""The --no-sanctum progress bar shows batches, SPS and the latest return."""

from __future__ import annotations

import io

from rich.console import Console

from esper.runs import sinks as run_sinks
from esper.telemetry.events import (
    TelemetryEvent,
    TelemetryEventType,
    TrainingCompletedPayload,
    TrainingStartedPayload,
)
from esper.telemetry.progress import ProgressSink

from ..telemetry.test_events import batch_completed


def test_bar_follows_batches_and_prints_the_ending() -> None:
    console = Console(record=True, width=120, file=io.StringIO(), force_terminal=True)
    sink = ProgressSink(console)
    started = TrainingStartedPayload(
        n_envs=8, max_epochs=16, max_batches=5, start_batch=3, task="cartpole",
        device="cpu", seed=1, policy_params=100,
    )  # fmt: skip
    sink.handle(TelemetryEvent(TelemetryEventType.TRAINING_STARTED, "run", started, batch=3))
    for batch in (4, 5):
        sink.handle(
            TelemetryEvent(
                TelemetryEventType.BATCH_COMPLETED,
                "run",
                batch_completed(sps=4321.0, episode_return_mean=187.25),
                batch=batch,
            )
        )
    done = TrainingCompletedPayload(
        final_batch=5, env_steps=640, total_seconds=1.0, final_return_mean=1
    )
    sink.handle(
        TelemetryEvent(
            TelemetryEventType.TRAINING_COMPLETED, "run", done, batch=5, message="all done"
        )
    )
    sink.close()
    text = console.export_text()
    assert "5/5" in text and "4,321 sps" in text and "return 187.2" in text
    assert "all done" in text
    # Above the bar, one line says what is training, as the plain lines do.
    assert "esper: cartpole on cpu: 8 envs x 16 steps per batch, batches 4..5" in text
    assert text.index("cartpole on cpu") < text.index("5/5")


def test_display_choice_follows_the_terminal(monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert run_sinks.choose_display(None) == "sanctum"
    assert run_sinks.choose_display(True) == "sanctum"
    assert run_sinks.choose_display(False) == "progress"
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert run_sinks.choose_display(None) == "lines"
