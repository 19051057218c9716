"""``SanctumDashboard``: the live terminal view of an aggregator's snapshots.

The dashboard's own thread redraws rich ``Live`` from ``aggregator.snapshot()``.
It looks a few times a second but draws only when an event has arrived since
the last frame, or once a second for the clock: drawing holds Python's GIL, so
frames nobody needs would slow the trainer. The trainer never waits on drawing:
its only contact is the aggregator's ``handle``, which holds a lock briefly.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from types import TracebackType
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live

from esper.sanctum.aggregator import SanctumAggregator
from esper.sanctum.keys import unechoed
from esper.sanctum.layout import render_dashboard
from esper.sanctum.schema import RunStatus

CLOCK_TICK_SECONDS = 1.0  # the elapsed time and ETA are shown in whole seconds
# Drawing a frame costs ~16 ms of CPU on a 2-core machine, taken from the trainer.
# Frames are spaced so drawing uses at most this share of one core.
RENDER_CPU_BUDGET = 0.01


class SanctumDashboard:
    """A context manager: shows the dashboard inside the block, the final state after it.

    On leaving the block (completion, failure, Ctrl-C) it draws the last
    snapshot once more, with its status and reason, then stops ``Live`` and
    gives the terminal back, so what is printed next (a resume command) comes
    below the final frame. While it shows, the terminal echoes nothing typed
    (``keys``, stdin when None), which would shift the frames it redraws. If
    no event ever arrived (the run was refused before it started) the empty
    dashboard is cleared instead of left behind.
    """

    def __init__(
        self,
        aggregator: SanctumAggregator,
        *,
        console: Console | None = None,
        refresh_per_second: float = 4.0,
        footer: str | None = None,
        keys: TextIO | None = None,
    ) -> None:
        self.aggregator = aggregator
        self.footer = footer  # the line under the dashboard; may change while it shows
        self._keys = keys
        self._terminal = ExitStack()
        self._interval = 1.0 / refresh_per_second
        self._live = Live(
            console=console if console is not None else Console(),
            auto_refresh=False,  # our thread decides when a frame is worth drawing
            get_renderable=self.render,
        )
        self.render_cpu_seconds = 0.0  # CPU the drawing thread spent on frames (bench reads it)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw, name="sanctum-dashboard", daemon=True)

    def render(self) -> RenderableType:
        return render_dashboard(self.aggregator.snapshot(), footer=self.footer)

    def __enter__(self) -> SanctumDashboard:
        self._terminal.enter_context(unechoed(self._keys))
        self._live.start(refresh=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self.aggregator.snapshot().status is RunStatus.WAITING:
            self._live.transient = True
        self._live.stop()  # its last refresh draws the final snapshot
        self._terminal.close()

    def _redraw(self) -> None:
        drawn_version, drawn_at = self.aggregator.version, time.monotonic()
        gap = 0.0  # seconds to leave between frames, from what the last one cost
        while not self._stop.wait(self._interval):
            version, now = self.aggregator.version, time.monotonic()
            due = version != drawn_version or now - drawn_at >= CLOCK_TICK_SECONDS
            if due and now - drawn_at >= gap:
                cpu_before = time.thread_time()
                self._live.refresh()
                spent = time.thread_time() - cpu_before
                self.render_cpu_seconds += spent
                gap = spent / RENDER_CPU_BUDGET
                drawn_version, drawn_at = version, now
