"""The job that test_rank_failures.py and test_task_statistics_ranks.py share
(conftest.py's ``rank_one_breaks`` fixture launches it): its record, and the
mark that keeps its tests on one worker, so that it launches once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

RANK_ONE_BREAKS = pytest.mark.xdist_group("rank_one_breaks")


@dataclass(frozen=True)
class BrokenJob:
    run_dir: Path
    returncode: int
    stderr: str
