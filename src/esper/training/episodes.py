"""Complete episodes of a policy on batched environments: the loop ``esper eval`` and
evaluation while training share.

Copy ``i`` contributes its first few finished episodes (slot ``j * copies + i``
holds its ``j``-th), and exactly the first ``episodes`` slots count: fixing which
episodes count before any is run keeps short episodes, which finish sooner,
from being over-represented. Bookkeeping stays on the device. The host either
checks whether all counted episodes are done once every ``check_every`` steps,
or (``check_every=None`` on a task with a time limit) never: the loop then runs
the steps that are sure to finish them, and the results cross once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from esper.envs import BatchedEnv
from esper.envs.agents import team_step

MAX_COPIES = 256  # environments an evaluation steps together at most
NO_TIME_LIMIT_STEPS = 100_000  # per episode, for tasks whose episodes have no time limit
SUMMARY = ("return_mean", "return_std", "return_min", "return_max")
LENGTH_SUMMARY = ("length_mean", "length_min", "length_max")

# (obs [copies, obs_dim], starts [copies] bool, action_mask) -> the env's actions;
# ``starts`` marks the copies whose episode begins with this observation (a
# recurrent policy forgets there; a feed-forward one ignores it); ``action_mask``
# is the env's (``[copies, mask_width]`` bool), None for a task without one.
Act = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class Episodes:
    """The counted episodes, in slot order."""

    returns: torch.Tensor  # [episodes] float64
    lengths: torch.Tensor  # [episodes] int64
    # The task's episode statistics (``BatchedEnv.episode_statistics``), by name:
    # [episodes] float64 each, the value at each episode's end.
    statistics: dict[str, torch.Tensor] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Return and length statistics, and the mean of each episode statistic
        (``episode_statistics``), computed where the episodes are and read in one
        transfer (population std, as ``esper eval`` reports it)."""
        returns, lengths = self.returns, self.lengths.double()
        means = [values.mean() for values in self.statistics.values()]
        packed = torch.stack(
            (
                returns.mean(),
                returns.std(unbiased=False),
                returns.min(),
                returns.max(),
                lengths.mean(),
                lengths.min(),
                lengths.max(),
                *means,
            )
        ).cpu()  # host-sync: once per evaluation
        values = packed.tolist()
        kept = len(SUMMARY + LENGTH_SUMMARY)
        summary: dict[str, Any] = dict(zip(SUMMARY + LENGTH_SUMMARY, values[:kept], strict=True))
        summary["episode_statistics"] = dict(zip(self.statistics, values[kept:], strict=True))
        return summary


class EpisodeSlots:
    """Each copy's first finished episodes, recorded in place on the device.

    Slot ``j * copies + i`` holds copy ``i``'s ``j``-th episode, and the first
    ``episodes`` slots are the ones counted.
    """

    def __init__(
        self, episodes: int, copies: int, device: torch.device, statistics: tuple[str, ...] = ()
    ) -> None:
        self.per_copy = math.ceil(episodes / copies)
        slots = torch.arange(self.per_copy * copies, device=device).view(self.per_copy, copies)
        self.counted = slots < episodes  # [per_copy, copies]
        self.needed = self.counted.sum(0)  # [copies] episodes each copy must finish
        # A row per episode a copy may count, plus one that absorbs the rest.
        rows = self.per_copy + 1
        self.returns = torch.zeros(rows, copies, dtype=torch.float64, device=device)
        self.lengths = torch.zeros(rows, copies, dtype=torch.int64, device=device)
        self.names = statistics  # the task's episode statistics, recorded as the returns are
        self.values = torch.zeros(rows, copies, len(statistics), dtype=torch.float64, device=device)
        self.finished = torch.zeros(copies, dtype=torch.int64, device=device)  # [copies]
        self.running_return = torch.zeros(copies, dtype=torch.float64, device=device)
        self.running_length = torch.zeros(copies, dtype=torch.int64, device=device)
        self.copy_index = torch.arange(copies, device=device)

    def record(
        self, reward: torch.Tensor, done: torch.Tensor, values: torch.Tensor | None = None
    ) -> None:
        """One step of ``[copies]`` rewards and episode ends; ``values``: the task's
        ``[copies, statistics]`` episode values, read where an episode ended."""
        self.running_return += reward
        self.running_length += 1
        at = (self.finished.clamp(max=self.per_copy), self.copy_index)
        self.returns[at] = torch.where(done, self.running_return, self.returns[at])
        self.lengths[at] = torch.where(done, self.running_length, self.lengths[at])
        if values is not None:
            self.values[at] = torch.where(done[:, None], values.double(), self.values[at])
        self.finished += done
        self.running_return.masked_fill_(done, 0.0)
        self.running_length.masked_fill_(done, 0)

    def complete(self) -> torch.Tensor:
        """A device bool: has every counted episode finished?"""
        return (self.finished >= self.needed).all()

    def counted_episodes(self) -> Episodes:
        """The counted episodes, in slot order, where they were recorded."""
        returns = self.returns[: self.per_copy][self.counted]
        lengths = self.lengths[: self.per_copy][self.counted]
        values = self.values[: self.per_copy][self.counted]  # [episodes, statistics]
        statistics = dict(zip(self.names, values.unbind(1), strict=True))
        return Episodes(returns=returns, lengths=lengths, statistics=statistics)

    def collect(self) -> Episodes:
        """The counted episodes, in slot order, on the host."""
        kept = self.counted_episodes()
        return Episodes(
            returns=kept.returns.cpu(),
            lengths=kept.lengths.cpu(),
            statistics={name: values.cpu() for name, values in kept.statistics.items()},
        )


@torch.no_grad()
def play_episodes(
    env: BatchedEnv, act: Act, episodes: int, seed: int, check_every: int | None = 32
) -> Episodes:
    """Reset ``env`` with ``seed`` and run ``act`` until ``episodes`` complete episodes
    have finished on its copies. ``check_every=None`` on a task with a time limit
    asks the host nothing: the episodes stay on the device, for one transfer later.
    With several agents ``act`` acts for every row (``AgentRows``) and an episode
    is a copy's, its return the team's."""
    names = tuple(stat.name for stat in getattr(env, "episode_statistics", ()))
    slots = EpisodeSlots(episodes, env.copies, torch.device(env.device), names)
    per_episode = env.spec.max_episode_steps
    obs = env.reset(seed=seed)
    starts = torch.ones(env.num_envs, dtype=torch.bool, device=torch.device(env.device))  # rows

    def step(obs: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs, reward, terminated, truncated, info = env.step(act(obs, starts, env.action_mask))
        starts = terminated | truncated
        values = env.episode_values(info["final_obs"]) if names else None
        slots.record(*team_step(reward, starts, env.n_agents), values)
        return obs, starts

    if check_every is None and per_episode is not None:
        for _ in range(slots.per_copy * per_episode):  # sure to finish every counted episode
            obs, starts = step(obs, starts)
        return slots.counted_episodes()
    check_every = check_every or 32
    limit = slots.per_copy * (per_episode or NO_TIME_LIMIT_STEPS) + check_every
    for _ in range(0, limit, check_every):
        for _ in range(check_every):
            obs, starts = step(obs, starts)
        if bool(slots.complete()):  # host-sync: every check_every steps, to know when to stop
            return slots.collect()
    raise RuntimeError(
        f"{episodes} episodes of {env.spec.name} did not finish within {limit} steps"
    )
