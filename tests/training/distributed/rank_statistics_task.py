"""A CartPole whose statistics differ by rank, so the job's value tells the
reduction over both ranks' copies from rank 0's own (or a plain mean of the two)."""

from __future__ import annotations

import math
import os

import torch

from esper.envs.base import TaskStatistic
from esper.envs.cartpole import CartPole


class RankStatistics(CartPole):
    statistics = (
        TaskStatistic("steps_taken", "env steps of the batch, all copies", "count"),
        TaskStatistic("weighted", "10 x (rank + 1), weighted by (rank + 1) x steps"),
        TaskStatistic("only_rank_one", "7, reported by rank 1 only"),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.steps_taken = torch.zeros((), device=self.device)

    def dynamics(self, state, actions):
        self.steps_taken += actions.numel()
        return super().dynamics(state, actions)

    def batch_statistics(self):
        rank = int(os.environ.get("RANK", "0"))
        steps = self.steps_taken.clone()
        self.steps_taken.zero_()
        weight = steps * (rank + 1)
        return {
            "steps_taken": steps,
            "weighted": (weight * 10.0 * (rank + 1), weight),
            "only_rank_one": torch.tensor(7.0 if rank == 1 else math.nan),
        }
