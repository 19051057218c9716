"""Make this folder's helpers importable by name (``from test_distributed import
launched``, the workers torchrun starts): ``--import-mode=importlib`` puts no
test directory on ``sys.path``. And the job two modules share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from broken_job import BrokenJob  # noqa: E402 (found through the path above)

DEADLINE_S = 300  # one two-rank launch, imports included, on a busy 2-core machine


@pytest.fixture(scope="session")
def rank_one_breaks(tmp_path_factory: pytest.TempPathFactory) -> BrokenJob:
    """``esper ppo --nproc 2`` on a CartPole whose statistics differ by rank and
    whose rank 1 raises in its third batch (rank_failure_task.py): two batches of
    the job's statistics (test_task_statistics_ranks.py), then a rank's own Python
    error (test_rank_failures.py). One job for both: a 2-rank start costs three
    torch imports."""
    run_dir = tmp_path_factory.mktemp("rank_one_breaks") / "run"
    command = [
        sys.executable, "-m", "esper", "ppo", "--nproc", "2", "--device", "cpu",
        "--task", "rank_failure_task:BreaksOnRankOne", "--envs", "8", "--max-epochs", "16",
        "--episodes", "20", "--run-dir", str(run_dir), "--no-sanctum",
    ]  # fmt: skip
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "ESPER_DIST_TIMEOUT": "30",
               "PYTHONPATH": HERE}  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S, env=environ)
    return BrokenJob(run_dir, done.returncode, done.stderr)
