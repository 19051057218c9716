"""Acrobot-v1 as a batched tensor environment.

Matches gymnasium's Acrobot-v1 ("book" dynamics, no torque noise): one
fourth-order Runge-Kutta step of ``dt = 0.2`` per action, then the angles are
wrapped into ``[-pi, pi]`` and the velocities clipped to ``±4pi`` and ``±9pi``.
The episode terminates (reward 0) once the tip is more than one link length
above the pivot; every other step costs -1; 500-step limit.
``state`` is ``[theta1, theta2, dtheta1, dtheta2]``, gymnasium's layout.
"""

from __future__ import annotations

import math

import torch

from esper.envs.base import BatchedEnv, EnvSpec, Transition
from esper.envs.spaces import DiscreteSpace

DT = 0.2
GRAVITY = 9.8
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_1 = 0.5  # distance from a joint to its link's centre of mass
LINK_COM_2 = 0.5
LINK_MOI = 1.0  # moment of inertia of either link
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi


def wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Shift ``x`` by whole periods into ``[low, high]`` (gymnasium's ``wrap``).

    gymnasium subtracts or adds the period in a loop until the value is in
    range; here the number of periods is computed at once. Values already in
    range, the bounds included, are left untouched, as there.
    """
    period = high - low
    above = torch.ceil((x - high) / period)
    below = torch.ceil((low - x) / period)
    return torch.where(x > high, x - above * period, torch.where(x < low, x + below * period, x))


def derivatives(state: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
    """Time derivative of ``[theta1, theta2, dtheta1, dtheta2]`` (Sutton & Barto's book)."""
    theta1, theta2, dtheta1, dtheta2 = state.unbind(1)
    m2, l1, lc1, lc2 = LINK_MASS_2, LINK_LENGTH_1, LINK_COM_1, LINK_COM_2
    cos2 = torch.cos(theta2)
    sin2 = torch.sin(theta2)
    d1 = LINK_MASS_1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + LINK_MOI + LINK_MOI
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + LINK_MOI
    # cos(a - pi/2) == sin(a): gymnasium writes the gravity terms with cosines.
    phi2 = m2 * lc2 * GRAVITY * torch.sin(theta1 + theta2)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2.square() * sin2
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
        + (LINK_MASS_1 * lc1 + m2 * l1) * GRAVITY * torch.sin(theta1)
        + phi2
    )
    ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1.square() * sin2 - phi2) / (
        m2 * lc2**2 + LINK_MOI - d2.square() / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=1)


def rk4_step(state: torch.Tensor, torque: torch.Tensor, dt: float) -> torch.Tensor:
    """One classic Runge-Kutta step of ``dt`` with the torque held constant."""
    k1 = derivatives(state, torque)
    k2 = derivatives(state + dt / 2 * k1, torque)
    k3 = derivatives(state + dt / 2 * k2, torque)
    k4 = derivatives(state + dt * k3, torque)
    return state + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


class Acrobot(BatchedEnv):
    spec = EnvSpec(
        "acrobot", "Acrobot-v1", max_episode_steps=500,
        obs_dim=6, state_dim=4, action_space=DiscreteSpace(3),
    )  # fmt: skip

    draws_at_once = True  # one uniform draw (BatchedEnv.draw_initial_states)

    def initial_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, 4, -0.1, 0.1)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        # Actions 0, 1, 2 are torques -1, 0, +1: arithmetic, not a lookup table,
        # which would be copied to the device (a host sync) every step.
        torque = actions.to(state.dtype) - 1
        moved = rk4_step(state, torque, DT)
        theta1, theta2, dtheta1, dtheta2 = moved.unbind(1)
        next_state = torch.stack(
            (
                wrap(theta1, -math.pi, math.pi),
                wrap(theta2, -math.pi, math.pi),
                dtheta1.clamp(-MAX_VEL_1, MAX_VEL_1),
                dtheta2.clamp(-MAX_VEL_2, MAX_VEL_2),
            ),
            dim=1,
        )
        terminated = tip_height(next_state) > 1.0
        reward = terminated.to(state.dtype) - 1.0
        return next_state, reward, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        theta1, theta2, dtheta1, dtheta2 = state.unbind(1)
        obs = (theta1.cos(), theta1.sin(), theta2.cos(), theta2.sin(), dtheta1, dtheta2)
        return torch.stack(obs, dim=1).to(torch.float32)


def tip_height(state: torch.Tensor) -> torch.Tensor:
    """Height of the free end above the pivot, in link lengths (gymnasium's terminal test)."""
    theta1, theta2 = state[:, 0], state[:, 1]
    return -torch.cos(theta1) - torch.cos(theta1 + theta2)
