"""The ``esper`` command line: a thin layer over ``esper.api``.

One ``app`` (``cli/app.py``: the flag table and one-line errors) and one module
per kind of command: ``ppo``, ``runs`` (sanctum, eval, export, plot), ``sweeps``
(seeds, tune) and ``tasks`` (tasks, check-env). Commands import what they need
when they run: ``esper sanctum`` and ``esper --help`` should not pay for torch.
"""

from __future__ import annotations

from esper.cli import ppo, runs, sweeps, tasks  # noqa: F401  (each registers its commands)
from esper.cli.app import CLI_NAMES, EXIT_BAD_INPUT, INVOCATION_OPTIONS, app
from esper.cli.ppo import PPO_OPTIONS
from esper.runtime.console import guard_console
from esper.runtime.process import apply_process_settings

__all__ = ["CLI_NAMES", "EXIT_BAD_INPUT", "INVOCATION_OPTIONS", "PPO_OPTIONS", "app", "main"]


def main() -> None:
    """Console-script entry point."""
    apply_process_settings()  # process-wide, so the command's own, never esper.train()'s
    guard_console()  # `esper ... | head` must not kill a run (runtime.console)
    app(prog_name="esper")
