"""Payloads validate themselves, and every event type survives a JSONL round trip."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import pytest

from esper.telemetry.console import ConsoleSink
from esper.telemetry.events import (
    PAYLOAD_TYPES,
    BatchCompletedPayload,
    CheckpointSavedPayload,
    EvaluationCompletedPayload,
    PayloadError,
    SinkFailedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingCompletedPayload,
    TrainingFailedPayload,
    TrainingInterruptedPayload,
    TrainingStartedPayload,
    VideoSavedPayload,
)


def started(**changes) -> TrainingStartedPayload:
    fields = dict(
        n_envs=8,
        max_epochs=16,
        max_batches=75,
        start_batch=25,
        task="cartpole",
        device="cpu",
        seed=1,
        policy_params=9155,
        config={"learning_rate": 0.002, "hidden_sizes": [64, 64]},
    )
    return TrainingStartedPayload(**{**fields, **changes})


def batch_completed(**changes) -> BatchCompletedPayload:
    fields = dict(
        env_steps=4096,
        sps=1234.5,
        batch_seconds=3.3,
        episodes_finished=4,
        episode_return_mean=21.5,
        episode_return_min=9.0,
        episode_return_max=40.0,
        episode_length_mean=21.5,
        policy_loss=-0.01,
        value_loss=12.0,
        entropy=0.69,
        approx_kl=0.001,
        clip_fraction=0.02,
        explained_variance=0.3,
        learning_rate=0.002,
        grad_norm=0.7,
    )
    return BatchCompletedPayload(**{**fields, **changes})


EXAMPLES = {
    TelemetryEventType.TRAINING_STARTED: started(),
    TelemetryEventType.BATCH_COMPLETED: batch_completed(),
    TelemetryEventType.CHECKPOINT_SAVED: CheckpointSavedPayload(
        path="runs/x/checkpoints/batch_000025.pt", batch=25, env_steps=4096, bytes=1000
    ),
    TelemetryEventType.TRAINING_COMPLETED: TrainingCompletedPayload(
        final_batch=75, env_steps=10000, total_seconds=12.5, final_return_mean=None
    ),
    TelemetryEventType.TRAINING_INTERRUPTED: TrainingInterruptedPayload(
        resume_batch=30, reason="SIGINT received"
    ),
    TelemetryEventType.SINK_FAILED: SinkFailedPayload(
        sink="tensorboard", error="OSError: disk full", on_event="BATCH_COMPLETED"
    ),
    TelemetryEventType.TRAINING_FAILED: TrainingFailedPayload(
        reason="non-finite policy_loss in batch 3", error_type="NonFiniteError"
    ),
    TelemetryEventType.EVALUATION_COMPLETED: EvaluationCompletedPayload(
        checkpoint_batch=40,
        episodes=100,
        deterministic=True,
        return_mean=498.5,
        return_std=3.2,
        return_min=480.0,
        return_max=500.0,
        length_mean=498.5,
        seed=0,
    ),
    TelemetryEventType.VIDEO_SAVED: VideoSavedPayload(
        path="runs/x/videos/batch_000040.mp4", batch=40, frames=200, env_steps=5120
    ),
}


def test_every_event_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(TelemetryEventType) == set(PAYLOAD_TYPES)


@pytest.mark.parametrize("event_type", list(TelemetryEventType))
def test_jsonl_round_trip(event_type: TelemetryEventType) -> None:
    event = TelemetryEvent(
        event_type=event_type, group_id="run-1", data=EXAMPLES[event_type], batch=25, message="m"
    )
    line = event.to_json()
    raw = json.loads(line)
    assert set(raw) == {"event_type", "timestamp", "group_id", "batch", "message", "data"}
    assert raw["event_type"] == event_type.value
    assert TelemetryEvent.from_json(line) == event


def test_max_batches_zero_is_refused() -> None:
    with pytest.raises(PayloadError, match="max_batches"):
        started(max_batches=0, start_batch=0)


def test_start_batch_must_precede_max_batches() -> None:
    with pytest.raises(PayloadError, match="start_batch"):
        started(max_batches=25, start_batch=25)


def test_episode_stats_are_null_exactly_when_no_episode_finished() -> None:
    none = dict(
        episode_return_mean=None,
        episode_return_min=None,
        episode_return_max=None,
        episode_length_mean=None,
    )
    assert batch_completed(episodes_finished=0, **none).episode_return_mean is None
    with pytest.raises(PayloadError):
        batch_completed(episodes_finished=3, **none)
    with pytest.raises(PayloadError):
        batch_completed(episodes_finished=0)


def test_payloads_are_frozen() -> None:
    payload = started()
    with pytest.raises(AttributeError):
        payload.max_batches = 10  # type: ignore[misc]


def test_wrong_payload_type_for_event_is_refused() -> None:
    with pytest.raises(PayloadError):
        TelemetryEvent(TelemetryEventType.TRAINING_STARTED, "run", batch_completed())


def test_nan_losses_stay_visible_and_lines_stay_strict_json() -> None:
    event = TelemetryEvent(
        TelemetryEventType.BATCH_COMPLETED, "run", batch_completed(policy_loss=float("nan"))
    )
    line = event.to_json()
    assert "NaN" not in line  # strict JSON: no bare NaN token
    assert math.isnan(TelemetryEvent.from_json(line).data.policy_loss)


def test_an_evaluation_needs_at_least_one_episode() -> None:
    with pytest.raises(PayloadError, match="episodes"):
        dataclasses.replace(EXAMPLES[TelemetryEventType.EVALUATION_COMPLETED], episodes=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clip_fraction": 1.5}, "clip_fraction must be <= 1"),
        ({"value_loss": -1.0}, "value_loss must be >= 0"),
        ({"explained_variance": 1.2}, "explained_variance must be <= 1"),
        ({"episode_length_mean": 0.5}, "episode_length_mean must be >= 1"),
        ({"sps": math.nan}, "sps must be finite"),
        ({"env_steps": 1.5}, "env_steps must be an int"),
        ({"learning_rate": None}, "learning_rate must not be None"),
    ],
)
def test_the_tables_ranges_are_enforced(change, message) -> None:
    with pytest.raises(PayloadError, match=message):
        batch_completed(**change)


def test_a_diverging_update_is_recorded_not_rejected() -> None:
    assert math.isnan(batch_completed(policy_loss=math.nan, approx_kl=math.inf).policy_loss)


def test_console_line_shows_the_tables_console_fields() -> None:
    event = TelemetryEvent(
        TelemetryEventType.BATCH_COMPLETED, "run", batch_completed(approx_kl=0.01234), batch=3
    )
    sink = ConsoleSink(io.StringIO())
    line = sink.format(event)
    assert line is not None
    assert line.startswith("batch 3/0 | steps 4,096 | 1,234 sps | 4 eps | return 21.5 | min 9")
    assert "kl 0.0123 | clip 0.02 | ev 0.30 | lr 2.00e-03" in line
    none = batch_completed(
        episodes_finished=0,
        episode_return_mean=None,
        episode_return_min=None,
        episode_return_max=None,
        episode_length_mean=None,
    )
    line = sink.format(TelemetryEvent(TelemetryEventType.BATCH_COMPLETED, "run", none, batch=4))
    assert "0 eps | return - | min - | max -" in line
