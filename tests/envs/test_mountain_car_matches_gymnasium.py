"""MountainCar against gymnasium's MountainCar-v0, step by step from the same states."""

import torch
from gym_reference import (
    check_auto_reset,
    check_initial_states,
    check_seeding,
    check_steps_match,
    check_truncation,
    mix,
    uniform,
)

from esper.envs.mountain_car import MAX_POSITION, MAX_SPEED, MIN_POSITION, MountainCar

LOW = [-0.6, 0.0]
HIGH = [-0.4, 0.0]


def states_near(goal: float):
    """A sampler of states by the left wall, by ``goal`` and anywhere on the track."""

    def at_left_wall(generator: torch.Generator, n: int) -> torch.Tensor:
        position = torch.full((n,), MIN_POSITION)
        return torch.stack((position, uniform(generator, n, -MAX_SPEED, 0.0)), dim=1)

    def near_left_wall(generator: torch.Generator, n: int) -> torch.Tensor:
        position = uniform(generator, n, MIN_POSITION, MIN_POSITION + 0.1)
        return torch.stack((position, uniform(generator, n, -MAX_SPEED, 0.01)), dim=1)

    def near_goal(generator: torch.Generator, n: int) -> torch.Tensor:
        position = uniform(generator, n, goal - 0.03, goal + 0.01)
        return torch.stack((position, uniform(generator, n, -0.005, 0.01)), dim=1)

    def anywhere(generator: torch.Generator, n: int) -> torch.Tensor:
        position = uniform(generator, n, MIN_POSITION, MAX_POSITION)
        return torch.stack((position, uniform(generator, n, -MAX_SPEED, MAX_SPEED)), dim=1)

    def sampler(generator: torch.Generator, n: int) -> torch.Tensor:
        return mix(generator, n, at_left_wall, near_left_wall, near_goal, anywhere)

    return sampler


edge_states = states_near(MountainCar.GOAL_POSITION)


def test_steps_match_gymnasium() -> None:
    assert check_steps_match(MountainCar, edge_states) > 10


def test_initial_states_match_gymnasium_ranges() -> None:
    check_initial_states(MountainCar, LOW, HIGH)


def test_finished_copies_reset_with_final_obs() -> None:
    check_auto_reset(MountainCar, edge_states, LOW, HIGH)


def test_time_limit_matches_gymnasium() -> None:
    check_truncation(MountainCar)


def test_reset_seed_is_reproducible() -> None:
    check_seeding(MountainCar)
