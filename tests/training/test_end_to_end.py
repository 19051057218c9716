"""`esper ppo` writes the telemetry record, and a fresh process resumes from it.

The first run goes through the CLI in the test's process (no torch import to pay
for; the record is the same); the resume is ``python -m esper`` of its own, the
fresh process that must find everything in the run dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_end_to_end")

SMALL = ["--envs", "8", "--max-epochs", "16", "--device", "cpu", "--no-sanctum"]


def esper(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "esper", *args], capture_output=True, text=True, timeout=300
    )


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "telemetry.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, int]:
    run_dir = tmp_path_factory.mktemp("run")
    from typer.testing import CliRunner

    from esper.cli import app

    first = CliRunner().invoke(app, ["ppo", "--episodes", "3", "--run-dir", str(run_dir), *SMALL])
    assert first.exit_code == 0, first.output
    first_count = len(events(run_dir))
    second = esper(
        "ppo", "--episodes", "2", "--start-episode", "3", "--run-dir", str(run_dir), *SMALL
    )
    assert second.returncode == 0, second.stderr
    return run_dir, second, first_count


def test_fresh_run_writes_the_record(resumed_run) -> None:
    run_dir, _, first_count = resumed_run
    record = events(run_dir)[:first_count]
    kinds = [e["event_type"] for e in record]
    assert kinds[0] == "TRAINING_STARTED"
    assert kinds[-1] == "TRAINING_COMPLETED"
    started = record[0]["data"]
    assert (started["max_batches"], started["start_batch"]) == (3, 0)
    assert (started["n_envs"], started["max_epochs"], started["task"]) == (8, 16, "cartpole")
    assert started["policy_params"] > 0 and started["config"]["n_envs"] == 8
    batches = [e for e in record if e["event_type"] == "BATCH_COMPLETED"]
    assert [e["batch"] for e in batches] == [1, 2, 3]
    assert [e["data"]["env_steps"] for e in batches] == [128, 256, 384]
    for name in (
        "sps",
        "batch_seconds",
        "episodes_finished",
        "episode_return_mean",
        "episode_length_mean",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "explained_variance",
        "learning_rate",
        "grad_norm",
    ):
        assert name in batches[0]["data"]
    assert "CHECKPOINT_SAVED" in kinds
    for line in record:
        assert set(line) == {"event_type", "timestamp", "group_id", "batch", "message", "data"}
        assert line["timestamp"].endswith("+00:00")


def test_resume_appends_and_continues_the_count(resumed_run) -> None:
    run_dir, second, first_count = resumed_run
    record = events(run_dir)
    resumed = record[first_count:]
    assert resumed[0]["event_type"] == "TRAINING_STARTED"
    assert (resumed[0]["data"]["max_batches"], resumed[0]["data"]["start_batch"]) == (5, 3)
    assert resumed[0]["group_id"] == record[0]["group_id"]  # the same run, continued
    batches = [e for e in resumed if e["event_type"] == "BATCH_COMPLETED"]
    assert [e["batch"] for e in batches] == [4, 5]
    assert batches[0]["data"]["env_steps"] == 3 * 128 + 128
    assert resumed[-1]["event_type"] == "TRAINING_COMPLETED"
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["batch_000003.pt", "batch_000005.pt"]
    assert "batch 5/5" in second.stdout


def test_learning_rate_schedule_continues_across_resume(resumed_run) -> None:
    run_dir, _, _ = resumed_run
    record = events(run_dir)
    rates = [e["data"]["learning_rate"] for e in record if e["event_type"] == "BATCH_COMPLETED"]
    base = record[0]["data"]["config"]["learning_rate"]
    # The first run planned 3 batches, the resume re-plans to 5 from where it stands.
    assert rates[:3] == pytest.approx([base, base * 2 / 3, base / 3])
    assert rates[3:] == pytest.approx([base * (1 - 3 / 5), base * (1 - 4 / 5)])
