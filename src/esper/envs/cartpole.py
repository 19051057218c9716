"""CartPole-v1 as a batched tensor environment, and its velocity-free variant.

Same constants, Euler integration, termination thresholds, reward (1 on every
step, the terminating one included) and 500-step limit as gymnasium's
CartPole-v1. ``state`` is ``[x, x_dot, theta, theta_dot]``, gymnasium's layout.

``cartpole-no-velocity`` (RL Baselines3 Zoo's ``CartPoleNoVel-v1``) is the same
task observed as ``[x, theta]`` only: one frame says nothing about the
velocities, so a policy must infer them from the past (a recurrent core's
memory task). Its state is still all four components.
"""

from __future__ import annotations

import math

import torch

from esper.envs.base import BatchedEnv, EnvSpec, Transition
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
        "cartpole", "CartPole-v1", max_episode_steps=500,
        obs_dim=4, state_dim=4, action_space=DiscreteSpace(2),
    )  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # [x, theta] limits, kept on the device for a one-op termination test
        self._limits = torch.tensor(
            [X_THRESHOLD, THETA_THRESHOLD], dtype=self.state.dtype, device=self.device
        )
        # action 0 pushes left, 1 right: a table on the device, read by ``take``
        self._forces = torch.tensor(
            [-FORCE_MAG, FORCE_MAG], dtype=self.state.dtype, device=self.device
        )

    draws_at_once = True  # one uniform draw (BatchedEnv.draw_initial_states)

    def initial_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, 4, -0.05, 0.05)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        # gymnasium's equations, arranged into few whole-batch ops (fused
        # multiply-adds) because per-op overhead dominates small batches.
        _, x_dot, theta, theta_dot = state.unbind(1)
        if actions.dtype == torch.int64:  # the force of each action: one lookup
            force = torch.take(self._forces, actions)
        else:
            force = actions.to(state.dtype).mul(2 * FORCE_MAG).sub_(FORCE_MAG)
        cos_t = torch.cos(theta)
        sin_t = torch.sin(theta)
        temp = torch.addcmul(force, theta_dot.square(), sin_t, value=POLE_MASS_LENGTH)
        temp = temp.div_(TOTAL_MASS)
        # theta_acc = (g sin - cos temp) / (l (4/3 - m_pole cos^2 / m_total))
        numerator = torch.addcmul(sin_t * GRAVITY, cos_t, temp, value=-1.0)
        denominator = cos_t.square().mul_(-HALF_POLE_LENGTH * MASS_POLE / TOTAL_MASS)
        theta_acc = numerator / denominator.add_(HALF_POLE_LENGTH * 4.0 / 3.0)
        x_acc = torch.addcmul(temp, theta_acc, cos_t, value=-POLE_MASS_LENGTH / TOTAL_MASS)
        # Euler: every component moves by TAU times its derivative.
        derivative = torch.stack((x_dot, x_acc, theta_dot, theta_acc), dim=1)
        next_state = torch.add(state, derivative, alpha=TAU)
        terminated = (next_state[:, ::2].abs() > self._limits).any(dim=1)
        return next_state, torch.ones_like(theta), terminated


class CartPoleNoVelocity(CartPole):
    """CartPole observed without its velocities: ``[x, theta]``, a memory task."""

    spec = EnvSpec(
        "cartpole-no-velocity", "", max_episode_steps=500,  # gymnasium has no such id
        obs_dim=2, state_dim=4, action_space=DiscreteSpace(2),
    )  # fmt: skip

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        # Columns 0 and 2 (a strided view), copied into contiguous rows of their
        # own: one op, no index tensor, no host sync.
        return state[:, ::2].to(torch.float32, copy=True)
