"""Two gloo ranks: a task's statistics in BATCH_COMPLETED are the job's, combined
over both ranks' copies as each statistic's kind says (a count summed, a mean
weighted by its own denominator, a rank with nothing to report adding nothing),
not rank 0's alone."""

from __future__ import annotations

import json

import pytest
from broken_job import RANK_ONE_BREAKS, BrokenJob


@RANK_ONE_BREAKS
def test_task_statistics_are_combined_over_both_ranks(rank_one_breaks: BrokenJob) -> None:
    """The job of conftest.py's fixture: its two batches before rank 1 breaks."""
    lines = (rank_one_breaks.run_dir / "telemetry.jsonl").read_text().splitlines()
    reported = [
        (event["batch"], event["data"]["task_statistics"])
        for event in map(json.loads, lines)
        if event["event_type"] == "BATCH_COMPLETED"
    ]
    assert [batch for batch, _ in reported] == [1, 2], rank_one_breaks.stderr[-3000:]
    for _, stats in reported:
        assert stats["steps_taken"] == 8 * 16  # both ranks' 4 copies x 16 steps, summed
        # Rank 0: 10 with weight s, rank 1: 20 with weight 2s -> 50 / 3 (not 15, not 10).
        assert stats["weighted"] == pytest.approx(50 / 3)
        assert stats["only_rank_one"] == 7.0  # rank 0's NaN is nothing to report, not a NaN job
