"""Pendulum-v1 as a batched tensor environment.

Matches gymnasium's Pendulum-v1: the torque is clipped to ``[-2, 2]``, the
angular velocity is updated by semi-implicit Euler (``dt = 0.05``) and clipped
to ``±8``, then the angle moves by it and is left unwrapped. The reward is
minus ``angle² + 0.1·velocity² + 0.001·torque²`` of the state *before* the
step, the angle normalised into ``[-pi, pi)``. It never terminates; 200-step
limit. ``state`` is ``[theta, theta_dot]``; the observation is
``[cos theta, sin theta, theta_dot]``.
"""

from __future__ import annotations

import math

import torch

from esper.envs.base import BatchedEnv, EnvSpec, Transition
from esper.envs.spaces import BoxSpace

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
MASS = 1.0
LENGTH = 1.0


def angle_normalize(theta: torch.Tensor) -> torch.Tensor:
    """``theta`` shifted by whole turns into ``[-pi, pi)``, computed in float64.

    The angle is never wrapped in the state and reaches about ±80 rad within
    one episode; there float32's rounding of ``theta + pi`` alone is ~4e-6
    rad, and the reward computed so differed from gymnasium's by 2e-5 in the
    differential test. The float64 detour is one element-wise op on the device.
    """
    wide = theta.to(torch.float64)
    return (torch.remainder(wide + math.pi, 2 * math.pi) - math.pi).to(theta.dtype)


class Pendulum(BatchedEnv):
    spec = EnvSpec(
        "pendulum", "Pendulum-v1", max_episode_steps=200,
        obs_dim=3, state_dim=2, action_space=BoxSpace(low=(-MAX_TORQUE,), high=(MAX_TORQUE,)),
    )  # fmt: skip

    def __init__(self, *args, g: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.g = g  # gymnasium's ``g`` argument of Pendulum-v1

    def initial_state(self, n: int) -> torch.Tensor:
        theta = self.uniform(n, 1, -math.pi, math.pi)
        theta_dot = self.uniform(n, 1, -1.0, 1.0)
        return torch.cat((theta, theta_dot), dim=1)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        theta, theta_dot = state.unbind(1)
        torque = actions.reshape(-1).to(state.dtype).clamp(-MAX_TORQUE, MAX_TORQUE)
        cost = angle_normalize(theta).square() + 0.1 * theta_dot.square() + 0.001 * torque.square()
        accel = 3 * self.g / (2 * LENGTH) * torch.sin(theta) + 3.0 / (MASS * LENGTH**2) * torque
        new_theta_dot = (theta_dot + accel * DT).clamp(-MAX_SPEED, MAX_SPEED)
        next_state = torch.stack((theta + new_theta_dot * DT, new_theta_dot), dim=1)
        return next_state, -cost, torch.zeros_like(theta, dtype=torch.bool)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        theta, theta_dot = state.unbind(1)
        return torch.stack((theta.cos(), theta.sin(), theta_dot), dim=1).to(torch.float32)
