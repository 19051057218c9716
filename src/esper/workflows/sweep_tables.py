"""The seed table of ``esper seeds``: per seed, then the mean ± std over the seeds.

Written apart from running the sweep (``esper.workflows.sweep``): the table is
how a sweep's runs are read (printed, and kept as ``PARENT/seeds.md`` and
``seeds.json``), not how they are started or stopped.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path

from esper.workflows.sweep import TABLE_FILES, SeedRun, Sweep, sweep_settings


def _mean_std(values: list[float], spec: str = ".1f") -> str:
    """``mean ± std`` written as the column's rows are (``12,288 ± 0`` for env steps)."""
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{spec}} ± {std:{spec}}"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def markdown_table(runs: list[SeedRun], target: float | None = None) -> str:
    """Per seed, then the mean ± std over the seeds that have the value."""
    head = ["seed", "last-5 mean", "best batch mean (batch)", "final batch", "env steps"]
    head += ["wall s", "CPU s", "status"]
    if target is not None:
        head.insert(1, f"first batch >= {target:g}")
    lines = ["| " + " | ".join(head) + " |", "|" + " ---: |" * (len(head) - 1) + " --- |"]
    for run in runs:
        best = run.best
        row = [
            str(run.seed),
            _number(run.last5),
            "-" if best is None else f"{best[0]:.1f} ({best[1]})",
            _number(run.final),
            f"{run.env_steps:,}",
            _number(run.wall_seconds),
            _number(run.cpu_seconds),
            run.status,
        ]
        if target is not None:
            row.insert(1, str(run.first_reaching(target) or "-"))
        lines.append("| " + " | ".join(row) + " |")
    summary = [
        "mean ± std",
        _mean_std([r.last5 for r in runs if r.last5 is not None]),
        _mean_std([r.best[0] for r in runs if r.best is not None]),
        _mean_std([r.final for r in runs if r.final is not None]),
        _mean_std([float(r.env_steps) for r in runs], ",.0f"),
        _mean_std([r.wall_seconds for r in runs], ",.1f"),
        _mean_std([r.cpu_seconds for r in runs], ",.1f"),
        f"{sum(r.status == 'completed' for r in runs)}/{len(runs)} completed",
    ]
    if target is not None:
        reached = sum(r.first_reaching(target) is not None for r in runs)
        summary.insert(1, f"{reached}/{len(runs)} reached")
    lines.append("| " + " | ".join(summary) + " |")
    return "\n".join(lines)


def write_tables(sweep: Sweep, runs: list[SeedRun], target: float | None = None) -> list[Path]:
    """``PARENT/seeds.md`` (the table, with the command's settings) and ``seeds.json``,
    of ``runs``: this sweep's seeds and any earlier ones (``all_runs``)."""
    settings = sweep_settings(sweep)
    md = sweep.parent / TABLE_FILES[0]
    md.write_text(
        f"Seeds {', '.join(str(r.seed) for r in runs)}; settings {json.dumps(settings)}\n\n"
        f"{markdown_table(runs, target)}\n",
        encoding="utf-8",
    )
    js = sweep.parent / TABLE_FILES[1]
    per_seed = [{**asdict(r), "last5": r.last5, "best": r.best, "final": r.final} for r in runs]
    js.write_text(json.dumps({"settings": settings, "seeds": per_seed}, indent=1) + "\n")
    return [md, js]
