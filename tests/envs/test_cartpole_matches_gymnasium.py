"""CartPole against gymnasium's CartPole-v1, step by step from the same states."""

import torch
from gym_reference import (
    check_auto_reset,
    check_initial_states,
    check_seeding,
    check_steps_match,
    check_truncation,
    random_sign,
    uniform,
)

from esper.envs.cartpole import X_THRESHOLD, CartPole

LOW = [-0.05] * 4
HIGH = [0.05] * 4


def edge_states(generator: torch.Generator, n: int) -> torch.Tensor:
    """Carts near the track's ends and poles near the 12° limit."""
    x = random_sign(generator, n) * uniform(generator, n, X_THRESHOLD - 0.3, X_THRESHOLD + 0.05)
    theta = random_sign(generator, n) * uniform(generator, n, 0.1, 0.22)
    x_dot = uniform(generator, n, -2.0, 2.0)
    theta_dot = uniform(generator, n, -2.0, 2.0)
    return torch.stack((x, x_dot, theta, theta_dot), dim=1)


def test_steps_match_gymnasium() -> None:
    assert check_steps_match(CartPole, edge_states) > 100


def test_initial_states_match_gymnasium_ranges() -> None:
    check_initial_states(CartPole, LOW, HIGH)


def test_finished_copies_reset_with_final_obs() -> None:
    check_auto_reset(CartPole, edge_states, LOW, HIGH)


def test_time_limit_matches_gymnasium() -> None:
    check_truncation(CartPole)


def test_reset_seed_is_reproducible() -> None:
    check_seeding(CartPole)
