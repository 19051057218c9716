"""Probe tasks: five tiny environments, each with one thing to learn.

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

``state`` is ``[observation, step]``: the probe's observation and the step
within the episode.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from esper.envs.base import BatchedEnv, EnvSpec, Transition
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


PROBES: tuple[type[Probe], ...] = (
    ConstantProbe,
    ObservationProbe,
    DelayedProbe,
    ActionProbe,
    ObservationActionProbe,
)
