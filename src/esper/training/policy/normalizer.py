"""Running mean/variance of observations, kept on the device and clipped
to +-10 as in CleanRL's continuous-action PPO.

Updated from whole batches with the parallel-variance formula, so the rollout
never crosses to the host. Its buffers are part of the module's state_dict and
so of every checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        # Several ranks: sums a tensor over them. Each rank folds its own steps in
        # at once and the job's moments are merged once per batch (merge_across),
        # so no collective runs per environment step (training/distributed.py).
        self.sum_across: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._base: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._pending: torch.Tensor | None = None  # [3, *shape]: count, sum, sum of squares

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Fold a ``[B, *shape]`` batch into the running statistics."""
        x = batch.to(torch.float64)
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0, unbiased=False)
        if self.sum_across is not None:
            if self._base is None:  # the job's statistics as of the last merge
                self._base = (self.mean.clone(), self.var.clone(), self.count.clone())
                self._pending = self.mean.new_zeros((3, *self.mean.shape))
            assert self._pending is not None
            # The sums come from the moments already taken: no second pass over x.
            self._pending[0] += n
            self._pending[1] += mean * n
            self._pending[2] += (var + mean.square()) * n
        self._fold(mean, var, n)

    @torch.no_grad()
    def merge_across(self) -> None:
        """Several ranks, once per batch: replace this rank's running view with
        the job's: the last merged statistics plus every rank's steps since."""
        if self.sum_across is None or self._base is None or self._pending is None:
            return
        counts, total, squares = self.sum_across(self._pending).unbind(0)
        self.mean.copy_(self._base[0])
        self.var.copy_(self._base[1])
        self.count.copy_(self._base[2])
        batch_mean = total / counts
        batch_var = (squares / counts - batch_mean.square()).clamp_(min=0.0)
        self._fold(batch_mean, batch_var, counts.reshape(-1)[0])  # the job's step count
        self._base = None

    def _fold(self, batch_mean: torch.Tensor, batch_var: torch.Tensor, n) -> None:
        """Parallel-variance merge of a batch's moments into the running ones."""
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def std(self, dtype: torch.dtype) -> torch.Tensor:
        """The running standard deviation (eps-guarded), cast for the caller."""
        return torch.sqrt(self.var + self.eps).to(dtype)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean.to(x.dtype)) / self.std(x.dtype)).clamp(-self.clip, self.clip)


class RewardScaler(nn.Module):
    """Divide rewards by a running std of the discounted return, as in
    CleanRL's continuous-action PPO.

    No mean is subtracted, so the sign of a reward survives. Each copy keeps its
    own discounted return, reset where its episode ended.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.clip = clip
        self.return_stats = RunningMeanStd(())
        self.register_buffer("discounted_return", torch.zeros(num_envs, dtype=torch.float64))

    @torch.no_grad()
    def scale(self, reward: torch.Tensor, episode_ended: torch.Tensor) -> torch.Tensor:
        self.discounted_return.mul_(self.gamma).add_(reward)
        self.return_stats.update(self.discounted_return)
        self.discounted_return.masked_fill_(episode_ended, 0.0)
        return (reward / self.return_stats.std(reward.dtype)).clamp(-self.clip, self.clip)
