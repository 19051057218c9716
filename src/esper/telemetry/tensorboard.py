"""TensorBoard sink: RUN_DIR/tensorboard/, CleanRL's metric names, env steps on the x-axis.

The tags are the metrics table's (``metrics.TENSORBOARD_TAGS``): CleanRL's own
names, so the curves of the two trainers overlay in one TensorBoard.

``env_steps`` counts the steps before a resume, so a resumed run continues
the same axis. A resume also tells TensorBoard to hide whatever an earlier
invocation logged past the checkpoint (``purge_step``), so batches that are
run again after a crash or an ``--overwrite`` resume are not drawn twice.

The run's hyperparameters (every PPOConfig field) go in as a text summary,
a markdown table under the tag ``hyperparameters``, when training starts.

A ``video_every`` video goes in as its path, a text summary under ``videos/episode``
at the batch's env steps: TensorBoard plays no MP4, and its own ``add_video`` re-encodes
frames as a GIF through moviepy, a package esper does not need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.runtime.extras import import_extra
from esper.telemetry.events import (
    BatchCompletedPayload,
    EvaluationCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingStartedPayload,
    VideoSavedPayload,
)
from esper.telemetry.metrics import (
    EVAL_TENSORBOARD_TAGS,
    TENSORBOARD_TAGS,
    VIDEO_TAG,
    task_scalars,
)


def summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line error naming the extra."""
    import_extra("tensorboard", "tensorboard", "tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


HPARAMS_TAG = "hyperparameters"


def hyperparameter_table(config: dict[str, Any]) -> str:
    """The config as a two-column markdown table, which TensorBoard's text tab draws."""
    rows = "\n".join(f"| {key} | `{value!r}` |" for key, value in config.items())
    return f"| setting | value |\n| --- | --- |\n{rows}"


class TensorBoardSink:
    """A hub subscriber writing one set of scalars per BATCH_COMPLETED."""

    name = "tensorboard"

    def __init__(self, log_dir: Path, flush_secs: int = 10) -> None:
        self.log_dir = log_dir
        self._writer_class = summary_writer_class()  # fails before training, not during
        self._flush_secs = flush_secs
        self._writer: Any = None

    def handle(self, event: TelemetryEvent) -> None:
        data = event.data
        if event.event_type is TelemetryEventType.TRAINING_STARTED:
            assert isinstance(data, TrainingStartedPayload)
            # The checkpoint's own step stays; anything logged after it is superseded.
            writer = self._open(purge_step=data.env_steps + 1 if data.start_batch > 0 else None)
            writer.add_text(HPARAMS_TAG, hyperparameter_table(data.config), data.env_steps)
        elif event.event_type is TelemetryEventType.BATCH_COMPLETED:
            assert isinstance(data, BatchCompletedPayload)
            writer = self._writer or self._open(purge_step=None)
            for tag, name in TENSORBOARD_TAGS.items():
                value = getattr(data, name)
                if value is not None:  # episode scalars: only when an episode finished
                    writer.add_scalar(tag, value, data.env_steps)
            for tag, value in task_scalars(data).items():
                writer.add_scalar(tag, value, data.env_steps)
        elif (
            event.event_type is TelemetryEventType.EVALUATION_COMPLETED
            and data.env_steps is not None  # during training: at the evaluated batch's steps
        ):
            assert isinstance(data, EvaluationCompletedPayload)
            writer = self._writer or self._open(purge_step=None)
            for tag, name in EVAL_TENSORBOARD_TAGS.items():
                writer.add_scalar(tag, getattr(data, name), data.env_steps)
        elif event.event_type is TelemetryEventType.VIDEO_SAVED and data.env_steps is not None:
            assert isinstance(data, VideoSavedPayload)
            writer = self._writer or self._open(purge_step=None)
            text = f"`{data.path}` (batch {data.batch}, {data.frames} frames)"
            writer.add_text(VIDEO_TAG, text, data.env_steps)
        elif (
            event.event_type
            in (
                TelemetryEventType.TRAINING_COMPLETED,
                TelemetryEventType.TRAINING_INTERRUPTED,
                TelemetryEventType.TRAINING_FAILED,
            )
            and self._writer is not None
        ):
            self._writer.flush()

    def _open(self, purge_step: int | None) -> Any:
        if self._writer is not None:
            self._writer.close()
        self._writer = self._writer_class(
            log_dir=str(self.log_dir), purge_step=purge_step, flush_secs=self._flush_secs
        )
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
