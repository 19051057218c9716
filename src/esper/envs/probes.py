"""Probe tasks: eleven tiny environments, each with one thing to learn.

Each isolates one part of PPO, so when that part breaks its probe fails by
itself with a value or a probability that says which part, where a full
learning test only says "did not learn":

- ``probe-constant``: one observation, one action, reward 1, one step. The
  value must become 1: value fitting.
- ``probe-observation``: observation +1 or -1, reward equal to it, one step.
  The value must follow the observation: the critic sees the observation.
- ``probe-delayed``: two steps, reward 1 only at the second. The value of the
  first step must be ``gamma``: discounting and bootstrapping across steps.
- ``probe-action``: two actions, reward +1 for action 1 and -1 for action 0,
  one step. The policy must pick action 1: the advantage's sign and the
  policy gradient.
- ``probe-observation-action``: observation +1 or -1, reward +1 when the
  action (0 or 1) agrees with its sign. The policy must condition on the
  observation: advantage and policy gradient per state.

One has a privileged critic (``EnvSpec.critic_obs_dim``):

- ``probe-privileged``: the observation is ``[1, s]`` where ``s`` (+1 or -1)
  is for the critic only; reward ``s``, one step. The value must follow ``s``,
  which the actor never sees: critic-only entries reach the critic.

Two more need memory, and so a recurrent policy (``recurrent = "gru"``):

- ``probe-recall``: observation +1 or -1, then 0; the second step pays +1
  when the action agrees with the first observation's sign, -1 otherwise. A
  feed-forward policy earns 0 on average: the core carries the cue.
- ``probe-episode-start``: the observation is always 1 and an episode lasts
  1, 2 or 3 steps, drawn at its start and never shown. Action 1 pays +1 on an
  episode's first step and -1 after it; action 0 the reverse. Only a memory
  zeroed where an episode begins tells the first step from the others: the
  reset of the recurrent state at episode ends.

One needs the action mask (``EnvSpec.has_action_mask``), and reports a task
statistic (``TaskStatistic``):

- ``probe-mask``: the observation is always 1 and one of three actions,
  drawn at the episode's start and never shown, is forbidden. The lowest
  allowed action pays +1, any other action -1, one step. A policy that
  prefers action 0, then 1, then 2 and is masked earns +1 every time; one
  that ignores the mask earns 1/3 at best (the forbidden action is 0 a third
  of the time): the mask reaches acting and the update. Its statistic
  ``paid_fraction`` is the batch's fraction of steps that paid.

Two have two agents (``EnvSpec.n_agents``; envs/agents.py), one policy acting
for both, and one team reward:

- ``probe-central``: agent ``i`` observes its own sign ``s_i`` (+1 or -1)
  and has one action; the team is paid ``s_0 * s_1``, one step. An agent's
  own sign says nothing of that product: a local critic's value stays 0 and
  explains none of the return's variance, while a central critic
  (``critic = "central"``), which reads both signs, explains all of it.
- ``probe-roles``: every agent observes 1; the team is paid 1 when agent 0
  takes action 0 and agent 1 action 1, else 0, one step. Both actions count,
  and only the agent id (``agent_id = true``) tells the shared policy which
  agent it acts for: without it the team earns 1/4 at best.

``state`` is ``[observation, step]``: the probe's observation and the step
within the episode (the memory probes add a third column).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from esper.envs.base import BatchedEnv, EnvSpec, TaskStatistic, Transition
from esper.envs.spaces import DiscreteSpace

# Enough updates for every probe to settle, in a few seconds on a CPU.
PROBE_CONFIG: dict[str, Any] = {
    "n_envs": 32,
    "horizon": 8,
    "n_minibatches": 2,
    "update_epochs": 4,
    "learning_rate": 0.01,
    "anneal_lr": False,
    "ent_coef": 0.0,
    "hidden_sizes": [16],
}


class Probe(BatchedEnv):
    """Shared mechanics: a one-number observation, episodes of ``LENGTH`` steps."""

    LENGTH: ClassVar[int] = 1
    RANDOM_SIGN: ClassVar[bool] = False  # observation drawn as +1 or -1 (else always 1)
    default_config: ClassVar[dict[str, Any]] = PROBE_CONFIG

    def initial_state(self, n: int) -> torch.Tensor:
        observation = torch.ones(n, 1, device=self.device, dtype=self.dtype)
        if self.RANDOM_SIGN:
            observation = self.uniform(n, 1, -1.0, 1.0).sign_()
        return torch.cat((observation, torch.zeros_like(observation)), dim=1)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, :1].to(torch.float32)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        observation, step = state.unbind(1)
        next_step = step + 1
        reward = self.reward(observation, step, actions.to(state.dtype))
        terminated = next_step >= self.LENGTH
        next_observation = torch.where(terminated, observation, observation.neg())
        return torch.stack((next_observation, next_step), dim=1), reward, terminated

    def reward(
        self, observation: torch.Tensor, step: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


def _spec(name: str, actions: int, length: int) -> EnvSpec:
    # the time limit is never reached: every probe ends its episode by itself
    return EnvSpec(name, "", 1, 2, DiscreteSpace(actions), max_episode_steps=length + 1)


class ConstantProbe(Probe):
    spec = _spec("probe-constant", 1, 1)

    def reward(self, observation, step, action):
        return torch.ones_like(observation)


class ObservationProbe(Probe):
    spec = _spec("probe-observation", 1, 1)
    RANDOM_SIGN = True

    def reward(self, observation, step, action):
        return observation


class DelayedProbe(Probe):
    """Step 0 observes +1, step 1 observes -1 and pays 1."""

    spec = _spec("probe-delayed", 1, 2)
    LENGTH = 2

    def reward(self, observation, step, action):
        return (step == 1).to(observation.dtype)


class ActionProbe(Probe):
    spec = _spec("probe-action", 2, 1)

    def reward(self, observation, step, action):
        return action * 2 - 1


class ObservationActionProbe(Probe):
    spec = _spec("probe-observation-action", 2, 1)
    RANDOM_SIGN = True

    def reward(self, observation, step, action):
        return (action * 2 - 1) * observation


class PrivilegedProbe(Probe):
    """``[1, s, step]``: observes ``[1, s]``, the last entry for the critic only."""

    spec = EnvSpec(
        "probe-privileged", "", 2, 3, DiscreteSpace(1), max_episode_steps=2, critic_obs_dim=1
    )

    def initial_state(self, n: int) -> torch.Tensor:
        secret = self.uniform(n, 1, -1.0, 1.0).sign_()
        ones = torch.ones_like(secret)
        return torch.cat((ones, secret, torch.zeros_like(secret)), dim=1)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, :2].to(torch.float32)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        _, secret, step = state.unbind(1)
        return state, secret, step + 1 >= 1


# The memory probes' settings: PROBE_CONFIG's, the horizon a few episodes long.
MEMORY_PROBE_CONFIG: dict[str, Any] = {**PROBE_CONFIG, "horizon": 16, "rnn_hidden": 16}


class RecallProbe(Probe):
    """``[observation, step, cue]``: the cue is step 0's observation, then hidden."""

    spec = EnvSpec("probe-recall", "", 1, 3, DiscreteSpace(2), max_episode_steps=3)
    default_config = MEMORY_PROBE_CONFIG

    def initial_state(self, n: int) -> torch.Tensor:
        cue = self.uniform(n, 1, -1.0, 1.0).sign_()
        return torch.cat((cue, torch.zeros_like(cue), cue), dim=1)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        _, step, cue = state.unbind(1)
        agrees = (actions.to(state.dtype) * 2 - 1) * cue
        reward = torch.where(step == 1, agrees, torch.zeros_like(agrees))
        next_step = step + 1
        next_state = torch.stack((torch.zeros_like(cue), next_step, cue), dim=1)
        return next_state, reward, next_step >= 2


