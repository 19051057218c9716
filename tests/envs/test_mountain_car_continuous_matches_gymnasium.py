"""MountainCarContinuous against gymnasium's MountainCarContinuous-v0, step by step.

The random actions overshoot ``[-1, 1]``: gymnasium clips them before they
push the car but charges the action cost on them as given, and so must we.
"""

import torch
from gym_reference import (
    check_auto_reset,
    check_initial_states,
    check_seeding,
    check_steps_match,
    check_truncation,
)
from test_mountain_car_matches_gymnasium import HIGH, LOW, states_near

from esper.envs.mountain_car import MountainCarContinuous

edge_states = states_near(MountainCarContinuous.GOAL_POSITION)


def test_steps_match_gymnasium() -> None:
    assert check_steps_match(MountainCarContinuous, edge_states) > 10


def test_goal_pays_100_minus_action_cost() -> None:
    env = MountainCarContinuous(2)
    env.reset()
    env.state = torch.tensor([[0.449, 0.01], [0.0, 0.0]])
    _, reward, terminated, _, _ = env.step(torch.tensor([[3.0], [-0.5]]))
    assert terminated.tolist() == [True, False]
    assert torch.allclose(reward, torch.tensor([100.0 - 0.9, -0.025]))


def test_initial_states_match_gymnasium_ranges() -> None:
    check_initial_states(MountainCarContinuous, LOW, HIGH)


def test_finished_copies_reset_with_final_obs() -> None:
    check_auto_reset(MountainCarContinuous, edge_states, LOW, HIGH)


def test_time_limit_matches_gymnasium() -> None:
    check_truncation(MountainCarContinuous)


def test_reset_seed_is_reproducible() -> None:
    check_seeding(MountainCarContinuous)
