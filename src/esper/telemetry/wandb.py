"""Weights & Biases sink (``esper ppo --track``): CleanRL's metric names, the config,
and one W&B run per esper run, continued across resumes.

The metric names are the metrics table's TensorBoard tags (``charts/SPS``,
``losses/approx_kl``, ...), CleanRL's own, logged against ``global_step`` (env
steps, counting those before a resume) so the curves overlay CleanRL's. The W&B
run id is kept in ``RUN_DIR/wandb-run-id``: a resume passes it back with
``resume="allow"`` and W&B appends to the same run. Offline (``--track offline``
or ``WANDB_MODE=offline``) needs no network; W&B's files go under
``RUN_DIR/wandb/`` and ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads them later.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from esper.runtime.extras import import_extra
from esper.telemetry.events import (
    BatchCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingStartedPayload,
)
from esper.telemetry.metrics import TENSORBOARD_TAGS, task_scalars

RUN_ID_FILE = "wandb-run-id"
STEP = "global_step"  # CleanRL's x-axis: env steps
MODES = ("online", "offline")
DEFAULT_PROJECT = "esper"  # unless WANDB_PROJECT says otherwise
# How the run ended, as W&B's exit code: only a failure marks the W&B run failed.
_EXIT_CODES = {
    TelemetryEventType.TRAINING_COMPLETED: 0,
    TelemetryEventType.TRAINING_INTERRUPTED: 0,
    TelemetryEventType.TRAINING_FAILED: 1,
}


class WandbSink:
    """A hub subscriber: ``wandb.init`` on TRAINING_STARTED, one ``log`` per batch."""

    name = "wandb"

    def __init__(self, run_dir: Path, mode: str | None = None) -> None:
        """``mode``: ``online``, ``offline``, or None (``WANDB_MODE``, else online)."""
        self.run_dir = Path(run_dir)
        self.mode = mode
        self._wandb = import_extra("wandb", "wandb", "track")  # fails before training
        self._run: Any = None
        self._exit_code = 0

    @property
    def run_id_path(self) -> Path:
        return self.run_dir / RUN_ID_FILE

    def handle(self, event: TelemetryEvent) -> None:
        data = event.data
        if event.event_type is TelemetryEventType.TRAINING_STARTED:
            assert isinstance(data, TrainingStartedPayload)
            self._start(data, event.group_id)
        elif event.event_type is TelemetryEventType.BATCH_COMPLETED and self._run is not None:
            assert isinstance(data, BatchCompletedPayload)
            metrics = {
                tag: getattr(data, name)
                for tag, name in TENSORBOARD_TAGS.items()
                if getattr(data, name) is not None  # episode scalars: only when one finished
            }
            self._run.log({STEP: data.env_steps, **metrics, **task_scalars(data)})
        elif event.event_type in _EXIT_CODES and self._run is not None:
            self._exit_code = _EXIT_CODES[event.event_type]
            self._run.summary["status"] = event.event_type.name.removeprefix("TRAINING_").lower()

    def _start(self, data: TrainingStartedPayload, group_id: str) -> None:
        """A fresh run starts a new W&B run; a resume continues the one on record."""
        wandb = self._wandb
        run_id = None
        if data.start_batch > 0 and self.run_id_path.is_file():
            run_id = self.run_id_path.read_text(encoding="utf-8").strip() or None
        run_id = run_id or uuid.uuid4().hex[:12]
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=self.run_dir.name,
            id=run_id,
            resume="allow",
            config={**data.config, "run_id": group_id},
            dir=str(self.run_dir),
            # read here, not by wandb: its settings are fixed at its first use in a process
            mode=self.mode or os.environ.get("WANDB_MODE") or None,
            settings=wandb.Settings(console="off", silent=True),
        )
        self._run.define_metric(STEP)
        self._run.define_metric("*", step_metric=STEP)
        self.run_id_path.write_text(run_id + "\n", encoding="utf-8")

    def close(self) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish(exit_code=self._exit_code)
