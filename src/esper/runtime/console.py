"""Console output never kills training.

``esper ppo ... | head -3`` closes the pipe after three lines; the next line
(a batch, a warning) raised BrokenPipeError inside the trainer, which then
failed the run and lost the batches since the last checkpoint. A console
stream whose reader is gone (a broken pipe, a closed file) goes quiet instead:
every later write is dropped, and its file descriptor points at /dev/null so
the interpreter's last flush does not complain either. Telemetry and
checkpoints are files, not the console: they go on.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# What writing to a console stream raises once its reader is gone.
_GONE = (BrokenPipeError, ValueError)  # ValueError: I/O operation on closed file


class QuietWhenGone:
    """A console stream that drops what it is given once its reader has gone."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except _GONE:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except _GONE:
                self._silence()

    def _silence(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)


def _guarded(stream: TextIO | None) -> TextIO:
    if isinstance(stream, QuietWhenGone):
        return stream  # type: ignore[return-value]
    if stream is None:  # started with the descriptor closed (``esper ppo >&-``)
        stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    return QuietWhenGone(stream)  # type: ignore[return-value]


def guard_console() -> None:
    """For the whole process (the ``esper`` command): stdout and stderr go quiet
    when their reader goes."""
    sys.stdout, sys.stderr = _guarded(sys.stdout), _guarded(sys.stderr)


@contextlib.contextmanager
def console_guarded() -> Iterator[None]:
    """``guard_console`` for a run inside someone's process, undone afterwards."""
    saved = sys.stdout, sys.stderr
    guard_console()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
