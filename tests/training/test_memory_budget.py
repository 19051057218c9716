"""A 4,096-env CartPole run stays under 1 GB of process memory: the memory budget
that docs/performance.md measures against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BUDGET_MB = 1024


@pytest.mark.slow
def test_4096_env_cartpole_run_stays_under_one_gigabyte(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "esper", "ppo", "--envs", "4096", "--max-epochs", "64"]
    # One batch holds every allocation of the next (rollout buffers, the update's
    # activations, Adam's moments): its peak is the run's.
    command += ["--episodes", "1", "--device", "cpu", "--no-sanctum", "--run-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    batches = [
        json.loads(line)
        for line in (tmp_path / "telemetry.jsonl").read_text().splitlines()
        if '"BATCH_COMPLETED"' in line
    ]
    peak = max(b["data"]["process_memory_mb"] for b in batches)
    assert 0 < peak < BUDGET_MB, f"peak RSS {peak:.0f} MB"


def test_a_trainer_reports_its_own_peak_not_its_parent_s() -> None:
    """``ru_maxrss`` survives exec: a trainer started by a large process (a test
    runner grown past 1 GB) reported that process's peak as its own."""
    ballast = bytearray(1536 * 2**20)  # the parent holds 1.5 GB, touched
    ballast[::4096] = b"x" * len(ballast[::4096])
    script = "from esper.training.timing import peak_rss_mb; print(peak_rss_mb())"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1024, f"the child reports {float(done.stdout):.0f} MB"
    del ballast
