"""MountainCar-v0 and MountainCarContinuous-v0 as batched tensor environments.

Both gymnasium tasks share the car's physics and differ in how an action
becomes a push, where the goal is and what is rewarded, so the physics is one
function here and each task is a small class around it. ``state`` is
``[position, velocity]``, gymnasium's layout, and is also the observation.
"""

from __future__ import annotations

import torch

from esper.envs.base import BatchedEnv, EnvSpec, Transition
from esper.envs.spaces import BoxSpace, DiscreteSpace

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GRAVITY = 0.0025
GOAL_VELOCITY = 0.0


def drive(
    state: torch.Tensor, push: torch.Tensor, goal_position: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the car under ``push`` (the velocity change the engine adds).

    Same order as gymnasium: gravity along the ``sin(3x)`` hill changes the
    velocity, which is clipped to ``±MAX_SPEED``; the position moves by it and
    is clipped to the track; a car stopped by the left wall loses its
    leftward velocity. Returns ``(next_state, reached_goal)``.
    """
    position, velocity = state.unbind(1)
    velocity = (velocity + push - GRAVITY * torch.cos(3 * position)).clamp(-MAX_SPEED, MAX_SPEED)
    position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
    at_left_wall = (position == MIN_POSITION) & (velocity < 0)
    velocity = velocity.masked_fill(at_left_wall, 0.0)
    reached_goal = (position >= goal_position) & (velocity >= GOAL_VELOCITY)
    return torch.stack((position, velocity), dim=1), reached_goal


def start_states(env: BatchedEnv, n: int) -> torch.Tensor:
    """Both tasks start at rest somewhere in the valley, position in ``[-0.6, -0.4)``."""
    position = env.uniform(n, 1, -0.6, -0.4)
    return torch.cat((position, torch.zeros_like(position)), dim=1)


class MountainCar(BatchedEnv):
    """Three actions (push left, none, right) of force 0.001; -1 per step; goal at 0.5."""

    spec = EnvSpec(
        "mountaincar", "MountainCar-v0", max_episode_steps=200,
        obs_dim=2, state_dim=2, action_space=DiscreteSpace(3),
    )  # fmt: skip
    FORCE = 0.001
    GOAL_POSITION = 0.5

    def initial_state(self, n: int) -> torch.Tensor:
        return start_states(self, n)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        push = (actions.to(state.dtype) - 1) * self.FORCE
        next_state, terminated = drive(state, push, self.GOAL_POSITION)
        return next_state, torch.full_like(push, -1.0), terminated


class MountainCarContinuous(BatchedEnv):
    """A push in ``[-1, 1]`` times power 0.0015; goal at 0.45 pays +100.

    As in gymnasium, an out-of-range action is clipped before it moves the
    car, but the ``-0.1 * action**2`` cost is charged on the action as given.
    """

    spec = EnvSpec(
        "mountaincar-continuous", "MountainCarContinuous-v0", max_episode_steps=999,
        obs_dim=2, state_dim=2, action_space=BoxSpace(low=(-1.0,), high=(1.0,)),
    )  # fmt: skip
    POWER = 0.0015
    GOAL_POSITION = 0.45
    GOAL_REWARD = 100.0

    def initial_state(self, n: int) -> torch.Tensor:
        return start_states(self, n)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        action = actions.reshape(-1).to(state.dtype)
        push = action.clamp(-1.0, 1.0) * self.POWER
        next_state, terminated = drive(state, push, self.GOAL_POSITION)
        reward = self.GOAL_REWARD * terminated.to(state.dtype) - 0.1 * action.square()
        return next_state, reward, terminated
