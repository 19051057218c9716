"""Following a growing ``telemetry.jsonl`` the way a live reader must.

The trainer appends whole lines and flushes, so at any moment the file may end
in a partial line still being written: only complete lines are read, and the
rest is read again on the next poll. A replaced file (``--overwrite``) is
noticed and read again from the start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from esper.telemetry.events import TelemetryEvent


def _ignore(_message: str) -> None:
    pass


class JsonlTail:
    """Yields each complete event once, across as many ``poll`` calls as it takes."""

    def __init__(self, path: Path, on_problem: Callable[[str], None] = _ignore) -> None:
        self.path = path
        self._on_problem = on_problem  # told about unreadable lines and a replaced file
        self._inode: int | None = None
        self._offset = 0  # bytes of complete lines consumed
        self._line = 0  # lines consumed, for messages

    def poll(self) -> list[TelemetryEvent]:
        """The events appended since the last poll (none if the file is missing)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return []
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            if self._inode is not None:
                self._on_problem(f"{self.path.name} was replaced; reading it from the start")
            self._inode, self._offset, self._line = stat.st_ino, 0, 0
        if stat.st_size == self._offset:
            return []
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # past the last complete line; 0 when none
        self._offset += end
        events = []
        for raw in chunk[:end].splitlines():
            event = self._parse(raw)
            if event is not None:
                events.append(event)
        return events

    def _parse(self, raw: bytes) -> TelemetryEvent | None:
        self._line += 1
        if not raw.strip():
            return None
        try:
            return TelemetryEvent.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            self._on_problem(f"{self.path.name}:{self._line}: skipped an unreadable line ({exc})")
            return None
