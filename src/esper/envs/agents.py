"""Agents as rows of the batch: a multi-agent task seen as a single-agent one.

A task with ``spec.n_agents = A > 1`` steps ``n`` copies with observations
``[n, A, obs_dim]``, rewards ``[n, A]`` and per-copy ends ``[n]``.
``AgentRows`` shows the trainer ``n * A`` rows instead (row ``c * A + a`` is
agent ``a`` of copy ``c``), so the rollout, GAE, the update and the one host
transfer keep their single-agent shapes: one policy, its parameters shared by
every agent, acts for every row. Each row's observation is, in order:

- the agent's own actor entries;
- with ``agent_id``, a one-hot of the agent's index (``A`` entries), so the
  shared policy can still act differently per agent;
- the agent's own critic-only entries (``spec.critic_obs_dim``), if any;
- with ``critic = "central"`` (MAPPO), the copy's global state: the task's
  ``global_state()`` when ``spec.global_state_dim > 0``, else every agent's
  observation concatenated. Critic-only, like the entries before it: the
  actor, and so every deployed policy, reads one agent's observation and id.

With ``critic = "local"`` (IPPO) each agent's critic reads what its actor
reads. A copy's end is every one of its rows' end; the team's return is the
mean over agents of their returns, counted once per copy (``team_step``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from esper.envs.base import EnvSpec, SpecShapes, StepResult, TaskStatistic
from esper.envs.registry import make
from esper.runtime.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AgentLayout:
    """How one agent's row is laid out, from the task's spec and the run's settings."""

    n_agents: int
    obs_dim: int  # one agent's observation, as the task gives it
    actor_dim: int  # of which the actor reads the first entries
    id_dim: int  # the agent-id one-hot: n_agents, or 0
    global_dim: int  # the central critic's entries: 0 for a local critic

    @property
    def row_dim(self) -> int:
        return self.obs_dim + self.id_dim + self.global_dim

    @property
    def critic_only(self) -> int:
        return self.obs_dim - self.actor_dim + self.global_dim


def layout_for(spec: EnvSpec, settings: Mapping[str, Any]) -> AgentLayout:
    """The rows ``settings`` (a run's config, as a dict) make of ``spec``'s agents.

    Refuses, naming the setting, a critic the config cannot build: ``central``
    on a single-agent task with nothing for a central critic to read."""
    critic = str(settings.get("critic", "local"))
    if critic == "central" and not spec.is_multi_agent and not spec.critic_obs_dim:
        raise ConfigError(
            "critic",
            f"central reads every agent's observation, and {spec.name} has one agent and "
            "no critic-only entries; use critic = local",
        )
    many = spec.is_multi_agent
    with_ids = settings.get("agent_id", True) is not False
    if many and len(spec.obs_shape) != 1:
        raise ConfigError("task", f"{spec.name}: several agents need flat observations")
    central = many and critic == "central"
    global_dim = (spec.global_state_dim or spec.n_agents * spec.obs_dim) if central else 0
    return AgentLayout(
        n_agents=spec.n_agents,
        obs_dim=spec.obs_dim,
        actor_dim=spec.actor_obs_dim,
        id_dim=spec.n_agents if many and with_ids else 0,
        global_dim=global_dim,
    )


def row_spec(spec: EnvSpec, settings: Mapping[str, Any]) -> EnvSpec:
    """The single-agent spec of one row: what the policy is built for. A
    single-agent task's own spec, unchanged."""
    layout = layout_for(spec, settings)
    if not spec.is_multi_agent:
        return spec
    return dataclasses.replace(
        spec,
        obs_dim=layout.row_dim,
        obs_shape=None,
        critic_obs_dim=layout.critic_only,
        n_agents=1,
        global_state_dim=0,
    )


