"""Typed telemetry: one enum of event names, one frozen payload per event.

Payloads validate themselves on construction, so an invalid value is a bug
that raises where it is emitted, not a wrong number on someone's screen. The
two payloads that carry numbers (TRAINING_STARTED, BATCH_COMPLETED) are made
from the metrics table, which declares each of their fields once.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any

from esper.telemetry.field import Absent, Field
from esper.telemetry.metrics import (
    BATCH_COMPLETED_FIELDS,
    EVALUATION_COMPLETED_FIELDS,
    TRAINING_STARTED_FIELDS,
)


class TelemetryEventType(StrEnum):
    TRAINING_STARTED = "TRAINING_STARTED"
    BATCH_COMPLETED = "BATCH_COMPLETED"
    CHECKPOINT_SAVED = "CHECKPOINT_SAVED"
    TRAINING_COMPLETED = "TRAINING_COMPLETED"
    TRAINING_INTERRUPTED = "TRAINING_INTERRUPTED"
    TRAINING_FAILED = "TRAINING_FAILED"
    SINK_FAILED = "SINK_FAILED"
    EVALUATION_COMPLETED = "EVALUATION_COMPLETED"
    VIDEO_SAVED = "VIDEO_SAVED"


class PayloadError(ValueError):
    """A payload field is out of its documented range: a bug in the emitter."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise PayloadError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_number(value: Any) -> bool:
    return value is None or _is_number(value)


def _validate(payload: Any, fields: tuple[Field, ...]) -> None:
    """Check ``payload`` against its rows of the metrics table (type, range, absence)."""
    for spec in fields:
        value = getattr(payload, spec.name)
        name = spec.name
        if value is None:
            _check(spec.absent is not Absent.NEVER, f"{name} must not be None")
            continue
        if spec.type is int:
            _check(_is_int(value), f"{name} must be an int")
        elif spec.type is float:
            _check(_is_number(value), f"{name} must be a number")
        elif spec.type is str:
            _check(isinstance(value, str) and bool(value), f"{name} must be a non-empty str")
            continue
        else:
            _check(isinstance(value, spec.type), f"{name} must be a {spec.type.__name__}")
            continue
        if not math.isfinite(value):
            # NaN passes where allowed, so a diverging run is visible, not hidden.
            _check(spec.nan_allowed, f"{name} must be finite (got {value})")
            continue
        if spec.low is not None:
            _check(value >= spec.low, f"{name} must be >= {spec.low:g} (got {value})")
        if spec.high is not None:
            _check(value <= spec.high, f"{name} must be <= {spec.high:g} (got {value})")


def _annotation(spec: Field) -> Any:
    """The payload field's type: ``dict`` rows hold ``dict[str, Any]``; ``None``
    is allowed where the table says the value may be absent."""
    base = dict[str, Any] if spec.type is dict else spec.type
    return base if spec.absent is Absent.NEVER else base | None


def _declare(spec: Field) -> tuple[Any, ...]:
    """``make_dataclass``'s entry for one row; a mutable default is copied per payload."""
    if spec.required:
        return (spec.name, _annotation(spec))
    if isinstance(spec.default, dict | list):
        made = field(default_factory=partial(copy.deepcopy, spec.default))
    else:
        made = field(default=spec.default)
    return (spec.name, _annotation(spec), made)


def payload_class(
    name: str, rows: tuple[Field, ...], doc: str, check: Callable[[Any], None] | None = None
) -> type:
    """A frozen dataclass with one field per row of the metrics table, in table
    order, that validates itself against the rows (then ``check``, for rules
    across fields) on construction. The table is the one declaration of the
    fields; the class is importable (and picklable) from this module by ``name``."""

    def __post_init__(self: Any) -> None:
        _validate(self, rows)
        if check is not None:
            check(self)

    namespace = {"__post_init__": __post_init__, "__doc__": doc, "__module__": __name__}
    return dataclasses.make_dataclass(
        name, [_declare(spec) for spec in rows], frozen=True, namespace=namespace
    )


