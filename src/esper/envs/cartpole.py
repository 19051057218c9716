"""CartPole-v1 as a batched tensor environment.

Same constants, Euler integration, termination thresholds, reward (1 on every
step, the terminating one included) and 500-step limit as gymnasium's
CartPole-v1. ``state`` is ``[x, x_dot, theta, theta_dot]``, gymnasium's layout.
"""

from __future__ import annotations

import math

import torch

from esper.envs.base import BatchedEnv, EnvSpec
from esper.envs.spaces import DiscreteSpace

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_POLE_LENGTH = 0.5
POLE_MASS_LENGTH = MASS_POLE * HALF_POLE_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4


class CartPole(BatchedEnv):
    spec = EnvSpec(
        name="cartpole",
        gym_id="CartPole-v1",
        obs_dim=4,
        state_dim=4,
        action_space=DiscreteSpace(2),
        max_episode_steps=500,
    )

    def initial_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, 4, -0.05, 0.05)

    def dynamics(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = state.unbind(1)
        force = (actions.to(state.dtype) * 2 - 1) * FORCE_MAG
        cos_t = torch.cos(theta)
        sin_t = torch.sin(theta)
        temp = (force + POLE_MASS_LENGTH * theta_dot.square() * sin_t) / TOTAL_MASS
        theta_acc = (GRAVITY * sin_t - cos_t * temp) / (
            HALF_POLE_LENGTH * (4.0 / 3.0 - MASS_POLE * cos_t.square() / TOTAL_MASS)
        )
        x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos_t / TOTAL_MASS
        next_state = torch.stack(
            (
                x + TAU * x_dot,
                x_dot + TAU * x_acc,
                theta + TAU * theta_dot,
                theta_dot + TAU * theta_acc,
            ),
            dim=1,
        )
        terminated = (next_state[:, 0].abs() > X_THRESHOLD) | (
            next_state[:, 2].abs() > THETA_THRESHOLD
        )
        reward = torch.ones_like(x)
        return next_state, reward, terminated
