"""One run's learning curves, read from its telemetry.jsonl: what ``esper plot``
draws and ``esper.runs.seed_groups`` groups by seed.

A run that was resumed has several TRAINING_STARTED events in one file; it is
read as one run, because ``env_steps`` counts the steps before a resume, and
each batch is kept as the surviving run saw it (the file's effective history).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.runs.directory import RunDir
from esper.runtime.errors import ConfigError
from esper.telemetry.events import (
    BatchCompletedPayload,
    EvaluationCompletedPayload,
    TelemetryEventType,
    TrainingStartedPayload,
)
from esper.telemetry.jsonl import effective_history, read_events


@dataclass
class RunCurves:
    """One run's per-batch series, in batch order, ready to draw."""

    label: str
    task: str
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    batches: dict[int, BatchCompletedPayload] = field(default_factory=dict)
    resumes: list[int] = field(default_factory=list)  # env steps where a resume started
    evaluations: list[EvaluationCompletedPayload] = field(default_factory=list)
    n_agents: int = 1  # agents per copy: its returns are the team's when > 1

    @property
    def env_steps(self) -> list[int]:
        return [b.env_steps for b in self.batches.values()]

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """``(env_steps, values)`` of a BATCH_COMPLETED field, skipping missing values;
        ``task_statistics.NAME`` is one of the task's statistics."""
        points = [(b.env_steps, _field(b, name)) for b in self.batches.values()]
        kept = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
        return [x for x, _ in kept], [y for _, y in kept]

    def task_statistic_names(self) -> list[str]:
        """The task statistics this run reported, first seen first."""
        names: dict[str, None] = {}
        for b in self.batches.values():
            names.update(dict.fromkeys(b.task_statistics))
        return list(names)

    def evaluation_points(self) -> list[tuple[int, EvaluationCompletedPayload]]:
        """Evaluations placed at their batch's env steps (when that batch is known, or
        the evaluation says: evaluations while training do)."""
        points = []
        for e in self.evaluations:
            if e.checkpoint_batch in self.batches:
                points.append((self.batches[e.checkpoint_batch].env_steps, e))
            elif e.env_steps is not None:
                points.append((e.env_steps, e))
        return points


def read_curves(run_dir: Path, label: str | None = None) -> RunCurves:
    """A run's curves from RUN_DIR/telemetry.jsonl."""
    path = RunDir(run_dir).telemetry_path
    if not path.is_file():
        raise ConfigError("RUN_DIR", f"no telemetry in {run_dir} ({path} does not exist)")
    curves = RunCurves(label=label or run_name(run_dir), task="")
    for event in effective_history(read_events(path)):
        data = event.data
        if isinstance(data, TrainingStartedPayload):
            curves.task = curves.task or data.task
            if curves.seed is None:
                curves.seed, curves.config = data.seed, dict(data.config)
                curves.n_agents = data.n_agents
            if data.start_batch > 0:
                curves.resumes.append(data.env_steps)
        elif isinstance(data, BatchCompletedPayload) and event.batch is not None:
            curves.batches[event.batch] = data
        elif event.event_type is TelemetryEventType.EVALUATION_COMPLETED:
            assert isinstance(data, EvaluationCompletedPayload)
            curves.evaluations.append(data)
    if not curves.batches:
        raise ConfigError("RUN_DIR", f"{path} holds no completed batch yet")
    curves.batches = dict(sorted(curves.batches.items()))
    return curves


def expand_run_dirs(paths: list[Path]) -> list[Path]:
    """Each path as given, except a dir without telemetry.jsonl whose subdirs hold
    runs (an ``esper seeds`` parent), or whose subdirs' subdirs do (an ``esper
    tune`` dir: TUNE_DIR/trials/trial-N): it stands for those runs."""
    expanded: list[Path] = []
    for path in paths:
        runs = _runs_below(path)
        if not runs and path.is_dir() and not _is_run(path):
            runs = [run for child in sorted(path.iterdir()) for run in _runs_below(child)]
        expanded += runs or [path]
    return expanded


def _is_run(path: Path) -> bool:
    return RunDir(path).telemetry_path.is_file()


def _runs_below(path: Path) -> list[Path]:
    """The runs directly inside ``path`` (none when ``path`` is itself a run)."""
    if _is_run(path) or not path.is_dir():
        return []
    return [child for child in sorted(path.iterdir()) if _is_run(child)]


def run_name(run_dir: Path) -> str:
    """A run's default label: its directory's name."""
    return run_dir.name or run_dir.resolve().name


TASK_STATISTIC = "task_statistics."  # the prefix of a task statistic's series name


def _field(batch: BatchCompletedPayload, name: str) -> float | None:
    if name.startswith(TASK_STATISTIC):
        return batch.task_statistics.get(name.removeprefix(TASK_STATISTIC))
    return getattr(batch, name)
