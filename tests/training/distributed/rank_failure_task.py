"""A CartPole whose rank 1 raises in its third batch: a rank's own Python error,
after two batches of statistics that differ by rank (rank_statistics_task.py)."""

from __future__ import annotations

import os

from rank_statistics_task import RankStatistics


class BreaksOnRankOne(RankStatistics):
    steps = 0

    def dynamics(self, state, actions):
        self.steps += 1
        if os.environ.get("RANK") == "1" and self.steps > 40:  # 16 steps a batch
            raise ValueError("rank one broke on purpose")
        return super().dynamics(state, actions)
