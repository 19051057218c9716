"""The durable record: ``RUN_DIR/telemetry.jsonl``, appended one line per event.

Each line is written whole and flushed, so a killed process leaves at most one
partial last line; readers skip such a line with a warning.

The file is never rewritten, so a resume from batch K (after a crash past the
last checkpoint, or an ``--overwrite`` resume) appends batches K+1.. again
after the ones it replaces. ``effective_history`` is the reading every
consumer takes: a TRAINING_STARTED with ``start_batch`` K supersedes the
events of batches after K logged before it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from esper.telemetry.events import TelemetryEvent, TrainingStartedPayload


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


def supersedes(start_batch: int, batch: int | None) -> bool:
    """Whether a resume from ``start_batch`` replaces what was logged earlier for ``batch``.

    Every event of a batch after the resume's start is superseded: its
    BATCH_COMPLETED, CHECKPOINT_SAVED, the earlier invocation's end, an earlier
    resume past it. Events without a batch number are kept.
    """
    return batch is not None and batch > start_batch


def effective_history(events: Iterable[TelemetryEvent]) -> list[TelemetryEvent]:
    """``events`` without those a later resume superseded, in their original order.

    ``effective_history(read_events(path))`` has each batch once, as the
    surviving invocation saw it.
    """
    kept: list[TelemetryEvent] = []
    for event in events:
        if isinstance(event.data, TrainingStartedPayload):
            start = event.data.start_batch
            kept = [e for e in kept if not supersedes(start, e.batch)]
        kept.append(event)
    return kept
