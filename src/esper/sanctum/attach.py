"""``esper sanctum RUN_DIR``: the dashboard of a run in another process, or a finished one.

It reads ``RUN_DIR/telemetry.jsonl`` from the start, then follows what is
appended until the user quits (q or Ctrl-C); a run that has ended stays on
screen in its final state. A run that has not started yet (no directory or no
file) is waited for, so the dashboard can be opened before ``esper ppo``.
``once`` prints one snapshot and returns, for scripts and tests: there a
missing run is an error, since there is nothing to wait for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from rich.console import Console

from esper.runs.directory import RunDir
from esper.runtime.errors import ConfigError
from esper.sanctum.aggregator import SanctumAggregator
from esper.sanctum.app import SanctumDashboard
from esper.sanctum.keys import keypresses
from esper.sanctum.layout import LAYOUT_WIDTH, render_dashboard
from esper.sanctum.tail import JsonlTail

QUIT_KEYS = frozenset("qQ")
POLL_SECONDS = 0.25


def telemetry_file(run_dir: Path) -> Path:
    """``RUN_DIR/telemetry.jsonl``, or a ConfigError saying what is missing."""
    if not run_dir.is_dir():
        raise ConfigError("RUN_DIR", f"{run_dir} is not a directory (give a run's --run-dir)")
    path = RunDir(run_dir).telemetry_path
    if not path.is_file():
        raise ConfigError("RUN_DIR", f"no {path.name} in {run_dir}: no run has started there (yet)")
    return path


def attach_console(width: int | None = None) -> Console:
    """The dashboard's console: ``width`` columns, else the terminal's;
    in a pipe at least the layout's full width, not rich's 80."""
    console = Console(width=width)
    if width is None and not console.is_terminal:
        console.width = max(console.width, LAYOUT_WIDTH)
    return console


def attach(
    run_dir: Path,
    *,
    once: bool = False,
    console: Console | None = None,
    keys: TextIO | None = None,
    width: int | None = None,
) -> int:
    """Show the run in ``run_dir``; returns the exit code (0: the user quit).

    ``keys`` is the terminal read for q (stdin when None); ``width`` the
    columns to draw in (the terminal's when None).
    """
    if once:
        path = telemetry_file(run_dir)
    elif run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("RUN_DIR", f"{run_dir} is not a directory (give a run's --run-dir)")
    else:
        path = RunDir(run_dir).telemetry_path
    console = console if console is not None else attach_console(width)
    aggregator = SanctumAggregator()
    tail = JsonlTail(path, on_problem=aggregator.record_anomaly)
    aggregator.feed(tail.poll())
    if once:
        console.print(render_dashboard(aggregator.snapshot()))
        return 0
    dashboard = SanctumDashboard(aggregator, console=console, footer=_footer(path), keys=keys)
    try:
        with dashboard, keypresses(keys) as read_key:
            while read_key(POLL_SECONDS) not in QUIT_KEYS:
                aggregator.feed(tail.poll())
                dashboard.footer = _footer(path)
    except KeyboardInterrupt:
        pass
    return 0


def _footer(path: Path) -> str:
    if path.is_file():
        return f"following {path}   q or Ctrl-C to quit"
    return f"waiting for {path} (the run has not started)   q or Ctrl-C to quit"