class EpisodeStartProbe(Probe):
    """``[1, step, length]``: the episode's length (1 to 3) is drawn with its start."""

    spec = EnvSpec("probe-episode-start", "", 1, 3, DiscreteSpace(2), max_episode_steps=4)
    default_config = MEMORY_PROBE_CONFIG

    def initial_state(self, n: int) -> torch.Tensor:
        length = self.uniform(n, 1, 1.0, 4.0).floor_()  # 1, 2 or 3
        ones = torch.ones_like(length)
        return torch.cat((ones, torch.zeros_like(length), length), dim=1)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        observation, step, length = state.unbind(1)
        first = torch.where(step == 0, 1.0, -1.0).to(state.dtype)
        reward = (actions.to(state.dtype) * 2 - 1) * first
        next_step = step + 1
        next_state = torch.stack((observation, next_step, length), dim=1)
        return next_state, reward, next_step >= length


class MaskProbe(Probe):
    """``[1, step, forbidden]``: the forbidden action (0, 1 or 2) is drawn with
    the episode; only the mask tells it."""

    spec = EnvSpec(
        "probe-mask", "", 1, 3, DiscreteSpace(3), max_episode_steps=2, has_action_mask=True
    )
    statistics = (
        TaskStatistic("paid_fraction", "fraction of the batch's steps whose action paid +1"),
    )

    def __init__(self, num_envs: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(num_envs, *args, **kwargs)
        # The batch's paying steps and all its steps, summed on the device.
        self.paid = torch.zeros((), device=self.device)
        self.steps = torch.zeros((), device=self.device)

    def initial_state(self, n: int) -> torch.Tensor:
        forbidden = self.uniform(n, 1, 0.0, 3.0).floor_()
        ones = torch.ones_like(forbidden)
        return torch.cat((ones, torch.zeros_like(forbidden), forbidden), dim=1)

    def legal_actions(self, state: torch.Tensor) -> torch.Tensor:
        actions = torch.arange(3, device=state.device, dtype=state.dtype)
        return actions != state[:, 2:]

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        observation, step, forbidden = state.unbind(1)
        lowest_allowed = (forbidden == 0).to(state.dtype)  # 1 when 0 is forbidden, else 0
        paid = actions.to(state.dtype) == lowest_allowed
        self.paid += paid.sum()
        self.steps += paid.numel()
        reward = paid.to(state.dtype) * 2 - 1
        next_state = torch.stack((observation, step + 1, forbidden), dim=1)
        return next_state, reward, torch.ones_like(paid)

    def batch_statistics(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        paid_fraction = (self.paid.clone(), self.steps.clone())  # a mean's total and weight
        self.paid.zero_()
        self.steps.zero_()
        return {"paid_fraction": paid_fraction}


class TeamProbe(BatchedEnv):
    """Two agents, one-step episodes; ``state`` is each agent's one-number observation."""

    default_config: ClassVar[dict[str, Any]] = PROBE_CONFIG
    RANDOM_SIGN: ClassVar[bool] = False

    def initial_state(self, n: int) -> torch.Tensor:
        if self.RANDOM_SIGN:
            return self.uniform(n, 2, -1.0, 1.0).sign_()
        return torch.ones(n, 2, device=self.device, dtype=self.dtype)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.unsqueeze(-1).to(torch.float32)  # [n, 2 agents, 1]


def _team_spec(name: str, actions: int) -> EnvSpec:
    return EnvSpec(name, "", 1, 2, DiscreteSpace(actions), max_episode_steps=2, n_agents=2)


class CentralProbe(TeamProbe):
    spec = _team_spec("probe-central", 1)
    RANDOM_SIGN = True

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        reward = state[:, 0] * state[:, 1]  # one team reward: neither agent's sign alone
        return state, reward, torch.ones_like(reward, dtype=torch.bool)


class RolesProbe(TeamProbe):
    spec = _team_spec("probe-roles", 2)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        paid = (actions[:, 0] == 0) & (actions[:, 1] == 1)  # actions: [n, 2 agents]
        return state, paid.to(state.dtype), torch.ones_like(paid)


PROBES: tuple[type[BatchedEnv], ...] = (
    ConstantProbe,
    ObservationProbe,
    DelayedProbe,
    ActionProbe,
    ObservationActionProbe,
    PrivilegedProbe,
    RecallProbe,
    EpisodeStartProbe,
    MaskProbe,
    CentralProbe,
    RolesProbe,
)
