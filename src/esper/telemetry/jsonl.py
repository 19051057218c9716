"""The durable record: ``RUN_DIR/telemetry.jsonl``, appended one line per event.

Each line is written whole and flushed, so a killed process leaves at most one
partial last line; readers skip such a line with a warning.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from esper.telemetry.events import TelemetryEvent


class JsonlSink:
    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        if self._fh.tell() > 0 and not _ends_with_newline(path):
            # A killed writer left a partial line: start ours on a fresh one.
            self._fh.write("\n")

    def handle(self, event: TelemetryEvent) -> None:
        self._fh.write(event.to_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def read_events(path: Path) -> Iterator[TelemetryEvent]:
    """Yield every complete event; warn about (and skip) unreadable lines."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield TelemetryEvent.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                warnings.warn(
                    f"{path}:{number}: skipped an unreadable telemetry line ({exc})",
                    stacklevel=2,
                )
