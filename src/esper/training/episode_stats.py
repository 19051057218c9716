"""Episode returns and lengths, tracked on the device across a batch.

Episodes span batches, so each copy's running return and length survive from
one batch to the next (and into checkpoints). Per step the tracker only writes
the returns of the episodes that just ended into a ``[horizon, n_envs]``
slab (NaN elsewhere); the batch's count, mean, min and max are reduced from it
once, at the end, and cross to the host with the rest of the batch's numbers.
"""

from __future__ import annotations

from typing import Any

import torch


class EpisodeTracker:
    def __init__(self, num_envs: int, device: torch.device, horizon: int = 1) -> None:
        self.running_return = torch.zeros(num_envs, device=device)
        self.running_length = torch.zeros(num_envs, device=device)
        self._allocate(horizon)
        self._nan = torch.tensor(float("nan"), device=device)
        self._zero = torch.tensor(0.0, device=device)

    def resize(self, horizon: int) -> None:
        """Match the rollout horizon (allocated once per run)."""
        if self.ended_return.shape[0] != horizon:
            self._allocate(horizon)

    def _allocate(self, horizon: int) -> None:
        n, device = self.running_return.shape[0], self.running_return.device
        self.ended_return = torch.full((horizon, n), float("nan"), device=device)  # [T, N]
        self.ended_length = torch.zeros(horizon, n, device=device)  # [T, N]
        rows = zip(self.ended_return.unbind(0), self.ended_length.unbind(0), strict=True)
        self._rows = list(rows)  # per-step views, made once

    def record(self, t: int, reward: torch.Tensor, done: torch.Tensor) -> None:
        """Step ``t`` of the batch: ``[N]`` raw rewards and episode ends."""
        self.running_return += reward
        self.running_length += 1
        ended_return, ended_length = self._rows[t]
        torch.where(done, self.running_return, self._nan, out=ended_return)
        torch.where(done, self.running_length, self._zero, out=ended_length)
        self.running_return.masked_fill_(done, 0.0)
        self.running_length.masked_fill_(done, 0.0)

    def totals(self) -> torch.Tensor:
        """``[5]`` on the device: count, return sum, min, max, length sum."""
        finished = ~torch.isnan(self.ended_return)
        return torch.stack(
            (
                finished.sum().to(self.ended_return.dtype),
                torch.nansum(self.ended_return),
                self.ended_return.masked_fill(~finished, float("inf")).min(),
                self.ended_return.masked_fill(~finished, float("-inf")).max(),
                self.ended_length.sum(),
            )
        )

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
