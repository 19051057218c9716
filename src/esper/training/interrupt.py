"""Graceful stops: the first Ctrl-C or SIGTERM asks the trainer to stop at the
next batch boundary (it then checkpoints and reports); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class StopRequest:
    """A flag the trainer polls between batches (a plain bool: no device sync)."""

    signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, signal_name: str) -> None:
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        return 143 if self.signal_name == "SIGTERM" else 130


@contextmanager
def graceful_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM into ``stop`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: leave now
        stop.request(name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
