"""One writer per run directory: a lock held for the run's life.

Two trainings in one run directory interleave their checkpoints and telemetry
(or one deletes the other's, with ``overwrite``). The lock is an ``flock`` on
``RUN_DIR/.esper.lock``, taken before anything in the directory is read or
deleted and released by the OS when the process dies, so a killed run never
leaves a stale lock behind. The file holds the writer's pid, for the refusal.
Readers (sanctum, plot, eval, export) never take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from esper.runs.directory import RunDir, require_writable
from esper.runtime.errors import ConfigError

LOCK_FILENAME = ".esper.lock"
FOLDER_LOCK_FILENAME = ".lock"  # esper tune's study folder, esper seeds' sweep folder


class RunLock:
    """This process's hold on one run directory. ``take`` is idempotent for the
    same directory, so the config step and the run can share one lock."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._created: list[Path] = []  # the folders taking the lock made, innermost first
        self.path: Path | None = None

    def take(self, run_dir: Path) -> None:
        """Hold ``run_dir`` or refuse in one line naming the live writer's pid."""
        path = Path(run_dir).resolve()
        if self._file is not None:
            if path != self.path:
                raise RuntimeError(f"a run lock holds {self.path}, not {path}")
            return
        require_writable(RunDir(Path(run_dir)))  # one line, not an OSError from mkdir
        created = [p for p in (path, *path.parents) if not p.exists()]  # innermost first
        path.mkdir(parents=True, exist_ok=True)
        handle = (path / LOCK_FILENAME).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                "run_dir",
                f"{run_dir} is in use: esper pid {pid} is training in it "
                "({overwrite} does not replace a live run); wait for it to end, "
                "stop it, or choose another {run_dir}",
                mentions=("run_dir", "overwrite"),
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file, self.path, self._created = handle, path, created

    def release(self) -> None:
        """Let the next writer in. A directory this lock made and nothing else
        wrote to (the run was refused) goes too."""
        if self._file is None:
            return
        handle, path, self._file = self._file, self.path, None
        handle.truncate(0)
        made_here = bool(self._created) and path is not None
        if made_here and [entry.name for entry in path.iterdir()] == [LOCK_FILENAME]:
            (path / LOCK_FILENAME).unlink()
            with contextlib.suppress(OSError):  # a folder something else wrote to stays
                for folder in self._created:
                    folder.rmdir()
        handle.close()  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def one_process(folder: Path, setting: str, what: str) -> Iterator[None]:
    """One ``what`` (``esper tune``, ``esper seeds``) at a time in ``folder``, which it
    makes: another is refused in one line naming the live one's pid (the setting
    ``setting`` names the folder). Its runs each hold their own ``RunLock`` too."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / FOLDER_LOCK_FILENAME).open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise ConfigError(
                setting,
                f"another {what} is running in {folder} (pid {pid}); wait for it to end, "
                f"or choose another {{{setting}}}",
                mentions=(setting,),
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