def team_step(
    reward: torch.Tensor, ended: torch.Tensor, n_agents: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows' ``[n * A]`` rewards and ends as the copies' ``[n]``: the mean reward
    over a copy's agents (a team reward, when they share one) and its end."""
    if n_agents == 1:
        return reward, ended
    return reward.view(-1, n_agents).mean(1), ended.view(-1, n_agents)[:, 0]


class AgentRows(SpecShapes):
    """A multi-agent task's copies as ``num_envs * n_agents`` single-agent rows.

    ``num_envs`` counts rows (what the rollout sizes its buffer by) and
    ``copies`` the task's copies. Everything else (drawn initial states,
    checkpoints, videos, statistics) is the task's.
    """

    def __init__(self, task: Any, settings: Mapping[str, Any]) -> None:
        self.task = task
        self.layout = layout_for(task.spec, settings)
        self.spec = row_spec(task.spec, settings)
        self.num_envs = task.num_envs * task.spec.n_agents
        self.device = torch.device(task.device)
        self.on_device = getattr(task, "on_device", True)
        self.restorable = getattr(task, "restorable", True)
        self.render_fps = getattr(task, "render_fps", 30)
        copies, agents = self.copies, self.n_agents
        self._ids = torch.eye(agents, device=self.device).expand(copies, agents, agents)
        # Each agent's running return, and the returns of the batch's ended episodes.
        self._running = torch.zeros(copies, agents, device=self.device)
        self._ended_sum = torch.zeros(agents, device=self.device)
        self._ended_count = torch.zeros((), device=self.device)
        self.statistics = (*task.statistics, *agent_statistics(self.n_agents))
        self.episode_statistics = tuple(getattr(task, "episode_statistics", ()))
        self._task_final_obs: torch.Tensor | None = None  # the last step's, the task's shape

    @property
    def copies(self) -> int:
        return self.task.num_envs

    @property
    def n_agents(self) -> int:
        return self.task.spec.n_agents

    @property
    def action_mask(self) -> torch.Tensor | None:  # type: ignore[override]
        mask = self.task.action_mask
        return None if mask is None else mask.view(self.num_envs, -1)

    @property
    def takes_drawn_states(self) -> bool:
        return getattr(self.task, "takes_drawn_states", False) is True

    def draw_initial_states(self, steps: int) -> torch.Tensor:
        return self.task.draw_initial_states(steps)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        obs = self.task.reset(seed=seed)
        self._check_agents(obs)
        self._running.zero_()
        return self.rows(obs, self._global_state(obs, None))

    def step(self, actions: torch.Tensor, fresh: torch.Tensor | None = None) -> StepResult:
        """One step of every copy from the rows' ``[n * A, ...]`` actions."""
        per_agent = actions.view(self.copies, self.n_agents, *actions.shape[1:])
        stepped = self.task.step(per_agent) if fresh is None else self.task.step(per_agent, fresh)
        obs, reward, terminated, truncated, info = stepped
        if reward.dim() == 1:  # one team reward: every agent's
            reward = reward.unsqueeze(1).expand(self.copies, self.n_agents)
        self._record(reward, terminated | truncated)
        final = self._task_final_obs = info["final_obs"]
        rows_info = {"final_obs": self.rows(final, self._global_state(final, info, "final_"))}
        if "action_mask" in info:
            rows_info["action_mask"] = info["action_mask"].view(self.num_envs, -1)
        return (
            self.rows(obs, self._global_state(obs, info)),
            reward.reshape(self.num_envs),
            self._per_row(terminated),
            self._per_row(truncated),
            rows_info,
        )

    def rows(self, obs: torch.Tensor, global_state: torch.Tensor | None) -> torch.Tensor:
        """``[n, A, obs_dim]`` observations (and ``[n, G]`` global states) as
        ``[n * A, row_dim]`` rows, laid out as the module's docstring says."""
        layout = self.layout
        parts = [obs[..., : layout.actor_dim]]
        if layout.id_dim:
            parts.append(self._ids.to(obs.dtype))
        if layout.obs_dim > layout.actor_dim:
            parts.append(obs[..., layout.actor_dim :])
        if layout.global_dim:
            assert global_state is not None
            shape = (self.copies, self.n_agents, layout.global_dim)
            parts.append(global_state.to(obs.dtype).unsqueeze(1).expand(shape))
        return torch.cat(parts, dim=-1).reshape(self.num_envs, layout.row_dim)

    def _global_state(
        self, obs: torch.Tensor, info: dict[str, torch.Tensor] | None, prefix: str = ""
    ) -> torch.Tensor | None:
        """The copies' global state: the task's (``info`` after a step, else its
        ``global_state`` of the current state), or the agents' observations."""
        if not self.layout.global_dim:
            return None
        if not self.task.spec.global_state_dim:
            return obs.flatten(1)
        if info is None:
            return self.task.global_state(self.task.state)
        return info[f"{prefix}global_state"]

    def _per_row(self, flags: torch.Tensor) -> torch.Tensor:
        return flags.unsqueeze(1).expand(self.copies, self.n_agents).reshape(self.num_envs)

    def _check_agents(self, obs: torch.Tensor) -> None:
        """An agent count the observations do not show: one line naming the task."""
        expected = (self.copies, self.n_agents, self.layout.obs_dim)
        if tuple(obs.shape) != expected:
            raise ConfigError(
                "task",
                f"{self.task.spec.name} declares n_agents = {self.n_agents} and obs_dim = "
                f"{self.layout.obs_dim}, but observes {list(obs.shape)} for {self.copies} "
                f"copies (expected {list(expected)})",
            )

    def _record(self, reward: torch.Tensor, ended: torch.Tensor) -> None:
        """Each agent's return, summed over the episodes that end here (in place)."""
        self._running += reward
        ends = ended.unsqueeze(1)
        self._ended_sum += torch.where(ends, self._running, 0.0).sum(0)
        self._ended_count += ended.sum()
        self._running.masked_fill_(ends, 0.0)

    def batch_statistics(self) -> dict[str, Any]:
        """The task's statistics and each agent's mean return over the episodes
        that ended since the last call, as ``(total, episodes)`` (a weighted mean
        over ranks; NaN when no episode ended)."""
        totals = self._ended_sum.clone().unbind(0)  # copies: the sums are zeroed below
        count = self._ended_count.clone()
        names = [statistic.name for statistic in agent_statistics(self.n_agents)]
        agents = {name: (total, count) for name, total in zip(names, totals, strict=True)}
        self._ended_sum.zero_()
        self._ended_count.zero_()
        return {**self.task.batch_statistics(), **agents}

    def episode_values(self, final_obs: torch.Tensor) -> torch.Tensor:
        """The task's ``[copies, statistics]`` episode values, from the task's own
        final observations of the last step (not the rows' ``final_obs``)."""
        return self.task.episode_values(self._task_final_obs)

    def start_facts(self) -> dict[str, Any]:
        return self.task.start_facts()

    def state_dict(self) -> dict[str, Any]:
        return {"task": self.task.state_dict(), "agent_returns": self._running.clone()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.task.load_state_dict(saved["task"])
        self._running.copy_(saved["agent_returns"])

    def render(self, index: int = 0) -> Any:
        return self.task.render(index)

    def close(self) -> None:
        close = getattr(self.task, "close", None)
        if close is not None:
            close()


def agent_statistics(n_agents: int) -> tuple[TaskStatistic, ...]:
    """``agent_<i>_return``: agent ``i``'s mean episode return in the batch."""
    return tuple(
        TaskStatistic(f"agent_{i}_return", f"agent {i}'s mean episode return in the batch")
        for i in range(n_agents)
    )


# The rows of a task's observations as it gives them: no agent id, no global state.
AS_GIVEN: Mapping[str, Any] = {"agent_id": False, "critic": "local"}


def as_rows(env: Any, settings: Mapping[str, Any]) -> Any:
    """``env`` as the trainer steps it: a multi-agent task's ``AgentRows``, any
    other env itself (after refusing a critic it cannot build)."""
    layout_for(env.spec, settings)
    return AgentRows(env, settings) if env.spec.is_multi_agent else env


def make_rows(
    task: str,
    num_envs: int,
    device: torch.device | str,
    seed: int,
    settings: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
) -> Any:
    """``make`` of ``num_envs`` copies of ``task`` (with its ``options``), as the
    trainer steps them (``as_rows``, laid out by the run's ``settings``): what
    training, evaluation, videos and ``esper eval`` all build."""
    return as_rows(make(task, num_envs, device, seed=seed, options=options), settings)
