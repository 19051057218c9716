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
        # [2, num_envs]: each copy's running return (row 0) and length (row 1),
        # side by side so that one op records or resets both
        self._running = torch.zeros(2, num_envs, device=device)
        self.running_return, self.running_length = self._running.unbind(0)
        # what a step records where no episode ended: no return (NaN), length 0
        self._nothing = torch.tensor([[float("nan")], [0.0]], device=device)
        self._allocate(horizon)

    def resize(self, horizon: int) -> None:
        """Match the rollout horizon (allocated once per run)."""
        if self.ended_return.shape[0] != horizon:
            self._allocate(horizon)

    def _allocate(self, horizon: int) -> None:
        n = self._running.shape[1]
        # [T, 2, N]: each step's ended returns (NaN where none ended) and lengths;
        # each step's row contiguous, as a compiled step's ``out=`` must be
        ended = self._nothing.expand(horizon, 2, n).clone()
        self.ended_return, self.ended_length = ended.unbind(1)  # [T, N] views
        self._rows = list(ended.unbind(0))  # per-step views [2, N], made once

    def record(self, t: int, reward: torch.Tensor, done: torch.Tensor) -> None:
        """Step ``t`` of the batch: ``[N]`` raw rewards and episode ends."""
        self.record_row(self._rows[t], reward, done)

    def rows(self) -> list[torch.Tensor]:
        """Each step's view ``[2, N]`` (ended returns, ended lengths) of the batch's slab."""
        return self._rows

    def record_row(self, row: torch.Tensor, reward: torch.Tensor, done: torch.Tensor) -> None:
        """``record`` into one step's ``row`` of ``rows()``: no Python index, so a
        compiled rollout step is one graph for every step of the batch. Four ops:
        returns and lengths are recorded and reset together."""
        reward, done = team_step(reward, done, self.n_agents)
        self.running_return += reward
        self.running_length += 1
        torch.where(done, self._running, self._nothing, out=row)
        self._running.masked_fill_(done, 0.0)

    def totals(self) -> dict[str, torch.Tensor]:
        """The batch's episode statistics as named device scalars (BATCH_COMPLETED fields).

        With no finished episode the mean is NaN and min/max are +inf/-inf;
        ``transfer.unpack_device_stats`` turns those into ``None`` on the host.
        """
        # contiguous copies: the sums' rounding is that of a [T, N] tensor's
        returns, lengths = self.ended_return.contiguous(), self.ended_length.contiguous()
        finished = ~torch.isnan(returns)
        count = finished.sum().to(returns.dtype)
        return {
            "episodes_finished": count,
            "episode_return_mean": torch.nansum(returns) / count,
            "episode_return_min": returns.masked_fill(~finished, float("inf")).min(),
            "episode_return_max": returns.masked_fill(~finished, float("-inf")).max(),
            "episode_length_mean": lengths.sum() / count,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "running_return": self.running_return.clone(),
            "running_length": self.running_length.clone(),
        }

    def load_state_dict(self, saved: dict[str, torch.Tensor]) -> None:
        self.running_return.copy_(saved["running_return"])
        self.running_length.copy_(saved["running_length"])