def _check_training_started(payload: Any) -> None:
    counts = payload.env_device_counts
    _check(
        all(_is_int(n) and n >= 1 for n in counts.values())
        and (not counts or sum(counts.values()) == payload.n_envs),
        "env_device_counts must map devices to env counts summing to n_envs",
    )
    _check(
        payload.start_batch < payload.max_batches,
        f"start_batch must be in [0, max_batches) (got {payload.start_batch})",
    )


def _check_batch_completed(payload: Any) -> None:
    _check(
        all(isinstance(k, str) and _optional_number(v) for k, v in payload.task_statistics.items()),
        "task_statistics must map names to numbers or None",
    )
    episode_stats = [
        getattr(payload, f.name) for f in BATCH_COMPLETED_FIELDS if f.absent is Absent.NO_EPISODE
    ]
    if payload.episodes_finished == 0:
        _check(
            all(v is None for v in episode_stats),
            "episode stats must be None when no episode finished",
        )
    else:
        _check(
            all(v is not None for v in episode_stats),
            "episode stats required when episodes finished",
        )


TrainingStartedPayload = payload_class(
    "TrainingStartedPayload",
    TRAINING_STARTED_FIELDS,
    "What the run is: one field per row of ``metrics.TRAINING_STARTED_FIELDS``.",
    _check_training_started,
)
BatchCompletedPayload = payload_class(
    "BatchCompletedPayload",
    BATCH_COMPLETED_FIELDS,
    "How one batch went: one field per row of ``metrics.BATCH_COMPLETED_FIELDS``.",
    _check_batch_completed,
)


@dataclass(frozen=True)
class CheckpointSavedPayload:
    path: str
    batch: int
    env_steps: int
    bytes: int

    def __post_init__(self) -> None:
        _check(isinstance(self.path, str) and bool(self.path), "path must be a str")
        _check(_is_int(self.batch) and self.batch >= 0, "batch must be >= 0")
        _check(_is_int(self.env_steps) and self.env_steps >= 0, "env_steps must be >= 0")
        _check(_is_int(self.bytes) and self.bytes > 0, "bytes must be > 0")


@dataclass(frozen=True)
class VideoSavedPayload:
    """A video of the policy (``video_every``), written where ``path`` says, after
    ``env_steps`` (TensorBoard's and W&B's x-axis; None in a record written before
    videos went to them)."""

    path: str
    batch: int
    frames: int
    env_steps: int | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.path, str) and bool(self.path), "path must be a str")
        _check(_is_int(self.batch) and self.batch >= 0, "batch must be >= 0")
        _check(_is_int(self.frames) and self.frames > 0, "frames must be > 0")
        _check(
            self.env_steps is None or (_is_int(self.env_steps) and self.env_steps >= 0),
            "env_steps must be None or >= 0",
        )


@dataclass(frozen=True)
class TrainingCompletedPayload:
    final_batch: int
    env_steps: int
    total_seconds: float
    final_return_mean: float | None
    reason: str = ""  # why it ended before max_batches (an evaluation reached stop_at)

    def __post_init__(self) -> None:
        _check(isinstance(self.reason, str), "reason must be a str")
        _check(_is_int(self.final_batch) and self.final_batch >= 1, "final_batch must be >= 1")
        _check(_is_int(self.env_steps) and self.env_steps >= 0, "env_steps must be >= 0")
        _check(_is_number(self.total_seconds) and self.total_seconds >= 0, "total_seconds >= 0")
        _check(_optional_number(self.final_return_mean), "final_return_mean: number or None")


@dataclass(frozen=True)
class TrainingInterruptedPayload:
    resume_batch: int  # the batch a resume should start from (--start-episode)
    reason: str

    def __post_init__(self) -> None:
        _check(_is_int(self.resume_batch) and self.resume_batch >= 0, "resume_batch >= 0")
        _check(isinstance(self.reason, str) and bool(self.reason), "reason must be a str")


@dataclass(frozen=True)
class TrainingFailedPayload:
    reason: str
    error_type: str
    last_good_batch: int | None = None  # newest intact checkpoint, if any

    def __post_init__(self) -> None:
        _check(isinstance(self.reason, str) and bool(self.reason), "reason must be a str")
        _check(isinstance(self.error_type, str), "error_type must be a str")
        _check(
            self.last_good_batch is None or _is_int(self.last_good_batch),
            "last_good_batch must be an int or None",
        )


