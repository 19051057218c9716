"""The run directory: where a run's telemetry and checkpoints live, and its rules.

A fresh run never writes into a directory that already holds a run unless
``overwrite`` is set; a resume needs the checkpoint it names. Errors name the
setting to change; the CLI shows its flag.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from esper.config import PPOConfig
from esper.errors import ConfigError

# The run directory's layout; the sinks are handed these paths.
TELEMETRY_FILENAME = "telemetry.jsonl"
TENSORBOARD_DIRNAME = "tensorboard"

_CHECKPOINT_RE = re.compile(r"^batch_(\d{6,})\.pt$")


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
        return bool(self.checkpoints()) or (
            self.telemetry_path.is_file() and self.telemetry_path.stat().st_size > 0
        )


def describe_checkpoints(run_dir: RunDir) -> str:
    batches = list(run_dir.checkpoints())
    if not batches:
        return f"no checkpoints in {run_dir.checkpoints_dir}"
    return "checkpoints exist for batch " + ", ".join(str(b) for b in batches)


def prepare_run_dir(config: PPOConfig) -> RunDir:
    """Check the run dir against fresh/resume rules; clear it if --overwrite says so."""
    run_dir = RunDir(config.resolved_run_dir())
    if run_dir.path.exists() and not run_dir.path.is_dir():
        raise ConfigError("run_dir", f"{run_dir.path} exists and is not a directory")
    if config.start_batch == 0:
        if run_dir.holds_a_run():
            if not config.overwrite:
                latest = max(run_dir.checkpoints(), default=None)
                hint = (
                    f"continue it with {{resume}} (newest checkpoint: batch {latest}), "
                    if latest
                    else ""
                )
                raise ConfigError(
                    "run_dir",
                    f"{run_dir.path} already holds a run; {hint}choose another {{run_dir}}, "
                    "or set {overwrite} to start afresh",
                    mentions=("resume", "run_dir", "overwrite"),
                )
            _clear(run_dir)
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
        for batch in later:
            checkpoints[batch].unlink()
    run_dir.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _clear(run_dir: RunDir) -> None:
    """What --overwrite removes: this run's checkpoints and telemetry, nothing else."""
    for directory in (run_dir.checkpoints_dir, run_dir.tensorboard_dir):
        if directory.is_dir():
            shutil.rmtree(directory)
    run_dir.telemetry_path.unlink(missing_ok=True)
