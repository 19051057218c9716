"""Weights & Biases sink (``esper ppo --track``): CleanRL's metric names, the config,
and one W&B run per esper run, continued across resumes.

The metric names are the metrics table's TensorBoard tags (``charts/SPS``,
``losses/approx_kl``, ...), CleanRL's own, logged against ``global_step`` (env
steps, counting those before a resume) so the curves overlay CleanRL's. The W&B
run id is kept in ``RUN_DIR/wandb-run-id``: a resume passes it back with
``resume="allow"`` and W&B appends to the same run. Offline (``--track offline``
or ``WANDB_MODE=offline``) needs no network; W&B's files go under
``RUN_DIR/wandb/`` and ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads them later.

W&B cannot resume a run offline: each invocation writes its own ``offline-run-*``
folder, whose own step (``_step``) would start again at 0. Offline, every row is
therefore logged at ``step=global_step``, so the folders of one run (the same id)
follow each other, and ``wandb sync --id ID RUN_DIR/wandb/offline-run-*`` uploads
them, in order, as the one run (``sync_command``). Online, W&B's own step goes on.

A ``video_every`` video is logged as a ``wandb.Video`` of its MP4 file (``videos/episode``).
"""

from __future__ import annotations

import netrc
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from esper.runtime.errors import ConfigError
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
        # read here, not by wandb: its settings are fixed at its first use in a process
        self.offline = (mode or os.environ.get("WANDB_MODE")) in ("offline", "dryrun")
        if (mode or os.environ.get("WANDB_MODE") or "online") == "online" and not logged_in():
            raise ConfigError(
                "track",
                "W&B online needs a login and none was found (WANDB_API_KEY, ~/.netrc): "
                "run `wandb login`, or log offline with {track} offline and upload later "
                "with `wandb sync`",
                mentions=("track",),
            )
        self._run: Any = None
        self._exit_code = 0

    @property
    def run_id_path(self) -> Path:
        return self.run_dir / RUN_ID_FILE

    def resume_note(self, start_batch: int) -> str | None:
        """Offline, a resume cannot continue the W&B run: what to run to upload its
        folders as one run (None when nothing needs saying)."""
        if not (self.offline and start_batch and self.run_id_path.is_file()):
            return None
        run_id = self.run_id_path.read_text(encoding="utf-8").strip()
        return (
            f"W&B cannot resume a run offline: this invocation logs W&B run {run_id} "
            f"to a folder of its own, its steps continuing global_step; upload the "
            f"run's folders as one run with `{sync_command(self.run_dir, run_id)}`"
        )

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
            self._log(data.env_steps, {**metrics, **task_scalars(data)})
        elif (
            event.event_type
            in (TelemetryEventType.EVALUATION_COMPLETED, TelemetryEventType.VIDEO_SAVED)
            and self._run is not None
            and data.env_steps is not None  # during training: at the batch's steps
        ):
            self._log_watched(data)
        elif event.event_type in _EXIT_CODES and self._run is not None:
            self._exit_code = _EXIT_CODES[event.event_type]
            self._run.summary["status"] = event.event_type.name.removeprefix("TRAINING_").lower()

    def _log_watched(self, data: EvaluationCompletedPayload | VideoSavedPayload) -> None:
        """An evaluation's numbers (eval/...), or a video of the policy."""
        assert data.env_steps is not None
        if isinstance(data, VideoSavedPayload):
            self._log(data.env_steps, {VIDEO_TAG: self._wandb.Video(data.path, format="mp4")})
        else:
            tags = EVAL_TENSORBOARD_TAGS.items()
            self._log(data.env_steps, {tag: getattr(data, n) for tag, n in tags})

    def _log(self, env_steps: int, row: dict[str, Any]) -> None:
        """One row at ``env_steps``; offline, W&B's own step is the same number."""
        self._run.log({STEP: env_steps, **row}, step=env_steps if self.offline else None)

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
            mode="offline" if self.offline else self.mode or os.environ.get("WANDB_MODE") or None,
            settings=wandb.Settings(console="off", silent=True),
        )
        self._run.define_metric(STEP)
        self._run.define_metric("*", step_metric=STEP)
        self.run_id_path.write_text(run_id + "\n", encoding="utf-8")

    def close(self) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish(exit_code=self._exit_code)


def sync_command(run_dir: Path, run_id: str) -> str:
    """The command that uploads every offline folder of one W&B run, in order."""
    return f"wandb sync --id {run_id} {Path(run_dir) / 'wandb'}/offline-run-*-{run_id}"


def logged_in() -> bool:
    """Whether W&B has an API key to use: WANDB_API_KEY, or the netrc entry that
    ``wandb login`` writes for its host. Read without the network, before training,
    so a missing login is refused at once, not after the run (exit 3)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False
