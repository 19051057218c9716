"""Runs that differ only by seed are one line; identical runs are not seeds."""

from __future__ import annotations

from esper.runs.curves import RunCurves
from esper.runs.seed_groups import group_runs


def run(label: str, seed: int) -> RunCurves:
    return RunCurves(label, "cartpole", seed, {"learning_rate": 1e-3, "seed": seed})


def test_identical_runs_are_not_labelled_as_seeds() -> None:
    (seeds,) = group_runs([run("sweep/seed-1", 1), run("sweep/seed-2", 2)])
    assert seeds.label.endswith("(2 seeds)")
    (repeats,) = group_runs([run("trials/trial-0001", 1), run("trials/trial-0002", 1)])
    assert repeats.label.endswith("(2 runs, 1 seed)")
