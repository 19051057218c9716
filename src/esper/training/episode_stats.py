"""Episode returns and lengths, tracked on the device across a batch.

Episodes span batches, so each copy's running return and length survive from
one batch to the next (and into checkpoints). Per step the tracker only writes
the returns of the episodes that just ended into a ``[horizon, n_envs]``
slab (NaN elsewhere); the batch's count, mean, min and max are reduced from it
once, at the end, and cross to the host with the rest of the batch's numbers.
"""

from __future__ import annotations

import torch

from esper.envs.agents import team_step


class EpisodeTracker:
    def __init__(
        self, num_envs: int, device: torch.device, horizon: int = 1, n_agents: int = 1
    ) -> None:
        """``num_envs`` copies; with ``n_agents`` > 1 the rollout's rows are their
        agents, and an episode is a copy's, its return the team's (``team_step``)."""
        self.n_agents = n_agents
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
        self.record_row(self._rows[t], reward, done)

    def rows(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each step's views ``(ended_return, ended_length)`` of the batch's slab."""
        return self._rows

    def record_row(
        self, row: tuple[torch.Tensor, torch.Tensor], reward: torch.Tensor, done: torch.Tensor
    ) -> None:
        """``record`` into one step's ``row`` of ``rows()``: no Python index, so a
        compiled rollout step is one graph for every step of the batch."""
        reward, done = team_step(reward, done, self.n_agents)
        self.running_return += reward
        self.running_length += 1
        ended_return, ended_length = row
        torch.where(done, self.running_return, self._nan, out=ended_return)
        torch.where(done, self.running_length, self._zero, out=ended_length)
        self.running_return.masked_fill_(done, 0.0)
        self.running_length.masked_fill_(done, 0.0)

    def totals(self) -> dict[str, torch.Tensor]:
        """The batch's episode statistics as named device scalars (BATCH_COMPLETED fields).

        With no finished episode the mean is NaN and min/max are +inf/-inf;
        ``transfer.unpack_device_stats`` turns those into ``None`` on the host.
        """
        finished = ~torch.isnan(self.ended_return)
        count = finished.sum().to(self.ended_return.dtype)
        return {
            "episodes_finished": count,
            "episode_return_mean": torch.nansum(self.ended_return) / count,
            "episode_return_min": self.ended_return.masked_fill(~finished, float("inf")).min(),
            "episode_return_max": self.ended_return.masked_fill(~finished, float("-inf")).max(),
            "episode_length_mean": self.ended_length.sum() / count,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "running_return": self.running_return.clone(),
            "running_length": self.running_length.clone(),
        }

    def load_state_dict(self, saved: dict[str, torch.Tensor]) -> None:
        self.running_return.copy_(saved["running_return"])
        self.running_length.copy_(saved["running_length"])
