"""gymnasium's own environments as the reference for the batched ones.

Every differential test follows the same recipe: put gymnasium's single env
into exactly the state one of our copies is in (``env.unwrapped.state = ...``),
take the same action in both, and compare what comes out. The checks live here
once; each ``test_*_matches_gymnasium.py`` supplies its task and the states
near that task's thresholds.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("gymnasium")  # every test module importing this skips without it

import gymnasium
import numpy as np
import torch

from esper.envs.base import BatchedEnv
from esper.envs.spaces import ActionSpace

ATOL = 1e-5  # float32 state and arithmetic against gymnasium's float64

StateSampler = Callable[[torch.Generator, int], torch.Tensor]


def uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    """``[n]`` float32 draws in ``[low, high)``."""
    return low + (high - low) * torch.rand(n, generator=generator)


def random_sign(generator: torch.Generator, n: int) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1


def mix(generator: torch.Generator, n: int, *samplers: StateSampler) -> torch.Tensor:
    """``[n, state_dim]`` states, each row from one of ``samplers`` picked at random."""
    choice = torch.randint(0, len(samplers), (n, 1), generator=generator)
    out = samplers[0](generator, n)
    for k, sampler in enumerate(samplers[1:], start=1):
        out = torch.where(choice == k, sampler(generator, n), out)
    return out


def random_actions(space: ActionSpace, n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform actions; continuous ones overshoot the bounds by half to exercise the clipping."""
    if space.is_discrete:
        return torch.randint(0, space.n, (n,), generator=generator)
    low = torch.tensor(space.low)
    high = torch.tensor(space.high)
    u = torch.rand(n, space.dim, generator=generator)
    return 1.5 * (low + (high - low) * u)


def gym_action(space: ActionSpace, action: torch.Tensor) -> int | np.ndarray:
    if space.is_discrete:
        return int(action)
    return action.numpy().astype(np.float32)


class Reference:
    """gymnasium's env for a task, stepped from given states one at a time."""

    def __init__(self, env_cls: type[BatchedEnv]) -> None:
        self.space = env_cls.spec.action_space
        self.env = gymnasium.make(env_cls.spec.gym_id).unwrapped
        self.env.reset(seed=0)

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> dict[str, np.ndarray]:
        """gymnasium's next state, obs, reward and terminated for every row."""
        rows: dict[str, list] = {"next_state": [], "obs": [], "reward": [], "terminated": []}
        for state, action in zip(states.double().numpy(), actions, strict=True):
            self.env.state = state.copy()
            # CartPole pays 0 for steps after a termination it has seen; each row is fresh.
            if hasattr(self.env, "steps_beyond_terminated"):
                self.env.steps_beyond_terminated = None
            obs, reward, terminated, truncated, _ = self.env.step(gym_action(self.space, action))
            assert not truncated  # the unwrapped env has no time limit
            rows["next_state"].append(np.asarray(self.env.state, dtype=np.float64))
            rows["obs"].append(obs)
            rows["reward"].append(reward)
            rows["terminated"].append(terminated)
        return {key: np.array(value) for key, value in rows.items()}


def assert_close(ours: torch.Tensor, theirs: np.ndarray, what: str, atol: float) -> None:
    diff = np.abs(ours.double().numpy() - theirs.astype(np.float64))
    assert diff.max() <= atol, f"{what}: max |diff| {diff.max():.3g} > {atol:g}"


