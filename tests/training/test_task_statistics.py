"""A task's declared statistics and start facts reach every consumer: the
JSONL record, TensorBoard, the plot and the CLI's refusals.

probe-mask declares ``paid_fraction``, the fraction of a batch's steps whose
action paid; with the mask on, a policy that has learned pays nearly always,
so the statistic also shows the mask at work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import esper
from esper.runtime.errors import ConfigError

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_task_statistics")

HERE = Path(__file__).resolve().parent


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return [e["data"] for e in events if e["event_type"] == kind]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("stats")
    sys.path.insert(0, str(HERE))
    try:
        outcome = esper.train(
            "custom_tasks:MaskProbeWithFacts", episodes=6, run_dir=str(run_dir), device="cpu",
            seed=1, tensorboard=True,
        )  # fmt: skip
    finally:
        sys.path.remove(str(HERE))
    assert outcome.status == "completed", outcome.reason
    return run_dir


def test_statistics_land_in_batch_completed_and_facts_in_training_started(run: Path) -> None:
    started = records(run, "TRAINING_STARTED")[0]
    assert started["task_facts"] == {
        "forbidden_per_state": 1,
        "actions": ["left", "middle", "right"],
    }
    paid = [b["task_statistics"]["paid_fraction"] for b in records(run, "BATCH_COMPLETED")]
    assert len(paid) == 6 and all(0 <= p <= 1 for p in paid)
    assert paid[-1] > 0.9 > paid[0], paid  # the probe is learned: the statistic follows


def test_statistics_reach_tensorboard_under_the_task_group(run: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = next(p.parent for p in run.rglob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(logs))
    accumulator.Reload()
    scalars = accumulator.Scalars("task/paid_fraction")
    assert len(scalars) == 6


def test_the_plot_draws_a_panel_per_statistic(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from esper.runs.curves import read_curves
    from esper.workflows.plot import plot_runs, task_panels

    assert task_panels([read_curves(run)]) == [
        ("task_statistics.paid_fraction", "paid_fraction", "task statistic")
    ]
    xs, ys = read_curves(run).series("task_statistics.paid_fraction")
    assert len(xs) == 6 and ys[-1] > 0.9
    assert plot_runs([run], tmp_path / "curves.png", dpi=40).is_file()


def test_a_statistic_named_like_a_trainer_metric_is_refused() -> None:
    sys.path.insert(0, str(HERE))
    try:
        with pytest.raises(ConfigError, match="declares the statistic 'sps'"):
            esper.train("custom_tasks:ShadowsATrainerMetric", episodes=1, device="cpu")
    finally:
        sys.path.remove(str(HERE))


def test_the_cli_refuses_it_in_one_line_with_exit_2(tmp_path: Path, monkeypatch) -> None:
    """The command through the CLI in this process (a refusal needs no process)."""
    from typer.testing import CliRunner

    from esper.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(HERE))
    done = CliRunner().invoke(
        app,
        ["ppo", "--task", "custom_tasks:ShadowsATrainerMetric", "--episodes", "1",
         "--device", "cpu", "--no-sanctum", "--run-dir", str(tmp_path / "r")],
    )  # fmt: skip
    assert done.exit_code == 2, done.output
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'sps'" in lines[0] and "trainer metric" in lines[0], lines
