"""Telemetry events written by hand, as the trainer would emit them, for Sanctum tests."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from esper.telemetry.events import (
    BatchCompletedPayload,
    CheckpointSavedPayload,
    EvaluationCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingCompletedPayload,
    TrainingFailedPayload,
    TrainingInterruptedPayload,
    TrainingStartedPayload,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
RUN = "cartpole-test0001"


class Events:
    """Builds events of one run; each event is stamped ``step_seconds`` after the last."""

    def __init__(self, group_id: str = RUN, step_seconds: float = 2.0) -> None:
        self.group_id = group_id
        self.step_seconds = step_seconds
        self.t0 = T0  # the first event's timestamp
        self.now = T0

    def _event(
        self, kind: TelemetryEventType, data: Any, batch: int | None, group_id: str | None
    ) -> TelemetryEvent:
        event = TelemetryEvent(
            event_type=kind,
            group_id=group_id or self.group_id,
            data=data,
            batch=batch,
            timestamp=self.now.isoformat(),
        )
        self.now += timedelta(seconds=self.step_seconds)
        return event

    def started(
        self,
        max_batches: int = 100,
        start_batch: int = 0,
        group_id: str | None = None,
        **changes: Any,
    ) -> TelemetryEvent:
        fields: dict[str, Any] = {
            "n_envs": 8,
            "max_epochs": 16,
            "max_batches": max_batches,
            "start_batch": start_batch,
            "task": "cartpole",
            "device": "cpu",
            "seed": 7,
            "policy_params": 9155,
            "env_steps": start_batch * 128,
        }
        data = TrainingStartedPayload(**(fields | changes))
        return self._event(TelemetryEventType.TRAINING_STARTED, data, start_batch, group_id)

    def batch(
        self, batch: int | None, group_id: str | None = None, **fields: Any
    ) -> TelemetryEvent:
        number = batch if batch is not None else 1
        values: dict[str, Any] = {
            "env_steps": number * 128,
            "sps": 640.0,
            "batch_seconds": 0.2,
            "episodes_finished": 4,
            "episode_return_mean": 10.0 + number,
            "episode_return_min": 5.0,
            "episode_return_max": 20.0 + number,
            "episode_length_mean": 10.0 + number,
            "policy_loss": -0.01,
            "value_loss": 19.0,
            "entropy": 0.68,
            "approx_kl": 0.008,
            "clip_fraction": 0.12,
            "explained_variance": 0.4,
            "learning_rate": 2.5e-4,
            "grad_norm": 1.2,
            "rollout_seconds": 0.03,
            "update_seconds": 0.16,
        }
        if fields.get("episodes_finished") == 0:
            for name in ("return_mean", "return_min", "return_max", "length_mean"):
                values[f"episode_{name}"] = None
        values.update(fields)
        data = BatchCompletedPayload(**values)
        return self._event(TelemetryEventType.BATCH_COMPLETED, data, batch, group_id)

    def checkpoint(self, batch: int) -> TelemetryEvent:
        data = CheckpointSavedPayload(
            path=f"/runs/x/checkpoints/batch_{batch:06d}.pt",
            batch=batch,
            env_steps=batch * 128,
            bytes=150_000,
        )
        return self._event(TelemetryEventType.CHECKPOINT_SAVED, data, batch, None)

    def completed(self, final_batch: int) -> TelemetryEvent:
        data = TrainingCompletedPayload(
            final_batch=final_batch,
            env_steps=final_batch * 128,
            total_seconds=1.0,
            final_return_mean=12.0,
        )
        return self._event(TelemetryEventType.TRAINING_COMPLETED, data, final_batch, None)

    def interrupted(self, batch: int, reason: str = "SIGINT received") -> TelemetryEvent:
        data = TrainingInterruptedPayload(resume_batch=batch, reason=reason)
        return self._event(TelemetryEventType.TRAINING_INTERRUPTED, data, batch, None)

    def failed(self, batch: int, reason: str, last_good: int | None = None) -> TelemetryEvent:
        data = TrainingFailedPayload(
            reason=reason, error_type="NonFiniteError", last_good_batch=last_good
        )
        return self._event(TelemetryEventType.TRAINING_FAILED, data, batch, None)

    def evaluated(
        self, checkpoint_batch: int, return_mean: float = 187.5, best: float | None = None
    ) -> TelemetryEvent:
        """``esper eval`` of a checkpoint; with ``best``, an evaluation while training."""
        data = EvaluationCompletedPayload(
            checkpoint_batch=checkpoint_batch,
            episodes=10,
            deterministic=True,
            return_mean=return_mean,
            return_std=12.25,
            return_min=return_mean - 27.5,
            return_max=return_mean + 12.5,
            length_mean=return_mean,
            seed=1,
            during_training=best is not None,
            best_return_mean=best,
        )
        return self._event(TelemetryEventType.EVALUATION_COMPLETED, data, checkpoint_batch, None)

    def run(self, max_batches: int, batches: int) -> list[TelemetryEvent]:
        """A fresh run: TRAINING_STARTED then ``batches`` BATCH_COMPLETED."""
        return [self.started(max_batches)] + [self.batch(b) for b in range(1, batches + 1)]


@pytest.fixture
def events() -> Events:
    return Events()


def render_text(renderable: Any, width: int = 100) -> str:
    """What a user would see: the renderable printed on a ``width``-column console."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor")
    console.print(renderable)
    return console.export_text()


@pytest.fixture
def render() -> Callable[..., str]:
    return render_text