def _check_evaluation(payload: Any) -> None:
    _check(payload.return_min <= payload.return_max, "return_min must be <= return_max")
    best = payload.best_return_mean
    _check(best is None or best >= payload.return_mean, "best_return_mean must be >= return_mean")
    _check(
        all(isinstance(k, str) and _is_number(v) for k, v in payload.episode_statistics.items()),
        "episode_statistics must map names to numbers",
    )


EvaluationCompletedPayload = payload_class(
    "EvaluationCompletedPayload",
    EVALUATION_COMPLETED_FIELDS,
    "Complete episodes of one policy (``esper eval``, or the trainer's ``--eval-every``): "
    "one field per row of ``metrics.EVALUATION_COMPLETED_FIELDS``.",
    _check_evaluation,
)


@dataclass(frozen=True)
class SinkFailedPayload:
    """A telemetry subscriber raised: the other sinks record it (the hub emits this)."""

    sink: str
    error: str
    on_event: str  # the event type it failed on

    def __post_init__(self) -> None:
        _check(isinstance(self.sink, str) and bool(self.sink), "sink must be a str")
        _check(isinstance(self.error, str), "error must be a str")
        _check(isinstance(self.on_event, str), "on_event must be a str")


Payload = (
    TrainingStartedPayload
    | BatchCompletedPayload
    | CheckpointSavedPayload
    | TrainingCompletedPayload
    | TrainingInterruptedPayload
    | TrainingFailedPayload
    | SinkFailedPayload
    | EvaluationCompletedPayload
    | VideoSavedPayload
)

PAYLOAD_TYPES: dict[TelemetryEventType, type] = {
    TelemetryEventType.TRAINING_STARTED: TrainingStartedPayload,
    TelemetryEventType.BATCH_COMPLETED: BatchCompletedPayload,
    TelemetryEventType.CHECKPOINT_SAVED: CheckpointSavedPayload,
    TelemetryEventType.TRAINING_COMPLETED: TrainingCompletedPayload,
    TelemetryEventType.TRAINING_INTERRUPTED: TrainingInterruptedPayload,
    TelemetryEventType.TRAINING_FAILED: TrainingFailedPayload,
    TelemetryEventType.SINK_FAILED: SinkFailedPayload,
    TelemetryEventType.EVALUATION_COMPLETED: EvaluationCompletedPayload,
    TelemetryEventType.VIDEO_SAVED: VideoSavedPayload,
}


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _json_safe(value: Any) -> Any:
    """Non-finite floats become strings so every line stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _from_json_safe(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


@dataclass(frozen=True)
class TelemetryEvent:
    """One line of ``telemetry.jsonl``: the envelope around a typed payload."""

    event_type: TelemetryEventType
    group_id: str
    data: Payload
    message: str = ""
    batch: int | None = None
    timestamp: str = field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        expected = PAYLOAD_TYPES[TelemetryEventType(self.event_type)]
        _check(
            isinstance(self.data, expected),
            f"{self.event_type} needs a {expected.__name__}, got {type(self.data).__name__}",
        )
        _check(isinstance(self.group_id, str) and bool(self.group_id), "group_id must be a str")
        _check(self.batch is None or _is_int(self.batch), "batch must be an int or None")

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_type": str(self.event_type),
            "timestamp": self.timestamp,
            "group_id": self.group_id,
            "batch": self.batch,
            "message": self.message,
            "data": _json_safe(dataclasses.asdict(self.data)),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TelemetryEvent:
        event_type = TelemetryEventType(raw["event_type"])
        payload_type = PAYLOAD_TYPES[event_type]
        data = {k: _from_json_safe(v) for k, v in raw["data"].items()}
        return cls(
            event_type=event_type,
            group_id=raw["group_id"],
            data=payload_type(**data),
            message=raw.get("message", ""),
            batch=raw.get("batch"),
            timestamp=raw["timestamp"],
        )

    @classmethod
    def from_json(cls, line: str) -> TelemetryEvent:
        return cls.from_dict(json.loads(line))
