"""Episode returns and lengths, accumulated on the device across a batch.

Episodes span batches, so the per-copy running return survives from one batch
to the next (and into checkpoints). Finished-episode totals are reset each
batch and cross to the host once, with the rest of the batch's statistics.
"""

from __future__ import annotations

from typing import Any

import torch


class EpisodeTracker:
    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.running_return = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.running_length = torch.zeros(num_envs, dtype=torch.int64, device=device)
        # count, return sum, return min, return max, length sum
        self.totals = torch.zeros(5, dtype=torch.float64, device=device)
        self.start_batch()

    def start_batch(self) -> None:
        self.totals[0:2].zero_()
        self.totals[2] = float("inf")
        self.totals[3] = float("-inf")
        self.totals[4] = 0.0

    def record(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        """Fold one step of ``[N]`` raw rewards and episode ends into the totals."""
        self.running_return += reward
        self.running_length += 1
        ended_return = self.running_return * done
        self.totals[0] += done.sum()
        self.totals[1] += ended_return.sum()
        self.totals[2] = torch.minimum(
            self.totals[2], self.running_return.masked_fill(~done, float("inf")).min()
        )
        self.totals[3] = torch.maximum(
            self.totals[3], self.running_return.masked_fill(~done, float("-inf")).max()
        )
        self.totals[4] += (self.running_length * done).sum()
        self.running_return.masked_fill_(done, 0.0)
        self.running_length.masked_fill_(done, 0)

    @staticmethod
    def summarize(totals: list[float]) -> dict[str, Any]:
        """Host-side fields of BATCH_COMPLETED from the transferred totals."""
        count = int(totals[0])  # host-sync: none, a host float after the transfer
        if count == 0:
            return {
                "episodes_finished": 0,
                "episode_return_mean": None,
                "episode_return_min": None,
                "episode_return_max": None,
                "episode_length_mean": None,
            }
        return {
            "episodes_finished": count,
            "episode_return_mean": totals[1] / count,
            "episode_return_min": totals[2],
            "episode_return_max": totals[3],
            "episode_length_mean": totals[4] / count,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "running_return": self.running_return.clone(),
            "running_length": self.running_length.clone(),
        }

    def load_state_dict(self, saved: dict[str, torch.Tensor]) -> None:
        self.running_return.copy_(saved["running_return"])
        self.running_length.copy_(saved["running_length"])
