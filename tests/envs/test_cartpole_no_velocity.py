"""cartpole-no-velocity against gymnasium's CartPole-v1 with the velocities hidden.

gymnasium has no such id, so the shared ``check_steps_match`` (which makes the
task's own gymnasium id) does not apply: here one gymnasium CartPole-v1 per copy,
time limit included, runs alongside the batch for several episodes, and each
observation must be gymnasium's ``obs[[0, 2]]``.
"""

import numpy as np
import torch

# gym_reference skips the module without gymnasium (a bare GPU machine); imported
# before it, gymnasium failed the collection of `pytest -m cuda tests` there.
from gym_reference import (
    ATOL,
    assert_close,
    check_auto_reset,
    check_seeding,
    gym_action,
    random_actions,
    random_sign,
    uniform,
)

# isort: split
import gymnasium

from esper.config.layers import task_config_name
from esper.envs import TASKS, make
from esper.envs.cartpole import X_THRESHOLD, CartPole, CartPoleNoVelocity
from esper.envs.check import FAIL, PASS, check_env
from esper.envs.render import RENDERERS

LOW = [-0.05] * 4
HIGH = [0.05] * 4
SEEN = [0, 2]  # x and theta; x_dot and theta_dot are hidden


def edge_states(generator: torch.Generator, n: int) -> torch.Tensor:
    """Carts near the track's ends and poles near the 12° limit."""
    x = random_sign(generator, n) * uniform(generator, n, X_THRESHOLD - 0.3, X_THRESHOLD + 0.05)
    theta = random_sign(generator, n) * uniform(generator, n, 0.1, 0.22)
    x_dot = uniform(generator, n, -2.0, 2.0)
    theta_dot = uniform(generator, n, -2.0, 2.0)
    return torch.stack((x, x_dot, theta, theta_dot), dim=1)


def balancing_actions(state: torch.Tensor) -> torch.Tensor:
    """Push towards where the pole falls (read from the hidden state): keeps
    the pole up for the whole 500 steps, so those copies are truncated."""
    x, x_dot, theta, theta_dot = state.unbind(1)
    return (theta + 0.5 * theta_dot + 0.05 * x + 0.2 * x_dot > 0).long()


