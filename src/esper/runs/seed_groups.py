"""Runs that differ only by their seed, as one experiment: grouped, and summarised
at every env step by the mean (or the interquartile mean, as rliable
recommends) with a bootstrap 95% confidence band, so a figure shows how
reliably a setting learns rather than how one lucky seed did."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.runs.curves import RunCurves
from esper.runtime.errors import ConfigError

# Config keys that do not change what is learned: runs differing only in these
# (and the seed) are one experiment.
NOT_THE_EXPERIMENT = {
    "seed", "run_dir", "overwrite", "device", "start_batch", "checkpoint_every", "keep_checkpoints",
}  # fmt: skip
BOOTSTRAP_RESAMPLES = 1000
STATISTICS = ("mean", "iqm")


@dataclass
class RunGroup:
    """Runs of one experiment (the same config but the seed), drawn as one line."""

    label: str
    runs: list[RunCurves]

    @property
    def task(self) -> str:
        return self.runs[0].task

    def band(
        self, name: str, *, smooth: int = 1, stat: str = "mean"
    ) -> tuple[list[float], list[float], list[float], list[float]]:
        """``(env_steps, centre, low, high)`` of a BATCH_COMPLETED field over the seeds.

        Each run is smoothed (a trailing mean over ``smooth`` batches) and read at
        every env step any run reports; the centre is the mean or the IQM over
        the runs that cover that step, the band its bootstrap 95% interval
        (collapsed onto the centre where only one run does).
        """
        import numpy as np

        grid = sorted({x for run in self.runs for x in run.series(name)[0]})
        columns = []
        for run in self.runs:
            xs, ys = run.series(name)
            if not xs:
                continue
            ys = _trailing_mean(ys, smooth)
            column = np.interp(grid, xs, ys)
            column[(np.asarray(grid) < xs[0]) | (np.asarray(grid) > xs[-1])] = np.nan
            columns.append(column)
        if not columns:
            return [], [], [], []
        table = np.stack(columns)
        rng = np.random.default_rng(0)  # the same figure from the same runs
        centre, low, high = [], [], []
        for values in table.T:
            values = values[~np.isnan(values)]
            centre.append(_statistic(values[None, :], stat)[0])
            if len(values) > 1:
                picks = rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))
                lo, hi = np.percentile(_statistic(values[picks], stat), [2.5, 97.5])
            else:
                lo = hi = centre[-1]
            low.append(float(lo))
            high.append(float(hi))
        return grid, centre, low, high


def _statistic(samples: Any, stat: str) -> Any:
    """Mean, or interquartile mean (the middle half), of each row of ``samples``."""
    import numpy as np

    if stat == "iqm" and samples.shape[1] >= 4:
        ordered = np.sort(samples, axis=1)
        cut = samples.shape[1] // 4
        return ordered[:, cut : samples.shape[1] - cut].mean(axis=1)
    return samples.mean(axis=1)


def _trailing_mean(values: list[float], window: int) -> list[float]:
    """Each value averaged with up to ``window - 1`` values before it."""
    if window <= 1:
        return values
    out, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        out.append(total / min(index + 1, window))
    return out


def group_runs(runs: Sequence[RunCurves], labels: Sequence[str] | None = None) -> list[RunGroup]:
    """Runs whose configs differ only by seed become one group, in first-seen order."""
    keyed: dict[str, list[RunCurves]] = {}
    for run in runs:
        kept = {k: v for k, v in run.config.items() if k not in NOT_THE_EXPERIMENT}
        if not kept:  # a record without its config: nothing says it repeats another run
            kept = {"run": run.label}
        key = json.dumps({"task": run.task, **kept}, sort_keys=True, default=str)
        keyed.setdefault(key, []).append(run)
    members = list(keyed.values())
    if labels and len(labels) != len(members):
        raise ConfigError(
            "--label",
            f"{len(labels)} label(s) for {len(members)} line(s) "
            f"(runs that differ only by seed share one line)",
        )
    names = labels or [_group_name(group) for group in members]
    return [RunGroup(name, group) for name, group in zip(names, members, strict=True)]


def _group_name(runs: Sequence[RunCurves]) -> str:
    """A lone run's label; for seeds, what their labels share, and how many there are
    (identical runs, such as two tune trials that drew the same values, are no seeds)."""
    if len(runs) == 1:
        return runs[0].label
    names = [Path(run.label).name for run in runs]
    common = names[0]  # the characters every name starts with (cartpole-s1, cartpole-s2)
    for name in names[1:]:
        while not name.startswith(common):
            common = common[:-1]
    common = re.sub(r"[-_ ]*(seed|s)?[-_ ]*$", "", common) or runs[0].task
    seeds = len({run.seed for run in runs})
    if seeds == len(runs):
        return f"{common} ({seeds} seeds)"
    return f"{common} ({len(runs)} runs, {seeds} seed{'s' * (seeds > 1)})"  # repeats
