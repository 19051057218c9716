"""``SanctumAggregator``: telemetry events in, immutable snapshots out.

It is a hub subscriber (``handle``/``close``) and can also be fed from a file.
The trainer's thread calls ``handle`` once per event and holds the lock only
to update a few fields; the dashboard's thread calls ``snapshot`` whenever it
redraws. Facts are taken from the events that own them, so a stray
event cannot move the progress bar:
``max_batches`` only from TRAINING_STARTED, ``current_batch`` from
TRAINING_STARTED's ``start_batch`` and then BATCH_COMPLETED's ``batch``. An
event that contradicts them is not obeyed; it is logged as an anomaly.

A TRAINING_STARTED of the same run with ``start_batch`` K is a resume: what
was logged for batches after K is superseded (the rule of
``telemetry.jsonl.effective_history``), and the surviving batches' returns stay
on show, so attaching to a resumed run's file shows each batch once.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from esper.sanctum import payloads
from esper.sanctum.clock import Clock, parse_timestamp, utc_now
from esper.sanctum.health import THRESHOLDS, HealthWatch, assess, describe
from esper.sanctum.schema import (
    EvaluationStats,
    NotableEvent,
    NotableKind,
    PPOStats,
    ReturnStats,
    RunStatus,
    SanctumSnapshot,
    TaskStats,
)
from esper.sanctum.tail import JsonlTail
from esper.telemetry import events
from esper.telemetry.events import TelemetryEvent, TelemetryEventType
from esper.telemetry.jsonl import supersedes


class SanctumAggregator:
    """Keeps the current run view; a later TRAINING_STARTED (a resume) starts a new one."""

    name = "sanctum"

    def __init__(
        self, *, event_log_size: int = 10, history_size: int = 40, clock: Clock = utc_now
    ) -> None:
        self._lock = threading.Lock()
        self._version = 0  # counts changes, so a viewer can skip redrawing an unchanged view
        self._clock = clock  # "now", for the elapsed time and ETA of a running run
        self._history_size = history_size
        self._notable: deque[NotableEvent] = deque(maxlen=event_log_size)  # kept across views
        # This run's evaluations while training, kept across resumes, and best.pt's batch
        self._evaluations: list[EvaluationStats] = []
        self._best_batch: int | None = None
        self._handlers: dict[TelemetryEventType, Callable[[TelemetryEvent], None]] = {
            TelemetryEventType.TRAINING_STARTED: self._on_training_started,
            TelemetryEventType.BATCH_COMPLETED: self._on_batch_completed,
            TelemetryEventType.CHECKPOINT_SAVED: self._on_checkpoint_saved,
            TelemetryEventType.TRAINING_COMPLETED: self._on_training_completed,
            TelemetryEventType.TRAINING_INTERRUPTED: self._on_training_interrupted,
            TelemetryEventType.TRAINING_FAILED: self._on_training_failed,
            TelemetryEventType.EVALUATION_COMPLETED: self._on_evaluation_completed,
            TelemetryEventType.SINK_FAILED: self._on_sink_failed,
            TelemetryEventType.VIDEO_SAVED: self._on_video_saved,
        }
        self._new_view(SanctumSnapshot())

    @classmethod
    def from_file(cls, path: Path, clock: Clock = utc_now) -> SanctumAggregator:
        """An aggregator holding every complete event already in ``path``."""
        aggregator = cls(clock=clock)
        aggregator.feed(JsonlTail(path, on_problem=aggregator.record_anomaly).poll())
        return aggregator

    # --- input ---------------------------------------------------------------

    def handle(self, event: TelemetryEvent) -> None:
        with self._lock:
            self._version += 1
            handler = self._handlers.get(event.event_type)
            if handler is None:
                self._note(NotableKind.ANOMALY, f"no handler for {event.event_type}", event)
            elif event.event_type is TelemetryEventType.TRAINING_STARTED or self._accepts(event):
                handler(event)  # TRAINING_STARTED opens a run; every other event joins one

    def feed(self, stream: Iterable[TelemetryEvent]) -> None:
        for event in stream:
            self.handle(event)

    def record_anomaly(self, message: str) -> None:
        """Log a problem found outside an event (e.g. an unreadable telemetry line)."""
        with self._lock:
            self._version += 1
            self._note(NotableKind.ANOMALY, message)

    def close(self) -> None:
        """Nothing to release: the dashboard may keep reading the final snapshot."""

    # --- output --------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes whenever an event or anomaly has been taken in."""
        with self._lock:
            return self._version

    def snapshot(self) -> SanctumSnapshot:
        with self._lock:
            view = self._view
            elapsed = eta = None
            if self._started_at is not None:
                end = self._ended_at or self._clock()
                elapsed = max((end - self._started_at).total_seconds(), 0.0)
            done = view.current_batch - view.start_batch
            if (
                view.status is RunStatus.RUNNING
                and view.max_batches > 0
                and done > 0
                and self._started_at is not None
                and self._last_batch_at is not None
            ):
                per_batch = (self._last_batch_at - self._started_at).total_seconds() / done
                eta = max(per_batch, 0.0) * max(view.max_batches - view.current_batch, 0)
            return dataclasses.replace(
                view,
                elapsed_seconds=elapsed,
                eta_seconds=eta,
                events=tuple(reversed(self._notable)),
            )

    # --- handlers (called with the lock held) --------------------------------

    def _on_training_started(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.TrainingStartedPayload)
        previous = self._view
        previous_task_rows = list(self._task_rows)
        resumed = previous.group_id == event.group_id
        # Only a resume of the same run supersedes: another run's log stays whole.
        surviving = self._supersede(data.start_batch) if resumed else None
        self._new_view(payloads.started_view(event, data))
        if resumed:
            evaluation = self._surviving_evaluation(data.start_batch)
            self._view = dataclasses.replace(self._view, evaluation=evaluation)
        else:
            self._evaluations, self._best_batch = [], None
        if surviving:  # a resume: the surviving batches stay on show
            self._batch_returns = surviving
            self._view = dataclasses.replace(self._view, returns=self._returns_view())
        if resumed:
            kept = [row for row in previous_task_rows if not supersedes(data.start_batch, row[0])]
            self._task_rows.extend(kept)
            self._view = dataclasses.replace(self._view, task_stats=self._task_view())
        self._started_at = parse_timestamp(event.timestamp)
        if data.start_batch > 0:
            message = f"resumed at {data.start_batch}/{data.max_batches}"
            if resumed and previous.current_batch > data.start_batch:
                message += (
                    f"; batches {data.start_batch + 1}-{previous.current_batch} of the "
                    "earlier invocation superseded"
                )
            self._note(NotableKind.RESUMED, message, event)
        else:
            batches = "batch" if data.max_batches == 1 else "batches"
            self._note(NotableKind.STARTED, f"started: {data.max_batches} {batches}", event)

    def _on_batch_completed(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.BatchCompletedPayload)
        view = self._view
        batch = event.batch
        if batch is None:
            batch = view.current_batch + 1
            self._note(NotableKind.ANOMALY, f"batch number missing; counted as {batch}", event)
        elif batch != view.current_batch + 1:
            self._note(
                NotableKind.ANOMALY, f"batch {batch} came after batch {view.current_batch}", event
            )
        if 0 < view.max_batches < batch:
            self._note(
                NotableKind.ANOMALY,
                f"batch {batch} is past max_batches {view.max_batches}; "
                "max_batches kept from TRAINING_STARTED",
                event,
            )
        ppo = payloads.ppo_stats(data)
        self._warn_on_health(ppo, event)
        self._view = dataclasses.replace(
            view,
            current_batch=batch,
            env_steps=data.env_steps,
            status=RunStatus.RUNNING,
            ppo=ppo,
            returns=self._returns(view.returns, data, batch),
            throughput=payloads.throughput(data),
        )
        if data.task_statistics:
            self._task_rows.append((batch, dict(data.task_statistics)))
            self._view = dataclasses.replace(self._view, task_stats=self._task_view())
        self._last_batch_at = parse_timestamp(event.timestamp)

    def _on_checkpoint_saved(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.CheckpointSavedPayload)
        name = Path(data.path).name
        self._note(NotableKind.CHECKPOINT, f"saved {name} ({data.bytes / 1e6:.2f} MB)", event)

    def _on_video_saved(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.VideoSavedPayload)
        self._note(NotableKind.VIDEO, f"saved {Path(data.path).name} ({data.frames} frames)", event)

    def _on_training_completed(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.TrainingCompletedPayload)
        view = self._view
        early = data.reason  # ended on purpose before max_batches (stop_at reached)
        if view.max_batches > 0 and data.final_batch != view.max_batches and not early:
            self._note(
                NotableKind.ANOMALY,
                f"completed at batch {data.final_batch}, not at max_batches "
                f"{view.max_batches}; max_batches kept from TRAINING_STARTED",
                event,
            )
        self._finish(event, RunStatus.COMPLETED, early or None, env_steps=data.env_steps)
        total = f"{view.current_batch}/{view.max_batches}" if view.max_batches > 0 else "-"
        self._note(
            NotableKind.COMPLETED, f"completed at {total}" + (f": {early}" if early else ""), event
        )

    def _on_training_interrupted(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.TrainingInterruptedPayload)
        reason = f"{data.reason}; resume from batch {data.resume_batch}"
        self._finish(event, RunStatus.INTERRUPTED, reason)
        self._note(NotableKind.INTERRUPTED, reason, event)

    def _on_training_failed(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.TrainingFailedPayload)
        reason = data.reason
        if data.last_good_batch is not None:
            reason += f" (last checkpoint: batch {data.last_good_batch})"
        self._finish(event, RunStatus.FAILED, reason)
        self._note(NotableKind.FAILED, reason, event)

    def _on_evaluation_completed(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.EvaluationCompletedPayload)
        if data.during_training:
            best = self._view.evaluation.best_return_mean
            if best is None or data.return_mean > best:  # the trainer's rule for best.pt
                self._best_batch = data.checkpoint_batch
            evaluation = payloads.evaluation_stats(data)
            self._evaluations.append(evaluation)
            self._view = dataclasses.replace(self._view, evaluation=evaluation)
            self._note(NotableKind.EVALUATION, event.message or "evaluation", event)
            return
        self._note(NotableKind.EVALUATION, payloads.evaluation_message(data), event)

    def _on_sink_failed(self, event: TelemetryEvent) -> None:
        data = event.data
        assert isinstance(data, events.SinkFailedPayload)
        self._note(
            NotableKind.WARNING,
            f"telemetry sink {data.sink} failed on {data.on_event}: {data.error}",
            event,
        )

    # --- helpers (lock held) -------------------------------------------------

    def _new_view(self, view: SanctumSnapshot) -> None:
        self._view = view
        self._batch_returns: deque[ReturnStats] = deque(maxlen=self._history_size)
        # (batch, task statistics) of the recent batches that reported any
        self._task_rows: deque[tuple[int, dict[str, float | None]]] = deque(
            maxlen=self._history_size
        )
        self._health = HealthWatch()
        self._started_at: datetime | None = None
        self._last_batch_at: datetime | None = None
        self._ended_at: datetime | None = None

    def _accepts(self, event: TelemetryEvent) -> bool:
        """Whether ``event`` belongs to the run on show (adopting it if none is)."""
        current = self._view.group_id
        if current is None:
            self._note(NotableKind.ANOMALY, f"{event.event_type} before TRAINING_STARTED", event)
            self._view = dataclasses.replace(self._view, group_id=event.group_id)
            return True
        if event.group_id != current:
            self._note(
                NotableKind.ANOMALY,
                f"{event.event_type} of run {event.group_id} ignored (showing {current})",
                event,
            )
            return False
        return True

    def _finish(
        self,
        event: TelemetryEvent,
        status: RunStatus,
        reason: str | None,
        env_steps: int | None = None,
    ) -> None:
        changes: dict[str, object] = {"status": status, "reason": reason}
        if env_steps is not None:
            changes["env_steps"] = env_steps
        self._view = dataclasses.replace(self._view, **changes)  # type: ignore[arg-type]
        self._ended_at = parse_timestamp(event.timestamp)

    def _returns(
        self, previous: ReturnStats, data: events.BatchCompletedPayload, batch: int
    ) -> ReturnStats:
        """This batch's episode returns, or the previous ones when none finished."""
        if data.episodes_finished == 0 or data.episode_return_mean is None:
            return previous
        self._batch_returns.append(payloads.batch_returns(data, batch))
        return self._returns_view()

    def _returns_view(self) -> ReturnStats:
        """The latest batch's returns, with the recent means for the sparkline."""
        history = tuple(r.mean for r in self._batch_returns if r.mean is not None)
        return dataclasses.replace(self._batch_returns[-1], history=history)

    def _task_view(self) -> TaskStats:
        return payloads.task_view(self._view.task_stats.facts, self._task_rows)

    def _supersede(self, start_batch: int) -> deque[ReturnStats]:
        """Drop what a resume from ``start_batch`` supersedes; return the surviving returns.

        The same rule as ``telemetry.jsonl.effective_history``: whatever an
        earlier invocation logged for a batch after ``start_batch`` is replaced.
        """
        kept = [n for n in self._notable if not supersedes(start_batch, n.batch)]
        self._notable.clear()
        self._notable.extend(kept)
        returns = [r for r in self._batch_returns if not supersedes(start_batch, r.batch)]
        return deque(returns, maxlen=self._history_size)

    def _surviving_evaluation(self, start_batch: int) -> EvaluationStats:
        """What a resume from ``start_batch`` leaves on show: the latest evaluation of
        a surviving batch, and the best while best.pt survives (a rewind drops one
        saved after ``start_batch``, as ``training.evaluation.forget_later_best`` does)."""
        self._evaluations = [e for e in self._evaluations if not supersedes(start_batch, e.batch)]
        if self._best_batch is not None and supersedes(start_batch, self._best_batch):
            self._best_batch = None
        if not self._evaluations:
            return EvaluationStats()
        latest = self._evaluations[-1]
        if self._best_batch is None:
            return dataclasses.replace(latest, best_return_mean=None)
        return latest

    def _warn_on_health(self, ppo: PPOStats, event: TelemetryEvent) -> None:
        """Log a warning when a metric's health changes for the worse, not on every batch."""
        for metric in THRESHOLDS:
            value = getattr(ppo, metric)
            if self._health.worsened(metric, assess(metric, value)):
                self._note(NotableKind.WARNING, describe(metric, value), event)

    def _note(self, kind: NotableKind, message: str, event: TelemetryEvent | None = None) -> None:
        if event is None:
            self._notable.append(NotableEvent(kind, message, None, self._clock().isoformat()))
        else:
            self._notable.append(NotableEvent(kind, message, event.batch, event.timestamp))
