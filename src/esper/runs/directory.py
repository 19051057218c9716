"""The run directory: where a run's telemetry and checkpoints live, and its rules.

A fresh run never writes into a directory that already holds a run unless
``overwrite`` is set; a resume needs the checkpoint it names. Errors name the
setting to change; the CLI shows its flag.

Checking and changing are two steps: ``check_run_dir`` refuses before anything
on disk changes, and ``claim_run_dir`` clears (``overwrite``) only once every
other check of the run has passed, so a refused run never costs the old one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from esper.config.schema import PPOConfig
from esper.runtime.errors import ConfigError
from esper.runtime.threads import alive

# The run directory's layout; the sinks are handed these paths.
TELEMETRY_FILENAME = "telemetry.jsonl"
TENSORBOARD_DIRNAME = "tensorboard"
VIDEOS_DIRNAME = "videos"  # videos/batch_K.mp4, written while training (--video-every)
# What else a run writes beside these: W&B's files and run id (--track), the
# tracebacks of a failure, and exports to their default name (esper export).
WANDB_NAMES = ("wandb", "wandb-run-id")
_ERROR_LOG_RE = re.compile(r"^error(\.rank\d+)?\.log$")
_BY_BATCH_RE = re.compile(r"^(?:batch|policy_batch)_(\d{6,})\.(?:pt|onnx|mp4)$")

_CHECKPOINT_RE = re.compile(r"^batch_(\d{6,})\.pt$")
# What checkpoint.save_checkpoint writes before its rename: ``.NAME.tmp-PID``.
_TEMPORARY_RE = re.compile(r"^\..+\.tmp-(\d+)$")
# The events that end an invocation; a start without one was killed (or is live:
# then its run lock refuses a second writer before any of this is read).
_ENDINGS = ("TRAINING_COMPLETED", "TRAINING_INTERRUPTED", "TRAINING_FAILED")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def telemetry_path(self) -> Path:
        return self.path / TELEMETRY_FILENAME

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIRNAME

    @property
    def videos_dir(self) -> Path:
        return self.path / VIDEOS_DIRNAME

    def written_after(self, batch: int) -> list[Path]:
        """What the run wrote for batches after ``batch``: checkpoints, videos and
        exports by their default names. A rewind discards them."""
        found = []
        for folder in (self.checkpoints_dir, self.videos_dir, self.path):
            if folder.is_dir():
                for entry in folder.iterdir():
                    match = _BY_BATCH_RE.match(entry.name)
                    if match and entry.is_file() and int(match.group(1)) > batch:
                        found.append(entry)
        return found

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_path(self, batch: int) -> Path:
        return self.checkpoints_dir / f"batch_{batch:06d}.pt"

    def checkpoints(self) -> dict[int, Path]:
        """Existing checkpoints by batch number, oldest first."""
        if not self.checkpoints_dir.is_dir():
            return {}
        found = {}
        for entry in self.checkpoints_dir.iterdir():
            match = _CHECKPOINT_RE.match(entry.name)
            if match and entry.is_file():
                found[int(match.group(1))] = entry
        return dict(sorted(found.items()))

    def prune(self, keep: int | None) -> list[Path]:
        """Delete all but the newest ``keep`` checkpoints; the newest always stays."""
        if keep is None:
            return []
        doomed = list(self.checkpoints().values())[: -max(keep, 1)]
        for path in doomed:
            path.unlink(missing_ok=True)
        return doomed

    def holds_a_run(self) -> bool:
        """A checkpoint, a completed batch on record, or a start that has not
        ended (a killed run). A start that failed or stopped before
        its first batch holds nothing: its retry needs no ``overwrite``."""
        return bool(self.checkpoints()) or self.record() not in ("empty", "no batch")

    def record(self) -> str:
        """What telemetry.jsonl says: ``empty`` (no file, no event), ``no batch``
        (every start ended before its first batch), ``running`` (a start without
        an end and no batch yet) or ``batches`` (a batch was completed)."""
        if not self.telemetry_path.is_file():
            return "empty"
        last = None
        with self.telemetry_path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    kind = json.loads(line).get("event_type")
                except (ValueError, AttributeError):
                    continue  # a partial line from a killed writer
                if kind == "BATCH_COMPLETED":
                    return "batches"
                last = kind if kind in (*_ENDINGS, "TRAINING_STARTED") else last
        if last is None:
            return "empty"
        return "running" if last == "TRAINING_STARTED" else "no batch"

    def stale_temporaries(self) -> list[Path]:
        """Half-written checkpoints (``.NAME.tmp-PID``) whose writer is gone: a
        SIGKILL during a save leaves one."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for entry in self.checkpoints_dir.iterdir():
            match = _TEMPORARY_RE.match(entry.name)
            if match and entry.is_file() and not alive(int(match.group(1))):
                found.append(entry)
        return found