def test_steps_match_gymnasium_with_velocities_hidden() -> None:
    """Every step of 16 copies (half on random actions, which terminate within
    tens of steps, half balanced to the time limit) against gymnasium's
    CartPole-v1 behind its TimeLimit: observation ``obs[[0, 2]]``, reward,
    terminated and truncated, through the auto-resets. gymnasium's state is set
    to the copy's before each step (CartPole is unstable: float32 and float64
    trajectories part within an episode); its step counter runs on its own."""
    n, steps = 16, 620
    env = CartPoleNoVelocity(n, seed=0)
    obs = env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    gym_envs = [gymnasium.make("CartPole-v1") for _ in range(n)]
    for i, gym_env in enumerate(gym_envs):
        gym_env.reset(seed=i)
    counts = {"terminated": 0, "truncated": 0}
    for _ in range(steps):
        assert torch.equal(obs, env.state[:, SEEN])
        actions = random_actions(env.action_space, n, generator)
        actions[n // 2 :] = balancing_actions(env.state[n // 2 :])
        before = env.state.double().numpy()
        rows: dict[str, list] = {"state": [], "obs": [], "reward": [], "terminated": []}
        truncations = []
        for i, gym_env in enumerate(gym_envs):
            gym_env.unwrapped.state = before[i].copy()
            gym_obs, reward, terminated, truncated, _ = gym_env.step(
                gym_action(env.action_space, actions[i])
            )
            rows["state"].append(np.asarray(gym_env.unwrapped.state, dtype=np.float64))
            rows["obs"].append(gym_obs[SEEN])
            rows["reward"].append(reward)
            rows["terminated"].append(terminated)
            truncations.append(truncated)
            if terminated or truncated:
                gym_env.reset()
        theirs = {key: np.array(value) for key, value in rows.items()}

        obs, reward, terminated, truncated, info = env.step(actions)
        assert info["final_obs"].shape == (n, 2)
        assert_close(info["final_obs"], theirs["obs"], "observation", ATOL)
        assert_close(reward, theirs["reward"], "reward", ATOL)
        np.testing.assert_array_equal(terminated.numpy(), theirs["terminated"])
        np.testing.assert_array_equal(truncated.numpy(), truncations)
        # The hidden velocities carry on as gymnasium's do.
        done = (terminated | truncated).numpy()
        assert_close(env.state[~done], theirs["state"][~done], "hidden state", ATOL)
        counts["terminated"] += int(terminated.sum())
        counts["truncated"] += int(truncated.sum())
    assert counts["terminated"] > 100  # the random half, many episodes each
    assert counts["truncated"] >= n // 2  # the balanced half, each at step 500


def test_state_keeps_the_velocities_and_observations_drop_them() -> None:
    spec = CartPoleNoVelocity.spec
    assert (spec.name, spec.gym_id, spec.obs_dim, spec.state_dim) == (
        "cartpole-no-velocity", "", 2, 4,
    )  # fmt: skip
    assert spec.obs_shape == (2,) and spec.obs_dtype == torch.float32
    assert spec.action_space == CartPole.spec.action_space
    assert spec.max_episode_steps == CartPole.spec.max_episode_steps == 500
    assert TASKS["cartpole-no-velocity"] is CartPoleNoVelocity

    env = make("cartpole-no-velocity", num_envs=8, seed=3)
    obs = env.reset()
    assert env.state.shape == (8, 4) and obs.shape == (8, 2)
    for _ in range(3):
        obs, *_ = env.step(torch.ones(8, dtype=torch.int64))
    assert (env.state[:, [1, 3]] != 0).all()  # the velocities are there, only unseen
    state = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0]], dtype=torch.float64)
    seen = env.observe(state)
    assert seen.dtype == torch.float32 and seen.is_contiguous()
    assert seen.tolist() == [[1.0, 3.0], [-1.0, -3.0]]
    state[0, 0] = 9.0
    assert seen[0, 0] == 1.0  # its own copy, not a view of the state


def test_same_dynamics_and_initial_states_as_cartpole() -> None:
    """The state evolves exactly as cartpole's under the same seed and actions."""
    plain, hidden = CartPole(64, seed=5), CartPoleNoVelocity(64, seed=5)
    assert torch.equal(plain.reset(seed=5)[:, SEEN], hidden.reset(seed=5))
    generator = torch.Generator().manual_seed(5)
    for _ in range(50):
        actions = random_actions(plain.action_space, 64, generator)
        full, reward, terminated, truncated, _ = plain.step(actions)
        seen, *rest, _ = hidden.step(actions)
        assert torch.equal(plain.state, hidden.state)
        assert torch.equal(full[:, SEEN], seen)
        for a, b in zip((reward, terminated, truncated), rest, strict=True):
            assert torch.equal(a, b)


def test_finished_copies_reset_with_final_obs() -> None:
    check_auto_reset(CartPoleNoVelocity, edge_states, LOW, HIGH)


def test_reset_seed_is_reproducible() -> None:
    check_seeding(CartPoleNoVelocity)


def test_check_env_passes_every_rule() -> None:
    report = check_env("cartpole-no-velocity", speed_sizes=(4,))
    assert report.ok, [(r.rule, r.detail) for r in report.results if r.status == FAIL]
    skipped = [r.rule for r in report.results if r.status != PASS]
    assert skipped == ["action mask"]  # the one rule for tasks that mask their actions


def test_renders_like_cartpole_and_has_its_own_config() -> None:
    assert RENDERERS["cartpole-no-velocity"] == RENDERERS["cartpole"]
    assert task_config_name("cartpole-no-velocity") == "cartpole-no-velocity.toml"
