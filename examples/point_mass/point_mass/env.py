"""Steer a point mass to a goal on a 2-D table, ``num_envs`` tables at once.

The mass starts at rest somewhere on the table ``[-1, 1]^2`` with a goal
elsewhere on it. Each step the policy pushes with a force in ``[-1, 1]^2``;
the velocity, slowed by friction, moves the mass, which the table's edges
stop. Reaching within ``GOAL_RADIUS`` of the goal ends the episode with a
bonus; otherwise each step pays how much closer the mass came (a shaping
term whose sum is the distance covered) minus a small time cost.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from esper.envs import BatchedEnv, BoxSpace, EnvSpec

DT = 0.1
FRICTION = 0.1  # share of the velocity lost each step
GOAL_RADIUS = 0.1
PROGRESS_SCALE = 10.0
GOAL_BONUS = 5.0
TIME_COST = 0.05


class PointMass(BatchedEnv):
    # state: [x, y, vx, vy, goal_x, goal_y]; observation: position, velocity
    # and the offset to the goal, so the policy need not subtract.
    spec = EnvSpec(
        name="point-mass",
        gym_id="",
        obs_dim=6,
        state_dim=6,
        action_space=BoxSpace(low=(-1.0, -1.0), high=(1.0, 1.0)),
        max_episode_steps=100,
    )
    # PPOConfig values this task trains well with (a user's --config and flags
    # still override them).
    default_config: ClassVar[dict[str, Any]] = {
        "n_envs": 64,
        "horizon": 64,
        "n_minibatches": 8,
        "update_epochs": 10,
        "learning_rate": 0.001,
        "ent_coef": 0.0,
        "gamma": 0.98,
    }

    def initial_state(self, n: int) -> torch.Tensor:
        position = self.uniform(n, 2, -0.9, 0.9)
        velocity = torch.zeros(n, 2, device=self.device, dtype=self.dtype)
        goal = self.uniform(n, 2, -0.9, 0.9)
        return torch.cat((position, velocity, goal), dim=1)

    def dynamics(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity, goal = state.split(2, dim=1)
        force = actions.to(state.dtype).clamp(-1.0, 1.0)  # [n, 2]
        velocity = velocity * (1.0 - FRICTION) + force * DT
        position = (position + velocity * DT).clamp(-1.0, 1.0)
        distance_before = (goal - state[:, :2]).norm(dim=1)
        distance = (goal - position).norm(dim=1)
        reached = distance < GOAL_RADIUS
        reward = PROGRESS_SCALE * (distance_before - distance) - TIME_COST
        reward = reward + GOAL_BONUS * reached
        return torch.cat((position, velocity, goal), dim=1), reward, reached

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        position, velocity, goal = state.split(2, dim=1)
        return torch.cat((position, velocity, goal - position), dim=1).to(torch.float32)
