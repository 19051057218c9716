"""Graceful stops: the first Ctrl-C or SIGTERM asks the trainer to stop at the
next batch boundary (it then checkpoints and reports); a second Ctrl-C stops at once.

A rank whose launcher dies without a word (``kill -9`` of ``esper ppo --nproc``
or of torchrun) would otherwise train on, orphaned, until its last batch: it
stops as on SIGHUP instead, checkpointing first.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from esper.runtime.torchrun_env import launched_by_torchrun

LAUNCHER_POLL_S = 1.0  # how often a rank looks for its launcher: a stop costs a batch anyway


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
        """128 + the signal's number, as a shell reports it: 130, 143, 129."""
        return 128 + int(getattr(signal, self.signal_name or "SIGINT", signal.SIGINT))


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
    done = threading.Event()
    if launched_by_torchrun():
        watch = (stop, os.getppid(), done)
        threading.Thread(target=_watch_launcher, args=watch, daemon=True).start()
    try:
        yield stop
    finally:
        done.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _watch_launcher(stop: StopRequest, launcher: int, done: threading.Event) -> None:
    """Ask for a stop once this process's parent is gone (it is re-parented)."""
    while not done.wait(LAUNCHER_POLL_S):
        if os.getppid() != launcher:
            print(
                f"esper: the launcher (pid {launcher}) is gone; stopping at the end of this batch",
                file=sys.stderr,
                flush=True,
            )
            stop.request("SIGHUP")
            return
