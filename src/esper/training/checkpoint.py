"""Checkpoint files: written atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
loading it never runs pickled code. It is written to a temporary file in the
same directory, flushed and fsynced, then renamed over the final name: a crash
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from esper.envs.spaces import ActionSpace, BoxSpace, DiscreteSpace, MultiDiscreteSpace
from esper.runtime.errors import UserError

CHECKPOINT_FORMAT = 1


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used; the message names the file and a fix."""

    setting = "start_batch"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> int:
    """Write ``payload`` atomically to ``path``; return the file's size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            torch.save({"format": CHECKPOINT_FORMAT, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path.stat().st_size


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The last checkpoint read, by (file, modification time, size). A resume asks for
# the same file three times (is it intact, what config made it, restore it):
# with this it reads the file once. ``forget_loaded`` drops it after a restore.
_last_loaded: tuple[tuple[str, int, int], dict[str, Any]] | None = None


def _identity(path: Path) -> tuple[str, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def forget_loaded() -> None:
    """Release the remembered checkpoint (its tensors) once it has been used."""
    global _last_loaded
    _last_loaded = None


def load_checkpoint(path: Path, intact_hint: str = "") -> dict[str, Any]:
    """Load a checkpoint safely; a damaged file gives a CheckpointError naming it.
    The file is read once however often a resume asks (the same file, unchanged)."""
    global _last_loaded
    identity = _identity(path)
    if identity is not None and _last_loaded is not None and _last_loaded[0] == identity:
        return _last_loaded[1]
    payload = _read(path, intact_hint)
    if identity is not None:
        _last_loaded = (identity, payload)
    return payload


def _read(path: Path, intact_hint: str) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:
        hint = f"; {intact_hint}" if intact_hint else ""
        raise CheckpointError(
            f"checkpoint {path} is damaged or not an esper checkpoint ({type(exc).__name__}){hint}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has an unknown format")
    return payload


def load_for_resume(
    checkpoints: dict[int, Path], batch: int, setting: str = "start_batch"
) -> dict[str, Any]:
    """Load ``batch``'s checkpoint; if it is damaged, name the newest intact one.
    ``setting`` is what picked the batch (``load_policy`` passes ``checkpoint``)."""
    path = checkpoints[batch]
    try:
        return load_checkpoint(path)
    except CheckpointError:
        intact = newest_intact({b: p for b, p in checkpoints.items() if b != batch})
        hint = (
            f"the newest intact checkpoint is batch {intact} ({{{setting}}}={intact})"
            if intact is not None
            else "no intact checkpoint remains"
        )
        try:
            return load_checkpoint(path, intact_hint=hint)
        except CheckpointError as exc:  # the user fixes it with ``setting``: say so
            raise CheckpointError(exc.message, setting=setting, mentions=(setting,)) from None


def newest_intact(checkpoints: dict[int, Path]) -> int | None:
    """The highest batch whose checkpoint loads, or None."""
    for batch in sorted(checkpoints, reverse=True):
        try:
            load_checkpoint(checkpoints[batch])
        except CheckpointError:
            continue
        return batch
    return None


BEST_FILENAME = "best.pt"  # beside the batch checkpoints; never pruned, never resumed from


def best_return(path: Path) -> float | None:
    """The evaluation return ``best.pt`` was saved for; None when there is no
    such file, or it does not load (then the next evaluation replaces it)."""
    try:
        saved = load_checkpoint(path)
    except CheckpointError:
        return None
    finally:
        forget_loaded()  # one float is all a run keeps from it
    evaluation = saved.get("evaluation")
    return float(evaluation["return_mean"]) if isinstance(evaluation, dict) else None


def best_batch(path: Path) -> int:
    """The batch ``best.pt`` was saved after; one that does not load counts as newest."""
    try:
        return int(load_checkpoint(path)["batch"])
    except CheckpointError:
        return 2**62
    finally:
        forget_loaded()


def describe_space(space: ActionSpace) -> dict[str, Any]:
    """The action space as a checkpoint records it (plain values, loadable with
    ``weights_only``), for comparing a checkpoint with a task."""
    if isinstance(space, DiscreteSpace):
        return {"kind": "discrete", "n": space.n}
    if isinstance(space, MultiDiscreteSpace):
        return {"kind": "multi_discrete", "nvec": list(space.nvec)}
    assert isinstance(space, BoxSpace)
    return {"kind": "box", "low": list(space.low), "high": list(space.high)}


def fits(saved: dict[str, Any], obs_dim: int, action_space: ActionSpace) -> bool:
    """Whether a checkpoint's policy has the observation and action shapes of a task."""
    return saved["obs_dim"] == obs_dim and saved["action_space"] == describe_space(action_space)
