"""Plain per-batch lines for when no dashboard is shown (pipes, CI, --no-sanctum).

A batch's line holds the fields the metrics table gives a console format.
"""

from __future__ import annotations

import sys
from typing import TextIO

from esper.telemetry import events
from esper.telemetry.events import TelemetryEvent, TelemetryEventType
from esper.telemetry.metrics import console_parts


class ConsoleSink:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._max_batches = 0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def handle(self, event: TelemetryEvent) -> None:
        line = self.format(event)
        if line is not None:
            print(line, file=self.stream, flush=True)

    def format(self, event: TelemetryEvent) -> str | None:
        """The event's console line, or None for events the console leaves out."""
        data = event.data
        kind = event.event_type
        if kind is TelemetryEventType.TRAINING_STARTED:
            assert isinstance(data, events.TrainingStartedPayload)
            self._max_batches = data.max_batches
            return (
                f"esper: {data.task} on {data.device}: {data.n_envs} envs x "
                f"{data.max_epochs} steps per batch, "
                + (
                    f"{data.n_agents} agents each ({data.critic} critic), "
                    if data.n_agents > 1
                    else ""
                )
                + f"batches {data.start_batch + 1}"
                f"..{data.max_batches} ({data.max_batches * data.n_envs * data.max_epochs:,} "
                f"env steps), {policy_kind(data.config)} policy of {data.policy_params:,} "
                f"parameters, seed {data.seed}"
            )
        if kind is TelemetryEventType.BATCH_COMPLETED:
            assert isinstance(data, events.BatchCompletedPayload)
            parts = [f"batch {event.batch}/{self._max_batches}", *console_parts(data)]
            return " | ".join(parts)
        if kind is TelemetryEventType.CHECKPOINT_SAVED:
            assert isinstance(data, events.CheckpointSavedPayload)
            return f"checkpoint: {data.path}"
        if kind is TelemetryEventType.VIDEO_SAVED:
            assert isinstance(data, events.VideoSavedPayload)
            return f"video: {data.path} ({data.frames} frames)"
        if kind is TelemetryEventType.TRAINING_INTERRUPTED:
            assert isinstance(data, events.TrainingInterruptedPayload)
            return f"interrupted: {data.reason} (resume from batch {data.resume_batch})"
        if kind is TelemetryEventType.TRAINING_FAILED:
            assert isinstance(data, events.TrainingFailedPayload)
            return f"failed: {data.reason}"
        if kind is TelemetryEventType.EVALUATION_COMPLETED:
            assert isinstance(data, events.EvaluationCompletedPayload)
            mode = "deterministic" if data.deterministic else "stochastic"
            return (
                f"evaluation of batch {data.checkpoint_batch}: return {data.return_mean:.1f} "
                f"± {data.return_std:.1f} [{data.return_min:.0f}, {data.return_max:.0f}], "
                f"length {data.length_mean:.1f} over {data.episodes} {mode} episodes, "
                f"seed {data.seed}"
            )
        return event.message or None

    def close(self) -> None:
        pass


def policy_kind(config: dict) -> str:
    """The network a run's config builds, in a word: ``mlp``, ``cnn``, ``mlp+lstm``
    (a setting older than the run has its default then)."""
    encoder = str(config.get("encoder", "mlp"))
    core = str(config.get("recurrent", "none"))
    return encoder if core == "none" else f"{encoder}+{core}"
