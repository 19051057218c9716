"""A rich progress bar over batches, for a terminal without the dashboard.

``esper ppo --no-sanctum`` in a terminal shows this (SPS and the latest mean
return beside the bar), under the console's line saying what trains (task,
device, envs); outside a terminal the plain ConsoleSink lines are used.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from esper.telemetry.console import ConsoleSink
from esper.telemetry.events import (
    BatchCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingStartedPayload,
)


class ProgressSink:
    name = "progress"

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sps]} sps"),
            TextColumn("return {task.fields[ret]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._lines = ConsoleSink()  # the words for non-batch events
        self._task = None

    def handle(self, event: TelemetryEvent) -> None:
        data = event.data
        if event.event_type is not TelemetryEventType.BATCH_COMPLETED:
            line = self._lines.format(event)  # the bar stands for the batch lines
            if line:
                self._progress.console.print(line, highlight=False, markup=False)
        if event.event_type is TelemetryEventType.TRAINING_STARTED:
            assert isinstance(data, TrainingStartedPayload)
            if self._task is None:
                self._progress.start()
            else:  # a second run in one process: a fresh bar
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(
                f"{data.task} batches",
                total=data.max_batches,
                completed=data.start_batch,
                sps="-",
                ret="-",
            )
        elif event.event_type is TelemetryEventType.BATCH_COMPLETED and self._task is not None:
            assert isinstance(data, BatchCompletedPayload)
            ret = data.episode_return_mean
            self._progress.update(
                self._task,
                completed=event.batch,
                sps=f"{data.sps:,.0f}",
                ret="-" if ret is None else f"{ret:.1f}",
            )

    def close(self) -> None:
        if self._task is not None:
            self._progress.stop()
