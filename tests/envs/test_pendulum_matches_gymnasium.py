"""Pendulum against gymnasium's Pendulum-v1, step by step from the same states.

The angle is never wrapped, so the states include large ones (an episode can
turn it to about ±80 rad) and ones at odd multiples of π, where the reward's
angle normalisation jumps; the torques overshoot ``[-2, 2]`` to exercise the
clipping and the velocities reach the ±8 clip.
"""

import math

import torch
from gym_reference import (
    check_auto_reset,
    check_initial_states,
    check_seeding,
    check_steps_match,
    check_truncation,
    mix,
    random_sign,
    uniform,
)

from esper.envs.pendulum import MAX_SPEED, Pendulum, angle_normalize

LOW = [-math.pi, -1.0]
HIGH = [math.pi, 1.0]


def far_turned(generator: torch.Generator, n: int) -> torch.Tensor:
    theta = uniform(generator, n, -80.0, 80.0)
    return torch.stack((theta, uniform(generator, n, -MAX_SPEED, MAX_SPEED)), dim=1)


def at_half_turns(generator: torch.Generator, n: int) -> torch.Tensor:
    odd = torch.randint(-12, 12, (n,), generator=generator).float() * 2 + 1
    theta = odd * math.pi + uniform(generator, n, -1e-3, 1e-3)
    return torch.stack((theta, uniform(generator, n, -1.0, 1.0)), dim=1)


def spinning(generator: torch.Generator, n: int) -> torch.Tensor:
    theta = uniform(generator, n, -math.pi, math.pi)
    speed = random_sign(generator, n) * uniform(generator, n, MAX_SPEED - 0.5, MAX_SPEED)
    return torch.stack((theta, speed), dim=1)


def edge_states(generator: torch.Generator, n: int) -> torch.Tensor:
    return mix(generator, n, far_turned, at_half_turns, spinning)


def test_steps_match_gymnasium() -> None:
    assert check_steps_match(Pendulum, edge_states) == 0  # it never terminates


def test_angle_normalize_is_accurate_for_far_turned_angles() -> None:
    theta = torch.tensor([79.123456, -75.5, 3 * math.pi + 0.25])
    expected = [(float(t) + math.pi) % (2 * math.pi) - math.pi for t in theta.double()]
    assert torch.allclose(
        angle_normalize(theta).double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6
    )


def test_initial_states_match_gymnasium_ranges() -> None:
    check_initial_states(Pendulum, LOW, HIGH)


def test_finished_copies_reset_with_final_obs() -> None:
    check_auto_reset(Pendulum, edge_states, LOW, HIGH)


def test_time_limit_matches_gymnasium() -> None:
    check_truncation(Pendulum)


def test_reset_seed_is_reproducible() -> None:
    check_seeding(Pendulum)
