"""A 4,096-env CartPole run stays under 1 GB of process memory: the memory budget
that docs/performance.md measures against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BUDGET_MB = 1024


def test_4096_env_cartpole_run_stays_under_one_gigabyte(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "esper", "ppo", "--envs", "4096", "--max-epochs", "64"]
    command += ["--episodes", "2", "--device", "cpu", "--no-sanctum", "--run-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    batches = [
        json.loads(line)
        for line in (tmp_path / "telemetry.jsonl").read_text().splitlines()
        if '"BATCH_COMPLETED"' in line
    ]
    peak = max(b["data"]["process_memory_mb"] for b in batches)
    assert 0 < peak < BUDGET_MB, f"peak RSS {peak:.0f} MB"
