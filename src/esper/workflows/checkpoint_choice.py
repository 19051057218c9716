"""Which checkpoint of a run to load: a batch, the newest, or ``best.pt``.

Kept apart from rebuilding the policy (``esper.workflows.inference``) because
choosing is about the run directory and its files, and every wrong choice is
one line naming what to give instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.runs.directory import RunDir, describe_checkpoints
from esper.runtime.errors import ConfigError
from esper.training.checkpoint import BEST_FILENAME, CheckpointError, load_checkpoint


def choose_checkpoint(run_dir: RunDir, checkpoint: int | None) -> int:
    """The batch to load: ``checkpoint``, or the newest; one-line errors otherwise."""
    if run_dir.path.is_file():
        raise ConfigError("RUN_DIR", f"{run_dir.path} is a file; {_run_dir_of(run_dir.path)}")
    if not run_dir.path.is_dir():
        raise ConfigError("RUN_DIR", f"{run_dir.path} is not a run directory (it does not exist)")
    checkpoints = run_dir.checkpoints()
    if not checkpoints:
        raise ConfigError(
            "RUN_DIR",
            f"no checkpoints in {run_dir.checkpoints_dir}; train first with "
            f"esper ppo --run-dir {run_dir.path}",
        )
    if checkpoint is None:
        return max(checkpoints)
    if checkpoint not in checkpoints:
        raise ConfigError(
            "checkpoint",
            f"no checkpoint for batch {checkpoint} in {run_dir.path} "
            f"({describe_checkpoints(run_dir)})",
        )
    return checkpoint


def _run_dir_of(path: Path) -> str:
    """What to give instead of a file: its run directory, with the batch of a checkpoint."""
    batch = path.name.removeprefix("batch_").removesuffix(".pt")
    if path.parent.name == "checkpoints" and batch.isdigit():
        return f"give its run directory: {path.parent.parent} --checkpoint {int(batch)}"
    return "give a run directory (the folder that holds checkpoints/)"


def load_best(run_dir: RunDir) -> tuple[dict[str, Any], Path]:
    """``checkpoints/best.pt``: the best evaluation's policy of a run that evaluated
    while training (``eval_every``)."""
    path = run_dir.checkpoints_dir / BEST_FILENAME
    if not path.is_file():
        raise ConfigError(
            "checkpoint",
            f"no {BEST_FILENAME} in {run_dir.checkpoints_dir}: only a run that evaluates "
            "while training ({eval_every}) keeps one",
            mentions=("eval_every",),
        )
    try:
        return load_checkpoint(path), path
    except CheckpointError as exc:
        raise CheckpointError(exc.message, setting="checkpoint") from None
