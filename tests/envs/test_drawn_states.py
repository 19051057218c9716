"""A rollout's drawn fresh states are the ones its steps would draw one by one,
whether a task draws them in one call (``draws_at_once``) or a call per step."""

from __future__ import annotations

import pytest
import torch

from esper.envs.registry import make


@pytest.mark.parametrize("task", ["cartpole", "cartpole-no-velocity", "acrobot", "pendulum"])
def test_drawn_states_are_the_per_step_draws_in_order(task: str) -> None:
    env, again = make(task, 96, "cpu", seed=7), make(task, 96, "cpu", seed=7)
    drawn = env.draw_initial_states(5)
    one_by_one = torch.stack([again.initial_state(96) for _ in range(5)])
    assert drawn.shape == (5, 96, env.spec.state_dim)
    assert torch.equal(drawn, one_by_one)
    # and the generators stand at the same place afterwards
    assert torch.equal(env.initial_state(3), again.initial_state(3))


def test_only_single_draw_tasks_say_they_draw_at_once() -> None:
    assert make("cartpole", 2, "cpu").draws_at_once and make("acrobot", 2, "cpu").draws_at_once
    assert not make("pendulum", 2, "cpu").draws_at_once  # two draws a call: theta, then speed
