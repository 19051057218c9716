"""The base class keeps a task's state in fixed storage, so a captured CUDA graph
that replays a step reads and writes the same tensors every time."""

from __future__ import annotations

import pytest
import torch

from esper.envs import make, task_names
from esper.envs.spaces import BoxSpace, DiscreteSpace

BUILT_IN = [name for name in task_names() if ":" not in name]


def some_actions(space, n: int, agents: tuple[int, ...] = ()) -> torch.Tensor:
    """Random actions for ``n`` copies (of each of ``agents``, a multi-agent task's)."""
    if isinstance(space, DiscreteSpace):
        return torch.randint(space.n, (n, *agents))
    assert isinstance(space, BoxSpace)
    return torch.rand(n, *agents, space.dim) * 2 - 1


@pytest.mark.parametrize("task", BUILT_IN)
def test_steps_resets_and_restores_keep_the_state_s_storage(task: str) -> None:
    env = make(task, 8, "cpu", seed=0)
    storage = (env.state.data_ptr(), env.elapsed_steps.data_ptr())
    saved = env.state_dict()
    env.reset(seed=1)
    for _ in range(3):
        env.step(some_actions(env.action_space, 8, env.spec.agent_shape))
    env.load_state_dict(saved)
    assert (env.state.data_ptr(), env.elapsed_steps.data_ptr()) == storage
    if env.spec.state_dim:  # grow-mlp exposes no state: its hosts are its own tensors
        torch.testing.assert_close(env.state, saved["state"])


def test_the_observation_a_reset_returns_is_not_overwritten_by_the_next_step() -> None:
    env = make("cartpole", 8, "cpu", seed=0)
    obs = env.reset(seed=0)
    before = obs.clone()
    env.step(torch.zeros(8, dtype=torch.int64))
    assert torch.equal(obs, before)


@pytest.mark.parametrize("task", BUILT_IN)
def test_states_drawn_before_a_rollout_are_the_ones_its_steps_would_draw(task: str) -> None:
    """A rollout draws its reset states up front; the episodes must not change."""
    stepping, drawing = make(task, 8, "cpu", seed=3), make(task, 8, "cpu", seed=3)
    actions = [some_actions(stepping.action_space, 8, stepping.spec.agent_shape) for _ in range(40)]
    fresh = drawing.draw_initial_states(len(actions))
    for t, action in enumerate(actions):
        expected, got = stepping.step(action), drawing.step(action, fresh[t])
        for one, other in zip(expected[:4], got[:4], strict=True):
            assert torch.equal(one, other)
    assert torch.equal(stepping.generator.get_state(), drawing.generator.get_state())


def test_what_the_dynamics_returns_may_view_the_state_it_was_given() -> None:
    """probe-observation pays the observation itself (a view of the state): the
    step's in-place state update must not rewrite the reward it returns."""
    env = make("probe-observation", 64, "cpu", seed=0)
    obs = env.reset(seed=0)
    _, reward, *_ = env.step(torch.zeros(64, dtype=torch.int64))
    assert torch.equal(reward, obs.squeeze(1))