def describe_checkpoints(run_dir: RunDir) -> str:
    batches = list(run_dir.checkpoints())
    if not batches:
        return f"no checkpoints in {run_dir.checkpoints_dir}"
    return "checkpoints exist for batch " + ", ".join(str(b) for b in batches)


def prepare_run_dir(config: PPOConfig) -> RunDir:
    """Check the run dir, then claim it (both steps at once: nothing to check between)."""
    run_dir = check_run_dir(config)
    claim_run_dir(config, run_dir)
    return run_dir


def check_run_dir(config: PPOConfig) -> RunDir:
    """Refuse a run dir that the fresh/resume rules, or the file system, forbid;
    changes nothing on disk."""
    run_dir = RunDir(config.resolved_run_dir())
    require_writable(run_dir)
    if config.start_batch == 0:
        if run_dir.holds_a_run() and not config.overwrite:
            latest = max(run_dir.checkpoints(), default=None)
            hint = (
                f"continue it with {{resume}} (newest checkpoint: batch {latest}), "
                if latest
                else ""
            )
            running = run_dir.record() == "running"
            # A live run holds the run lock (runs.lock): this one was killed.
            what = "a run that stopped without recording its end" if running else "a run"
            raise ConfigError(
                "run_dir",
                f"{run_dir.path} already holds {what}; {hint}choose another {{run_dir}}, "
                "or set {overwrite} to start afresh",
                mentions=("resume", "run_dir", "overwrite"),
            )
    else:
        checkpoints = run_dir.checkpoints()
        if config.start_batch not in checkpoints:
            raise ConfigError(
                "start_batch",
                f"no checkpoint for batch {config.start_batch} in {run_dir.path} "
                f"({describe_checkpoints(run_dir)})",
            )
        later = [b for b in checkpoints if b > config.start_batch]
        if later and not config.overwrite:
            raise ConfigError(
                "start_batch",
                f"{run_dir.path} has checkpoints after batch {config.start_batch} "
                f"({', '.join(map(str, later))}); resuming here would replace them: "
                f"resume from {max(later)} or set {{overwrite}}",
                mentions=("overwrite",),
            )
    return run_dir


def claim_run_dir(config: PPOConfig, run_dir: RunDir) -> None:
    """Make ``run_dir`` this run's, after every check has passed: clear what
    ``overwrite`` replaces, drop stale temporary files, create the layout."""
    try:
        if config.start_batch == 0 and config.overwrite:
            _clear(run_dir)
        if config.start_batch > 0:  # check_run_dir allowed it: overwrite is set
            for path in run_dir.written_after(config.start_batch):
                path.unlink()
        for path in run_dir.stale_temporaries():
            path.unlink(missing_ok=True)
        run_dir.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(run_dir, exc) from None


def require_writable(run_dir: RunDir) -> None:
    """One line for a run dir that cannot be written: under a file, on a
    read-only file system, without permission. Probes by creating (and
    removing) a temporary directory, since ``os.access`` says yes to root."""
    path = run_dir.path
    if path.exists() and not path.is_dir():
        raise ConfigError("run_dir", f"{path} exists and is not a directory")
    probe_in = path
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise ConfigError("run_dir", f"cannot create {path}: {probe_in} is a file, not a directory")
    targets = [probe_in] + [run_dir.checkpoints_dir] * run_dir.checkpoints_dir.is_dir()
    for target in targets:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".esper-probe-", dir=target))
        except OSError as exc:
            raise _unusable(run_dir, exc, target) from None


def _unusable(run_dir: RunDir, exc: OSError, where: Path | None = None) -> ConfigError:
    reason = exc.strerror or type(exc).__name__
    place = f" ({where} is not writable)" if where is not None and where != run_dir.path else ""
    return ConfigError(
        "run_dir",
        f"cannot write {run_dir.path}: {reason.lower()}{place}; choose another {{run_dir}}",
        mentions=("run_dir",),
    )


def _clear(run_dir: RunDir) -> None:
    """What --overwrite removes: everything the replaced run wrote (its checkpoints,
    telemetry, TensorBoard and W&B files, videos, error logs, exports by their
    default names), so nothing of it is synced or read later; nothing else."""
    wandb_dir = run_dir.path / WANDB_NAMES[0]
    for directory in (run_dir.checkpoints_dir, run_dir.tensorboard_dir, wandb_dir):
        if directory.is_dir():
            shutil.rmtree(directory)
    for path in run_dir.written_after(-1):
        path.unlink()
    with contextlib.suppress(OSError):
        run_dir.videos_dir.rmdir()  # empty now, unless the user put something there
    if run_dir.path.is_dir():
        for entry in run_dir.path.iterdir():
            if _ERROR_LOG_RE.match(entry.name) and entry.is_file():
                entry.unlink()
    run_dir.telemetry_path.unlink(missing_ok=True)
    (run_dir.path / WANDB_NAMES[1]).unlink(missing_ok=True)
