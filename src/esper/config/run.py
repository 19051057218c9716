"""A run's config from what the user gave (a config file, settings, flags, a
step budget); a resume's starts from its checkpoint's own config, with the
newest intact checkpoint found and damaged newer ones set aside.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from esper.config.layers import build_config, checked_config
from esper.config.schema import CLEAR_WORD, CLEARABLE, PPOConfig
from esper.config.text import config_file_budget, field_names, load_config_file
from esper.envs import env_class
from esper.envs.registry import check_task_options, recall_task
from esper.runs.directory import RunDir, describe_checkpoints
from esper.runs.lock import RunLock
from esper.runtime.errors import ConfigError
from esper.training.checkpoint import load_for_resume, newest_intact
from esper.training.state import check_fixed_settings

# Keys that describe this invocation rather than the run: never taken from a checkpoint.
INVOCATION_KEYS = ("n_batches", "start_batch", "run_dir", "overwrite", "device")


def resume_point(run_dir: RunDir) -> int:
    """The newest checkpoint that loads; damaged newer ones are set aside (renamed
    ``*.damaged``) with a note, so the resume can replace them."""
    checkpoints = run_dir.checkpoints()
    intact = newest_intact(checkpoints)
    if intact is None:
        raise ConfigError(
            "resume",
            f"nothing to resume in {run_dir.path} ({describe_checkpoints(run_dir)})",
        )
    for batch, path in checkpoints.items():
        if batch > intact:
            path.rename(path.with_name(path.name + ".damaged"))
            print(
                f"esper: note: {path.name} does not load (kept as {path.name}.damaged); "
                f"resuming from batch {intact}",
                file=sys.stderr,
                flush=True,
            )
    return intact


def make_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    total_timesteps: int | None = None,
    lock: RunLock | None = None,
) -> PPOConfig:
    """Validated config; a resume starts from the checkpoint's saved config.
    ``resume`` picks the newest intact checkpoint (instead of ``start_batch``).
    ``total_timesteps`` (CleanRL's budget) sets the batches instead of
    ``n_batches``: the run ends at batch ceil(total_timesteps / (n_envs x horizon)),
    counting a resumed run's batches. A config file's ``total_timesteps`` is the
    same budget, which a flag (``--total-timesteps`` or ``--episodes``) replaces.
    ``lock`` is taken on the run dir before anything in it is read (a resume's
    checkpoints)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if total_timesteps is None and config_file is not None and "n_batches" not in overrides:
        total_timesteps = config_file_budget(config_file)
    if total_timesteps is not None:
        return _config_for_timesteps(config_file, overrides, resume, total_timesteps, lock)
    return _config_for_batches(config_file, overrides, resume, lock)


def _config_for_batches(
    config_file: Path | None, overrides: dict[str, Any], resume: bool, lock: RunLock | None
) -> PPOConfig:
    """``make_config`` with ``n_batches`` as given (or the layers' default)."""
    cleared = _cleared(overrides)  # taken out of overrides: None is "not given" there
    if resume and overrides.get("start_batch"):
        raise ConfigError(
            "resume", "give {resume} or {start_batch}, not both", mentions=("resume", "start_batch")
        )
    fresh = build_config(config_file, overrides)  # validates flags and file early
    fresh = dataclasses.replace(fresh, **dict.fromkeys(cleared))
    if lock is not None:
        lock.take(fresh.resolved_run_dir())
    if resume:
        overrides["start_batch"] = resume_point(RunDir(fresh.resolved_run_dir()))
        fresh = dataclasses.replace(fresh, start_batch=overrides["start_batch"])
    if fresh.start_batch == 0:
        env_class(fresh.task)  # unknown task: error before anything touches the disk
        check_task_options(fresh.task, fresh.task_options)
        return fresh
    run_dir = RunDir(fresh.resolved_run_dir())
    path = run_dir.checkpoint_path(fresh.start_batch)
    if not path.is_file():
        raise ConfigError(
            "start_batch",
            f"no checkpoint for batch {fresh.start_batch} in {run_dir.path} "
            f"({describe_checkpoints(run_dir)})",
        )
    checkpoint = load_for_resume(run_dir.checkpoints(), fresh.start_batch)
    recall_task(checkpoint["config"]["task"], checkpoint.get("task_source"))
    env_class(fresh.task)
    saved = field_names(checkpoint["config"])
    for key in INVOCATION_KEYS:
        saved.pop(key, None)
    saved["hidden_sizes"] = tuple(saved["hidden_sizes"])
    file_values = load_config_file(config_file) if config_file else {}
    values = {**saved, **file_values, **overrides, **dict.fromkeys(cleared)}
    given = {*file_values, *overrides, *cleared}
    if not values.get("eval_every") and "stop_at" not in given:
        values["stop_at"] = None  # evaluations turned off: their carried-over target goes too
    config = checked_config(values, file_values, overrides, config_file)
    check_fixed_settings(checkpoint["config"], config, path)
    return config


def _cleared(overrides: dict[str, Any]) -> list[str]:
    """The CLEARABLE settings given as "none", removed from ``overrides``; a number
    given as text (the CLI's ``--stop-at`` is text, to take "none") made a number."""
    cleared = []
    for key in CLEARABLE:
        value = overrides.get(key)
        if not isinstance(value, str):
            continue
        if value.strip().lower() == CLEAR_WORD:
            cleared.append(key)
            del overrides[key]
            continue
        try:
            overrides[key] = float(value)
        except ValueError:
            raise ConfigError(key, f"must be a number or {CLEAR_WORD} (got {value!r})") from None
    return cleared


def carried_over(
    config: PPOConfig, config_file: Path | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """The settings a resume took from its checkpoint that the same command, run
    fresh, would set otherwise (the task's defaults, the file, the flags): what a
    user may not know the resume kept, such as an --eval-every and --stop-at."""
    if not config.start_batch:
        return {}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        kept = {k: v for k, v in given.items() if k not in CLEARABLE}
        fresh = build_config(config_file, {"task": config.task, **kept})
    except ConfigError:  # flags that only the resumed config makes whole
        fresh = build_config(config_file, {"task": config.task})
    skip = {*INVOCATION_KEYS, *given, *(load_config_file(config_file) if config_file else ())}
    names = [key for key in config.to_dict() if key not in skip]
    return {k: getattr(config, k) for k in names if getattr(config, k) != getattr(fresh, k)}


def _config_for_timesteps(
    config_file: Path | None,
    overrides: dict[str, Any],
    resume: bool,
    total_timesteps: int,
    lock: RunLock | None,
) -> PPOConfig:
    """``make_config`` with ``n_batches`` from a number of env steps."""
    if "n_batches" in overrides:
        raise ConfigError(
            "total_timesteps",
            "give {total_timesteps} or {n_batches}, not both",
            mentions=("total_timesteps", "n_batches"),
        )
    if total_timesteps < 1:
        raise ConfigError("total_timesteps", f"must be >= 1 (got {total_timesteps})")
    config = _config_for_batches(config_file, overrides, resume, lock)
    end = math.ceil(total_timesteps / config.batch_size)
    if end <= config.start_batch:
        raise ConfigError(
            "total_timesteps",
            f"the run already holds {config.start_batch} batches "
            f"({config.start_batch * config.batch_size:,} env steps)",
        )
    return dataclasses.replace(config, n_batches=end - config.start_batch)