def check_steps_match(
    env_cls: type[BatchedEnv],
    edge_states: StateSampler,
    *,
    num_envs: int = 256,
    steps: int = 24,
    atol: float = ATOL,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> int:
    """Step ``num_envs`` copies ``steps`` times with random actions, every step
    compared with gymnasium's. Half the copies start from reset, half from
    ``edge_states``; all continue along their own trajectories (auto-reset
    included). Returns how many steps terminated, so a caller can check the
    thresholds were crossed."""
    env = env_cls(num_envs, seed=seed, dtype=dtype)
    env.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    half = num_envs // 2
    env.state[half:] = edge_states(generator, num_envs - half).to(dtype)
    reference = Reference(env_cls)
    terminations = 0
    for _ in range(steps):
        actions = random_actions(env.action_space, num_envs, generator)
        before = env.state.clone()
        theirs = reference.step(before, actions)
        next_state, _, _ = env.dynamics(before, actions)
        _, reward, terminated, truncated, info = env.step(actions)
        assert_close(next_state, theirs["next_state"], "next state", atol)
        assert_close(info["final_obs"], theirs["obs"], "observation", atol)
        assert_close(reward, theirs["reward"], "reward", atol)
        np.testing.assert_array_equal(terminated.numpy(), theirs["terminated"])
        assert not truncated.any()
        terminations += int(terminated.sum())
    return terminations


def check_initial_states(env_cls: type[BatchedEnv], low: list[float], high: list[float]) -> None:
    """Fresh states fill the box ``[low, high]`` that gymnasium's resets draw from."""
    env = env_cls(4096, seed=1)
    env.reset(seed=1)
    states = env.state.double().numpy()
    width = np.array(high) - np.array(low)
    assert (states >= low).all() and (states <= high).all()
    spread = width > 0
    assert (states.min(0)[spread] < (low + 0.01 * width)[spread]).all()
    assert (states.max(0)[spread] > (high - 0.01 * width)[spread]).all()
    gym_env = gymnasium.make(env_cls.spec.gym_id).unwrapped
    for seed in range(50):
        gym_env.reset(seed=seed)
        state = np.asarray(gym_env.state, dtype=np.float64)
        assert (state >= low).all() and (state <= high).all(), state


def check_auto_reset(
    env_cls: type[BatchedEnv], edge_states: StateSampler, low: list[float], high: list[float]
) -> None:
    """Finished copies restart inside the initial box, and ``final_obs`` is the
    observation they finished on; unfinished copies carry on untouched."""
    n = 256
    env = env_cls(n, seed=2)
    env.reset(seed=2)
    generator = torch.Generator().manual_seed(2)
    env.state = edge_states(generator, n)
    env.elapsed_steps[: n // 4] = env.spec.max_episode_steps - 1  # a quarter truncate
    actions = random_actions(env.action_space, n, generator)
    next_state, _, _ = env.dynamics(env.state.clone(), actions)
    obs, _, terminated, truncated, info = env.step(actions)
    done = terminated | truncated
    assert truncated[: n // 4].all() and not truncated[n // 4 :].any()
    # (torch.equal, not torch.testing: that one imports torch.distributed, seconds)
    assert torch.equal(info["final_obs"], env.observe(next_state))
    fresh = env.state[done].double().numpy()
    assert (fresh >= low).all() and (fresh <= high).all()
    assert torch.equal(obs[done], env.observe(env.state[done]))
    assert torch.equal(obs[~done], info["final_obs"][~done])
    assert torch.equal(env.state[~done], next_state[~done])
    assert (env.elapsed_steps[done] == 0).all() and (env.elapsed_steps[~done] > 0).all()


def check_truncation(env_cls: type[BatchedEnv]) -> None:
    """The time limit is gymnasium's: the step that reaches it is truncated."""
    limit = env_cls.spec.max_episode_steps
    assert limit == gymnasium.spec(env_cls.spec.gym_id).max_episode_steps
    env = env_cls(2, seed=3)
    env.reset(seed=3)
    env.elapsed_steps[0] = limit - 1
    env.elapsed_steps[1] = limit - 2
    generator = torch.Generator().manual_seed(3)
    gym_env = gymnasium.make(env_cls.spec.gym_id)  # with its TimeLimit wrapper
    gym_env.reset(seed=3)
    for step in range(2):
        actions = random_actions(env.action_space, 2, generator)
        states = env.state.clone()
        elapsed = env.elapsed_steps.clone()
        _, _, _, truncated, _ = env.step(actions)
        for i in range(2):
            gym_env.unwrapped.state = states[i].double().numpy()
            gym_env._elapsed_steps = int(elapsed[i])
            *_, gym_truncated, _ = gym_env.step(gym_action(env.action_space, actions[i]))
            assert bool(truncated[i]) == gym_truncated
        expected = [True, False] if step == 0 else [False, True]
        assert truncated.tolist() == expected


def check_seeding(env_cls: type[BatchedEnv]) -> None:
    """``reset(seed=s)`` replays the same episodes, auto-resets included."""

    def run(env: BatchedEnv) -> torch.Tensor:
        generator = torch.Generator().manual_seed(4)
        seen = [env.reset(seed=7)]
        env.elapsed_steps[::2] = env.spec.max_episode_steps - 2  # resets within the run
        for _ in range(4):
            seen.append(env.step(random_actions(env.action_space, 16, generator))[0])
        return torch.stack(seen)

    first = run(env_cls(16, seed=0))
    assert torch.equal(first, run(env_cls(16, seed=123)))
    other = env_cls(16, seed=0)
    assert not torch.equal(other.reset(seed=8), first[0])
