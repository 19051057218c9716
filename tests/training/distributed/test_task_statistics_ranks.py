"""Two gloo ranks: a task's statistics in BATCH_COMPLETED are the job's, combined
over both ranks' copies as each statistic's kind says (a count summed, a mean
weighted by its own denominator, a rank with nothing to report adding nothing),
not rank 0's alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DEADLINE_S = 300  # one two-rank launch, imports included, on a busy 2-core machine


def test_task_statistics_are_combined_over_both_ranks(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "esper", "ppo", "--nproc", "2", "--device", "cpu",
        "--task", "rank_statistics_task:RankStatistics", "--envs", "8", "--max-epochs", "16",
        "--episodes", "2", "--run-dir", str(run_dir), "--no-sanctum",
    ]  # fmt: skip
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "ESPER_DIST_TIMEOUT": "30",
               "PYTHONPATH": str(HERE)}  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S, env=environ)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    reported = [
        event["data"]["task_statistics"]
        for event in map(json.loads, lines)
        if event["event_type"] == "BATCH_COMPLETED"
    ]
    assert len(reported) == 2
    for stats in reported:
        assert stats["steps_taken"] == 8 * 16  # both ranks' 4 copies x 16 steps, summed
        # Rank 0: 10 with weight s, rank 1: 20 with weight 2s -> 50 / 3 (not 15, not 10).
        assert stats["weighted"] == pytest.approx(50 / 3)
        assert stats["only_rank_one"] == 7.0  # rank 0's NaN is nothing to report, not a NaN job
