"""Typed telemetry events, the hub that fans them out, and the sinks."""

from esper.telemetry.events import (
    BatchCompletedPayload,
    CheckpointSavedPayload,
    EvaluationCompletedPayload,
    PayloadError,
    TelemetryEvent,
    TelemetryEventType,
    TrainingCompletedPayload,
    TrainingFailedPayload,
    TrainingInterruptedPayload,
    TrainingStartedPayload,
    VideoSavedPayload,
)
from esper.telemetry.hub import TelemetryHub

__all__ = [
    "BatchCompletedPayload",
    "CheckpointSavedPayload",
    "EvaluationCompletedPayload",
    "PayloadError",
    "TelemetryEvent",
    "TelemetryEventType",
    "TelemetryHub",
    "TrainingCompletedPayload",
    "TrainingFailedPayload",
    "TrainingInterruptedPayload",
    "TrainingStartedPayload",
    "VideoSavedPayload",
]
