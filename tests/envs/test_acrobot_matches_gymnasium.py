"""Acrobot against gymnasium's Acrobot-v1, step by step from the same states.

float32 rounding in one RK4 step grows with the velocities: against
gymnasium's float64 it stays below 1e-6 for |velocity| < 6 (every state a
random policy visits) but reaches ~6e-4 near the 9π bound, where the RK4
stages cancel large terms. So float32 is checked at 1e-5 on reachable states,
and the whole state box, velocity bounds included, in float64 at 1e-9.
"""

import math

import torch
from gym_reference import (
    check_auto_reset,
    check_initial_states,
    check_seeding,
    check_steps_match,
    check_truncation,
    uniform,
)

from esper.envs.acrobot import MAX_VEL_1, MAX_VEL_2, Acrobot, wrap

LOW = [-0.1] * 4
HIGH = [0.1] * 4


def moderate_states(generator: torch.Generator, n: int) -> torch.Tensor:
    """Any angles, so many tips start near or above the goal line; velocities a swing reaches."""
    angles = [uniform(generator, n, -math.pi, math.pi) for _ in range(2)]
    velocities = [uniform(generator, n, -4.0, 4.0) for _ in range(2)]
    return torch.stack((*angles, *velocities), dim=1)


def any_states(generator: torch.Generator, n: int) -> torch.Tensor:
    """The whole state box, up to both velocity bounds."""
    angles = [uniform(generator, n, -math.pi, math.pi) for _ in range(2)]
    dtheta1 = uniform(generator, n, -MAX_VEL_1, MAX_VEL_1)
    dtheta2 = uniform(generator, n, -MAX_VEL_2, MAX_VEL_2)
    return torch.stack((*angles, dtheta1, dtheta2), dim=1)


def test_steps_match_gymnasium() -> None:
    assert check_steps_match(Acrobot, moderate_states) > 30


def test_steps_match_gymnasium_over_whole_state_box_in_float64() -> None:
    assert check_steps_match(Acrobot, any_states, dtype=torch.float64, atol=1e-9) > 100


def test_wrap_shifts_by_whole_turns_like_gymnasium() -> None:
    x = torch.tensor([-3 * math.pi - 0.5, -math.pi, 0.3, math.pi, 2 * math.pi + 0.5, 7.0])
    wrapped = wrap(x, -math.pi, math.pi)
    expected = torch.tensor([math.pi - 0.5, -math.pi, 0.3, math.pi, 0.5, 7.0 - 2 * math.pi])
    assert torch.allclose(wrapped, expected, atol=1e-6)


def test_initial_states_match_gymnasium_ranges() -> None:
    check_initial_states(Acrobot, LOW, HIGH)


def test_finished_copies_reset_with_final_obs() -> None:
    check_auto_reset(Acrobot, moderate_states, LOW, HIGH)


def test_time_limit_matches_gymnasium() -> None:
    check_truncation(Acrobot)


def test_reset_seed_is_reproducible() -> None:
    check_seeding(Acrobot)
