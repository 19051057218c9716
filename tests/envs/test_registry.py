"""Task names, ``make`` and the table behind ``esper tasks``."""

import pytest
import torch

from esper.envs import TASKS, UnknownTaskError, describe_tasks, env_class, make


def test_every_builtin_task_builds_and_steps() -> None:
    for name in TASKS:
        env = make(name, num_envs=3, device="cpu", seed=0)
        rows = (3, *env.spec.agent_shape)  # (3, n_agents) for a multi-agent task
        obs = env.reset()
        assert obs.shape == (*rows, env.obs_dim)
        assert env.state.shape == (3, env.spec.state_dim)
        space = env.action_space
        dtype = torch.int64 if space.is_discrete else None
        actions = torch.zeros(*rows, *space.shape, dtype=dtype)
        obs, reward, terminated, truncated, info = env.step(actions)
        assert obs.dtype == reward.dtype == info["final_obs"].dtype == torch.float32
        assert reward.shape == rows and terminated.shape == truncated.shape == (3,)


def test_unknown_builtin_task_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskError, match="known: acrobot, cartpole"):
        env_class("cartpol")


def test_describe_tasks_rows() -> None:
    rows = {row.name: row for row in describe_tasks()}
    assert set(TASKS) <= set(rows)
    assert rows["acrobot"] == (
        "acrobot", "Acrobot-v1", 6, "Discrete(3)", True, 500, "built-in", 0, "6"
    )  # fmt: skip
    assert (rows["probe-privileged"].obs_dim, rows["probe-privileged"].critic_obs_dim) == (2, 1)
    assert rows["probe-privileged"].obs == "2 (1 critic-only)"
    assert rows["minatar-breakout"].obs == "4×10×10"  # an image by its shape, not 400
    assert rows["mountaincar-continuous"].action_space == "Box(1: [-1, 1])"
    assert rows["pendulum"].max_episode_steps == 200


def test_describe_tasks_with_gym_tasks() -> None:
    *_, row = describe_tasks(extra=("gym:CartPole-v1",))
    assert row == (
        "gym:CartPole-v1", "CartPole-v1", 4, "Discrete(2)", False, 500, "gymnasium", 0, "4"
    )  # fmt: skip
